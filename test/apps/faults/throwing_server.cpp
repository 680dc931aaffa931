// throwing_server — a test-only line echo server whose handler throws.
//
// The fault suite (test_faults.py, case handler_exception) starts it to check
// what coop::net::serve does with an exception that escapes a connection
// handler: only that connection ends (its stream is closed as the fiber
// unwinds), the exception is reported once on stderr, and every other
// connection, and the accept loop, carry on.
//
// Each line a client sends comes back; the line "throw" makes the handler
// throw std::runtime_error("handler failed on purpose") instead.
//
//   throwing_server --port 0
#include <app.hpp>
#include <coop/coop.hpp>

#include <stdexcept>
#include <string>

namespace {

void echo_lines(coop::net::tcp_stream stream) {
  std::string input;
  for (;;) {
    boost::system::error_code ec;
    std::size_t n = stream.read_until(input, "\n", 4096, ec);
    if (ec) return;
    std::string line = input.substr(0, n);
    input.erase(0, n);
    if (line == "throw\n") throw std::runtime_error("handler failed on purpose");
    stream.write_all(boost::asio::buffer(line), ec);
    if (ec) return;
  }
}

} // namespace

int main(int argc, char** argv) {
  namespace po = coop_app::po;
  const std::string name = "throwing_server";
  po::options_description options("Options");
  options.add_options()("port", po::value<int>()->default_value(0), "TCP port on 127.0.0.1 (0: any free port)");
  auto vm =
      coop_app::parse(argc, argv, name, "Line echo whose handler throws on the line 'throw' (a test app).", options);
  const coop::net::tcp::endpoint where(boost::asio::ip::address_v4::loopback(),
                                       coop_app::parse_port(name, vm["port"].as<int>()));
  return coop_app::guarded_main(name, [&] {
    return coop::run([&] {
      coop::net::tcp_listener listener(where);
      return coop_app::serve_until_signal(listener.local_endpoint(), [&] {
        coop::task_group connections;
        coop::net::serve(listener, connections, echo_lines, coop_app::log_accept_errors(name));
        connections.cancel();
      });
    });
  });
}
