// http_hello — an HTTP/1.1 "Hello, world!" server on Boost.Beast.
//
// Beast's synchronous http::read and http::write run directly on a
// coop::net::tcp_stream: inside a fiber they suspend only that fiber, so each
// connection is a plain loop — read a request, write a response — and one
// thread serves thousands of connections. Keep-alive is the default;
// "Connection: close" (or HTTP/1.0 without keep-alive) ends the connection
// after the response. A request Beast cannot parse gets "400 Bad Request"
// (a header over 8 KiB "431", a body over 64 KiB "413") and the connection is
// closed. --idle-timeout (30 s) bounds how long a client may take to send a
// whole request and to take in a response.
//
// With --threads N, each runtime thread has its own listening socket on the
// same port (SO_REUSEPORT) and the kernel spreads connections over them.
//
//   http_hello --port 8080 --threads 2
//   curl -i http://127.0.0.1:8080/
#include <app.hpp>
#include <coop/coop.hpp>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <csignal>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using coop::net::tcp_stream;
namespace http = boost::beast::http;

constexpr std::size_t max_header = 8 * 1024;
constexpr std::size_t max_body = 64 * 1024;

bool is_parse_error(const boost::system::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category();
}

http::response<http::string_body> respond(const http::request<http::string_body>& req) {
  http::response<http::string_body> res;
  res.version(req.version());
  res.keep_alive(req.keep_alive());
  res.set(http::field::server, "coop http_hello");
  res.set(http::field::content_type, "text/plain");
  if (req.method() == http::verb::get || req.method() == http::verb::head) {
    res.result(http::status::ok);
    res.body() = "Hello, world!\n";
  } else {
    res.result(http::status::method_not_allowed);
    res.set(http::field::allow, "GET, HEAD");
    res.body() = "Only GET and HEAD are served here.\n";
  }
  res.prepare_payload();                                    // Content-Length
  if (req.method() == http::verb::head) res.body().clear(); // keeps the Content-Length of a GET
  return res;
}

/// Ends a connection without losing the last response: half-close, then read
/// and drop whatever the client still sends (for a second at most), so that
/// closing does not reset the connection before the client has read it all.
void linger_close(tcp_stream& stream) {
  boost::system::error_code ec;
  stream.shutdown_send(ec);
  coop::timeout limit(1s);
  char sink[1024];
  while (!ec)
    stream.read_some(boost::asio::buffer(sink), ec);
}

/// The answer to a request Beast could not read: 431 for a header over
/// `max_header`, 413 for a body over `max_body`, 400 otherwise.
http::response<http::string_body> refuse(const boost::system::error_code& ec) {
  auto status = ec == http::error::header_limit ? http::status::request_header_fields_too_large
                : ec == http::error::body_limit ? http::status::payload_too_large
                                                : http::status::bad_request;
  http::response<http::string_body> res{status, 11};
  res.set(http::field::server, "coop http_hello");
  res.set(http::field::content_type, "text/plain");
  res.keep_alive(false);
  res.body() = std::string(res.reason()) + ": " + ec.message() + "\n";
  res.prepare_payload();
  return res;
}

/// Serves requests on one connection until it ends. `idle_timeout` bounds
/// the wait for each whole request (a client that sends its header a byte
/// at a time gets no more time than one that sends nothing) and the writing
/// of each response (a client that pipelines requests and never reads the
/// answers does not hold its connection and send buffer for ever).
void serve_http(tcp_stream stream, std::chrono::milliseconds idle_timeout) {
  boost::beast::flat_buffer buffer; // keeps bytes of a pipelined next request
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(max_header);
    parser.body_limit(max_body);
    boost::system::error_code ec;
    {
      coop::timeout limit(idle_timeout); // one deadline for the whole request, not one per read
      http::read(stream, buffer, parser, ec);
    }
    if (ec == http::error::end_of_stream) return; // closed between requests: fine
    if (is_parse_error(ec)) {
      auto res = refuse(ec);
      {
        coop::timeout limit(idle_timeout);
        http::write(stream, res, ec);
      }
      if (ec) return;
      return linger_close(stream);
    }
    if (ec) return; // reset, timed out, cancelled (shutdown)

    auto res = respond(parser.get());
    {
      coop::timeout limit(idle_timeout);
      http::write(stream, res, ec);
    }
    if (ec) return; // reset, timed out (the client does not read), cancelled
    if (!res.keep_alive()) return linger_close(stream);
  }
}

/// Runs on runtime thread 0: opens a server (listener) per thread, says where
/// it listens, waits for SIGINT/SIGTERM, then stops every thread's server at
/// once: new clients are refused, requests in progress get `drain` to finish,
/// the connections left then are closed.
int control(coop::runtime& rt, const coop::net::tcp::endpoint& where, std::chrono::milliseconds idle_timeout,
            std::chrono::milliseconds drain) {
  coop::net::listen_options opts;
  opts.reuse_port = rt.size() > 1;
  std::vector<std::optional<coop::net::tcp_server>> servers(rt.size()); // servers[i] belongs to thread i
  // Thread 0 binds first (the kernel picks the port when it is 0); the other
  // threads then bind their own listeners to that same port.
  servers[0].emplace(coop::net::tcp_listener(where, opts), coop_app::log_accept_errors("http_hello"));
  const auto bound = servers[0]->local_endpoint();
  std::exception_ptr failed;
  for (unsigned i = 1; i < rt.size() && !failed; ++i) {
    try {
      rt.spawn_on(i, [&, i] {
          servers[i].emplace(coop::net::tcp_listener(bound, opts), coop_app::log_accept_errors("http_hello"));
        }).get();
    } catch (...) {
      failed = std::current_exception();
    }
  }
  std::vector<coop::task<>> serving;
  int sig = 0;
  if (!failed) {
    for (unsigned i = 0; i < rt.size(); ++i)
      serving.push_back(rt.spawn_on(
          i, [&, i] { servers[i]->serve([idle_timeout](tcp_stream c) { serve_http(std::move(c), idle_timeout); }); }));
    // Spawned fibers run once this one blocks, i.e. after the signal handler
    // is installed: a SIGTERM sent right after "listening on" is handled.
    coop::spawn([bound] { coop_app::announce_listening(bound); }).detach();
    sig = coop::wait_for_signal({SIGINT, SIGTERM});
  }
  std::vector<coop::task<>> stopping; // every thread's server at once, each on its own thread
  const auto deadline = std::chrono::steady_clock::now() + drain;
  for (unsigned i = 0; i < rt.size(); ++i)
    stopping.push_back(rt.spawn_on(i, [&, i] {
      if (servers[i]) servers[i]->stop_until(deadline);
      servers[i].reset();
    }));
  for (auto& s : stopping)
    s.get();
  for (auto& s : serving)
    s.get();
  if (failed) std::rethrow_exception(failed);
  std::cout << "stopped by signal " << sig << std::endl;
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  namespace po = coop_app::po;
  const std::string name = "http_hello";
  po::options_description options("Options");
  options.add_options()                                                                                   //
      ("host", po::value<std::string>()->default_value("127.0.0.1"), "address to listen on")              //
      ("port", po::value<int>()->default_value(8080), "TCP port to listen on (0: any free port)")         //
      ("threads", po::value<unsigned>()->default_value(1), "runtime threads, each with its own listener") //
      ("idle-timeout", po::value<double>()->default_value(30),
       "SECONDS a client may take to send a whole request, or to take in a response") //
      ("drain-timeout", po::value<double>()->default_value(5),
       "on SIGINT/SIGTERM: new clients are refused, open connections get SECONDS, then are closed");
  coop_app::add_admin_option(options);
  auto vm = coop_app::parse(argc, argv, name, "HTTP/1.1 hello server on Boost.Beast and coop fibers.", options);
  const unsigned short port = coop_app::parse_port(name, vm["port"].as<int>());
  const unsigned threads = vm["threads"].as<unsigned>();
  if (threads < 1 || threads > 256) coop_app::usage_error(name, "--threads must be 1..256");
  const auto idle_timeout = coop_app::parse_seconds(name, "idle-timeout", vm["idle-timeout"].as<double>());
  const auto drain = coop_app::parse_seconds(name, "drain-timeout", vm["drain-timeout"].as<double>());
  const coop::net::tcp::endpoint where(coop_app::parse_address(name, vm["host"].as<std::string>()), port);
  coop_app::raise_open_file_limit();

  return coop_app::guarded_main(name, [&] {
    coop::runtime rt(threads, coop_app::run_options_of(vm));
    return rt.spawn_on(0, [&] { return control(rt, where, idle_timeout, drain); }).get();
  });
}
