// port_forwarder — a TCP proxy: every client connection is forwarded to
// --to HOST:PORT and the bytes are pumped both ways.
//
// One fiber per client connects upstream; then two fibers pump, one per
// direction, each a plain read/write loop. Half-close is passed on: when one
// side ends its stream, the other side's sending half is shut down and the
// opposite direction keeps flowing until it ends too (so a client that sends a
// request and then shuts down its sending half still gets the whole reply).
// If the upstream connect fails, only that client is closed. A session in
// which no byte moved either way for --idle-timeout is closed on both sides
// (a client that half-closed against a silent upstream, one that never reads
// what it asked for, or simply a quiet one).
//
//   port_forwarder --port 8000 --to example.org:80
#include <app.hpp>
#include <coop/coop.hpp>

#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using coop::net::tcp_stream;

constexpr auto connect_timeout = 5s;

struct target {
  std::string host;
  std::uint16_t port;
};

/// Parses "HOST:PORT" or "[IPV6]:PORT"; exits 2 when malformed.
target parse_target(const std::string& name, const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    coop_app::usage_error(name, "--to: expected HOST:PORT, got '" + text + "'");
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  const char* first = text.data() + colon + 1;
  const char* last = text.data() + text.size();
  auto [end, err] = std::from_chars(first, last, port);
  if (err != std::errc{} || end != last || port == 0 || port > 65535)
    coop_app::usage_error(name, "--to: bad port in '" + text + "'");
  return {host, static_cast<std::uint16_t>(port)};
}

/// When a session last moved a byte, in either direction. Both pump fibers
/// of a session run on the one runtime thread, so they share it without a lock.
struct activity {
  std::chrono::milliseconds idle_timeout;
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();

  std::chrono::steady_clock::time_point deadline() const { return last + idle_timeout; }
  void touch() { last = std::chrono::steady_clock::now(); }
};

/// Runs `op(ec)` (one read_some or write_some) until it moves bytes or fails,
/// with the session's idle deadline: when that passes, the call fails with
/// coop::errc::timed_out — unless the other direction moved bytes meanwhile,
/// which pushed the deadline back, and then the call is made again.
template <class Op> std::size_t bounded(activity& a, boost::system::error_code& ec, Op op) {
  for (;;) {
    std::size_t n = 0;
    {
      coop::timeout limit(a.deadline());
      n = op(ec);
    }
    if (ec == coop::errc::timed_out && std::chrono::steady_clock::now() < a.deadline()) continue;
    if (!ec) a.touch();
    return n;
  }
}

/// Copies `from` into `to` until `from` ends, then shuts down `to`'s sending
/// half. Returns false when either side failed (reset, closed, cancelled) or
/// no byte moved either way for the idle timeout.
bool pump(tcp_stream& from, tcp_stream& to, activity& a) {
  std::vector<char> buffer(64 * 1024);
  for (;;) {
    boost::system::error_code ec;
    std::size_t n = bounded(a, ec, [&](auto& e) { return from.read_some(boost::asio::buffer(buffer), e); });
    if (ec == boost::asio::error::eof) {
      to.shutdown_send(ec); // the peer of `to` now reads end of stream
      return true;
    }
    if (ec) return false;
    for (std::size_t done = 0; done < n;) { // write_some, so that each step counts as activity
      done += bounded(a, ec,
                      [&](auto& e) { return to.write_some(boost::asio::buffer(buffer.data() + done, n - done), e); });
      if (ec) return false;
    }
  }
}

/// Serves one client: connect upstream, then pump both ways until both end,
/// either fails, or the session is idle for `idle_timeout`.
void forward(tcp_stream client, const target& to, std::chrono::milliseconds idle_timeout) {
  boost::system::error_code ec;
  tcp_stream upstream = [&] {
    coop::timeout limit(connect_timeout);
    return coop::net::connect(to.host, to.port, ec);
  }();
  if (ec) {
    std::cerr << "port_forwarder: cannot reach " << to.host << ":" << to.port << ": " << ec.message() << std::endl;
    return; // `client` is closed as it goes out of scope; other clients carry on
  }

  // A failure in one direction ends both: closing the sockets makes the other
  // fiber's pending read fail at once. So does an idle session: a client that
  // half-closed against a silent upstream, or one that never reads.
  auto abort = [&] {
    boost::system::error_code ignored;
    client.close(ignored);
    upstream.close(ignored);
  };
  activity a{idle_timeout};
  auto downstream = coop::spawn([&] {
    if (!pump(upstream, client, a)) abort();
  });
  if (!pump(client, upstream, a)) abort();

  downstream.join(ec); // the reply direction may go on after the client's EOF
  if (ec) {            // we were cancelled while waiting (shutdown): stop it too
    abort();
    coop::shield no_cancel; // `downstream` uses our locals: wait until it has left
    downstream.join();
  }
}

} // namespace

int main(int argc, char** argv) {
  namespace po = coop_app::po;
  const std::string name = "port_forwarder";
  po::options_description options("Options");
  options.add_options()                                                                           //
      ("host", po::value<std::string>()->default_value("127.0.0.1"), "address to listen on")      //
      ("port", po::value<int>()->default_value(8000), "TCP port to listen on (0: any free port)") //
      ("to", po::value<std::string>()->required(), "HOST:PORT to forward every connection to")    //
      ("idle-timeout", po::value<double>()->default_value(300),
       "SECONDS without a byte moving either way before a connection is closed") //
      ("drain-timeout", po::value<double>()->default_value(5),
       "on SIGINT/SIGTERM: new clients are refused, open sessions get SECONDS to end, then are closed");
  coop_app::add_admin_option(options);
  auto vm = coop_app::parse(argc, argv, name, "TCP port forwarder: relays each connection to --to.", options);
  const unsigned short port = coop_app::parse_port(name, vm["port"].as<int>());
  const coop::net::tcp::endpoint where(coop_app::parse_address(name, vm["host"].as<std::string>()), port);
  const target to = parse_target(name, vm["to"].as<std::string>());
  const auto idle_timeout = coop_app::parse_seconds(name, "idle-timeout", vm["idle-timeout"].as<double>());
  const auto drain = coop_app::parse_seconds(name, "drain-timeout", vm["drain-timeout"].as<double>());
  coop_app::raise_open_file_limit(); // two sockets per client

  return coop_app::guarded_main(name, [&] {
    return coop::run(
        [&] {
          coop::net::tcp_server server(coop::net::tcp_listener(where), coop_app::log_accept_errors(name));
          // On a signal: the listener closes, the sessions get `drain`, then are cancelled.
          return coop_app::serve_until_signal(
              server, [&to, idle_timeout](tcp_stream c) { forward(std::move(c), to, idle_timeout); }, drain);
        },
        coop_app::run_options_of(vm));
  });
}
