// apps/common/app.hpp — the few things every sample app does the same way:
// parse options (exit 2 with one line on bad input), say where it listens,
// raise the open-file limit.
#pragma once

#include <coop/diagnostics.hpp>
#include <coop/io.hpp>
#include <coop/net/serve.hpp>
#include <coop/net/server.hpp>
#include <coop/run_options.hpp>
#include <coop/task.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <iostream>
#include <string>
#include <utility>

namespace coop_app {

namespace po = boost::program_options;

/// Parses `argv` against `options` (plus --help). Prints usage and exits 0
/// for --help; prints "NAME: error: ..." on one line and exits 2 for bad input.
inline po::variables_map parse(int argc, char** argv, const std::string& name, const std::string& summary,
                               po::options_description options) {
  options.add_options()("help,h", "show this help and exit");
  po::variables_map vm;
  try {
    po::positional_options_description none; // stray words are errors, not ignored
    po::store(po::command_line_parser(argc, argv).options(options).positional(none).run(), vm);
    if (vm.count("help")) {
      std::cout << "Usage: " << name << " [options]\n" << summary << "\n\n" << options << std::flush;
      std::exit(0);
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << name << ": error: " << e.what() << " (try --help)" << std::endl;
    std::exit(2);
  }
  return vm;
}

/// Exits 2 with "NAME: error: MESSAGE" on one line.
[[noreturn]] inline void usage_error(const std::string& name, const std::string& message) {
  std::cerr << name << ": error: " << message << " (try --help)" << std::endl;
  std::exit(2);
}

/// Prints the single "listening on HOST:PORT" line scripts wait for, flushed;
/// then, with --admin, "admin on ADDRESS" for the admin endpoint the process
/// serves (coop::admin_addresses(): the port the kernel picked for port 0;
/// an address that could not be served was reported by coop on stderr).
template <class Endpoint> void announce_listening(const Endpoint& ep) {
  auto a = ep.address();
  // Streamed piece by piece: g++ 12 at -O3 warns (-Wrestrict, a false positive)
  // about "[" + std::string.
  std::cout << "listening on " << (a.is_v6() ? "[" : "") << a.to_string() << (a.is_v6() ? "]" : "") << ":" << ep.port()
            << std::endl;
  for (const std::string& admin : coop::admin_addresses())
    std::cout << "admin on " << admin << std::endl;
}

/// The --admin option of the sample servers (coop::run_options::admin_socket).
inline void add_admin_option(po::options_description& options) {
  options.add_options()("admin", po::value<std::string>()->default_value("")->value_name("SOCKET"),
                        "serve /metrics and /fibers on this Unix socket path or loopback HOST:PORT (see coopctl)");
}

/// Run options with the --admin of `vm` (see add_admin_option).
inline coop::run_options run_options_of(const po::variables_map& vm) {
  coop::run_options opts;
  opts.admin_socket = vm["admin"].as<std::string>();
  return opts;
}

/// Parses a host address; exits 2 when it is not a numeric IPv4/IPv6 address.
inline boost::asio::ip::address parse_address(const std::string& name, const std::string& host) {
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(host, ec);
  if (ec) usage_error(name, "--host: not an IP address: '" + host + "'");
  return a;
}

/// Checks a --port value (0..65535; 0 lets the kernel pick); exits 2 otherwise.
inline unsigned short parse_port(const std::string& name, int port) {
  if (port < 0 || port > 65535) usage_error(name, "--port must be 0..65535");
  return static_cast<unsigned short>(port);
}

/// Checks a duration option given in seconds (fractions allowed, e.g. 0.5):
/// more than 0, at most 1e6; exits 2 otherwise. Returns it in milliseconds
/// (at least 1).
inline std::chrono::milliseconds parse_seconds(const std::string& name, const std::string& option, double seconds) {
  if (!(seconds > 0) || seconds > 1e6)
    usage_error(name, "--" + option + " must be more than 0 and at most 1e6 seconds");
  return std::chrono::milliseconds(std::max(1LL, std::llround(seconds * 1000)));
}

/// `coop::net::serve` options that report accept trouble on stderr as
/// "NAME: accept: ...; backing off" and "NAME: accepting again".
inline coop::net::serve_options log_accept_errors(const std::string& name) {
  coop::net::serve_options options;
  options.on_accept_error = [name](const boost::system::error_code& ec) {
    if (ec)
      std::cerr << name << ": accept: " << ec.message() << "; backing off" << std::endl;
    else
      std::cerr << name << ": accepting again" << std::endl;
  };
  return options;
}

/// For a server without connections (udp_echo): runs `serve` in a fiber, prints the
/// "listening on" line for `ep` once the SIGINT/SIGTERM handler is in place
/// (so a signal sent right after that line gets the clean shutdown), waits for
/// a signal, cancels `serve` (its blocking call fails with coop::cancelled),
/// waits for it to finish, prints "stopped by signal N" and returns 0.
template <class Endpoint, class Serve> int serve_until_signal(const Endpoint& ep, Serve&& serve) {
  auto server = coop::spawn(std::forward<Serve>(serve));
  // Spawned fibers first run when this one blocks: inside wait_for_signal.
  coop::spawn([ep] { announce_listening(ep); }).detach();
  int sig = coop::wait_for_signal({SIGINT, SIGTERM});
  server.cancel();
  server.get();
  std::cout << "stopped by signal " << sig << std::endl;
  return 0;
}

/// For a server's main fiber: runs `server.serve(handler)` in a fiber,
/// prints the "listening on" line once the SIGINT/SIGTERM handler is in
/// place, waits for a signal, then stops the server: new clients are refused
/// at once, the connections get `drain` to finish and the rest are cancelled
/// (`basic_server::stop`). Prints "stopped by signal N" and returns 0.
template <class Protocol, class Handler>
int serve_until_signal(coop::net::basic_server<Protocol>& server, Handler handler, std::chrono::milliseconds drain) {
  auto serving = coop::spawn([&server, h = std::move(handler)]() mutable { server.serve(std::move(h)); });
  coop::spawn([ep = server.local_endpoint()] { announce_listening(ep); }).detach();
  int sig = coop::wait_for_signal({SIGINT, SIGTERM});
  server.stop(drain);
  serving.get();
  std::cout << "stopped by signal " << sig << std::endl;
  return 0;
}

/// Runs `body` and returns its exit status; an exception that escapes it is
/// printed as "NAME: what" and gives exit status 1.
template <class Body> int guarded_main(const std::string& name, Body&& body) {
  try {
    return std::forward<Body>(body)();
  } catch (const std::exception& e) {
    std::cerr << name << ": " << e.what() << std::endl;
    return 1;
  }
}

/// Raises the soft limit on open files to the hard limit; returns the new soft limit.
unsigned long raise_open_file_limit();

} // namespace coop_app
