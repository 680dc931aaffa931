// udp_echo — sends every UDP datagram back to where it came from.
//
// One fiber, one coop::net::udp_socket: receive_from suspends only the
// calling fiber until a datagram arrives, and a signal cancels the wait. No
// peer can hold the server: it keeps nothing per peer, a receive waits for
// any datagram, and a reply that cannot be sent within a second (a full send
// buffer) is dropped, as UDP may drop any datagram.
//
//   udp_echo --port 9000
//   echo hello | nc -u -w1 127.0.0.1 9000
#include <app.hpp>
#include <coop/coop.hpp>

#include <chrono>
#include <csignal>
#include <iostream>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using coop::net::udp;

constexpr auto send_timeout = 1s;

bool interrupted(const boost::system::error_code& ec) {
  return ec == coop::errc::cancelled || ec == boost::asio::error::operation_aborted;
}

/// Echoes datagrams until the fiber is cancelled.
void echo(coop::net::udp_socket& socket) {
  std::vector<char> datagram(64 * 1024); // the largest a UDP datagram can be: none is truncated
  udp::endpoint sender;
  for (;;) {
    boost::system::error_code ec;
    std::size_t n = socket.receive_from(boost::asio::buffer(datagram), sender, ec);
    if (interrupted(ec)) return;
    if (ec) continue; // e.g. an ICMP "port unreachable" for an earlier reply: not our problem
    {
      coop::timeout limit(send_timeout);
      socket.send_to(boost::asio::buffer(datagram.data(), n), sender, ec);
    }
    if (interrupted(ec)) return; // a failed or timed-out reply is dropped
  }
}

} // namespace

int main(int argc, char** argv) {
  namespace po = coop_app::po;
  const std::string name = "udp_echo";
  po::options_description options("Options");
  options.add_options()                                                                    //
      ("host", po::value<std::string>()->default_value("127.0.0.1"), "address to bind to") //
      ("port", po::value<int>()->default_value(9000), "UDP port (0: any free port)");
  auto vm = coop_app::parse(argc, argv, name, "UDP echo server: returns every datagram to its sender.", options);
  const unsigned short port = coop_app::parse_port(name, vm["port"].as<int>());
  const udp::endpoint where(coop_app::parse_address(name, vm["host"].as<std::string>()), port);

  return coop_app::guarded_main(name, [&] {
    return coop::run([&] {
      coop::net::udp_socket socket(where); // binds; throws if the port is taken
      // On a signal, the pending receive fails with coop::cancelled.
      return coop_app::serve_until_signal(socket.local_endpoint(), [&] { echo(socket); });
    });
  });
}
