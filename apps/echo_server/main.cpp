// apps/echo_server/main.cpp — a concurrent TCP echo server, in two variants
// that run the same connection handler (echo_handler.hpp): one fiber per
// connection on coop's runtime, or one OS thread per connection.
#include "server.hpp"

#include <app.hpp>
#include <coop/diagnostics.hpp>
#include <coop/net/tls.hpp>

#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <ctime>
#include <iostream>
#include <string>

namespace echo {

int wait_for_stop_signal(const server_config& config, const server_stats& stats) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  using clock = std::chrono::steady_clock;
  const auto interval = config.stats_interval;
  auto next_stats = clock::now() + interval;
  for (;;) {
    if (interval.count() == 0) {
      int sig = 0;
      if (::sigwait(&set, &sig) == 0) return sig;
      continue;
    }
    // Ticks on a fixed schedule (no drift), never sleeping less than 0.
    auto wait = std::max(clock::duration::zero(), next_stats - clock::now());
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    timespec timeout{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    int sig = ::sigtimedwait(&set, nullptr, &timeout);
    if (sig > 0) return sig;
    if (errno != EAGAIN) continue; // EINTR: wait again
    log("stats: connections " + std::to_string(stats.live.load()) + ", fibers " + std::to_string(coop::fiber_count()) +
        ", accepted " + std::to_string(stats.accepted.load()) + ", refused " + std::to_string(stats.rejected.load()));
    next_stats += interval;
  }
}

void log(const std::string& message) {
  std::cerr << "echo_server: " + message + "\n" << std::flush;
}

} // namespace echo

namespace {

const char* const summary = "A concurrent TCP echo server: every byte a client sends comes back.\n"
                            "\n"
                            "Modes (both run the same handler, apps/echo_server/echo_handler.hpp):\n"
                            "  fiber   one coop fiber per connection; --threads N runtime threads, each\n"
                            "          with its own SO_REUSEPORT listener.\n"
                            "  thread  one OS thread per connection (128 KiB stack), blocking in the kernel.\n"
                            "\n"
                            "When a client half-closes, what it sent is echoed, then the server closes.\n"
                            "Beyond --max-connections, new connections are accepted and closed at once\n"
                            "(the client reads end of stream). When accept runs out of file descriptors\n"
                            "the server pauses accepting (1 ms, doubling up to 100 ms) and keeps serving.\n"
                            "SIGINT/SIGTERM: stop accepting, let connections finish until --drain-timeout,\n"
                            "then close the rest and exit 0. Prints one line 'listening on HOST:PORT'.\n"
                            "\n"
                            "TLS (fiber mode): --tls-cert and --tls-key serve TLS 1.2+ on the port instead;\n"
                            "the handshake is bounded by --idle-timeout, or 10 s without one, and at most\n"
                            "256 run at once. A client's close_notify is answered with ours (TLS's\n"
                            "half-close).\n"
                            "\n"
                            "--stats-interval S: every S seconds, one line on stderr\n"
                            "  echo_server: stats: connections N, fibers F, accepted A, refused R\n"
                            "(connections being served now, i.e. live handler fibers or threads; handed\n"
                            "to a handler since start; closed at once by --max-connections). scripts/soak\n"
                            "reads it.";

std::chrono::milliseconds seconds_option(const char* name, double seconds) {
  if (!(seconds >= 0) || seconds > 1e6)
    coop_app::usage_error("echo_server", std::string("--") + name + ": must be between 0 and 1e6 seconds");
  return std::chrono::milliseconds(static_cast<long long>(std::llround(seconds * 1000)));
}

} // namespace

int main(int argc, char** argv) {
  namespace po = coop_app::po;
  const std::string name = "echo_server";
  int port = -1;
  std::string host, mode, tls_cert, tls_key, admin;
  unsigned threads = 1;
  std::size_t max_connections = 0;
  double idle_timeout = 0, drain_timeout = 5, stats_interval = 0;
  po::options_description options("Options");
  // clang-format off
  options.add_options()
      ("port,p", po::value(&port)->required(), "TCP port to listen on (0: any free port)")
      ("host", po::value(&host)->default_value("127.0.0.1"), "address to listen on")
      ("mode", po::value(&mode)->default_value("fiber"), "fiber | thread")
      ("threads", po::value(&threads)->default_value(1), "runtime threads (fiber mode; thread mode ignores it)")
      ("max-connections", po::value(&max_connections)->default_value(0),
       "connections served at once; more are accepted and closed at once (0: no limit)")
      ("idle-timeout", po::value(&idle_timeout)->default_value(0),
       "close a connection when no data moved for SECONDS (0: never)")
      ("drain-timeout", po::value(&drain_timeout)->default_value(5),
       "after SIGINT/SIGTERM, wait this many SECONDS for connections to finish")
      ("stats-interval", po::value(&stats_interval)->default_value(0),
       "every SECONDS, print a 'stats:' line on stderr (0: never; at least 0.01)")
      ("tls-cert", po::value(&tls_cert)->value_name("FILE"),
       "serve TLS (fiber mode) with this certificate chain (PEM); needs --tls-key")
      ("tls-key", po::value(&tls_key)->value_name("FILE"), "the certificate's private key (PEM, unencrypted)")
      ("admin", po::value(&admin)->value_name("SOCKET"),
       "serve /metrics and /fibers (fiber mode) on this Unix socket path or loopback HOST:PORT (coopctl)");
  // clang-format on
  coop_app::parse(argc, argv, name, summary, options);

  echo::server_config config;
  if (port < 0 || port > 65535) coop_app::usage_error(name, "--port: must be between 0 and 65535");
  if (mode != "fiber" && mode != "thread")
    coop_app::usage_error(name, "--mode: must be 'fiber' or 'thread', not '" + mode + "'");
  if (threads < 1 || threads > 1024) coop_app::usage_error(name, "--threads: must be between 1 and 1024");
  config.endpoint = {coop_app::parse_address(name, host), static_cast<unsigned short>(port)};
  config.threads = threads;
  config.max_connections = max_connections;
  config.idle_timeout = seconds_option("idle-timeout", idle_timeout);
  config.drain_timeout = seconds_option("drain-timeout", drain_timeout);
  config.stats_interval = seconds_option("stats-interval", stats_interval);
  if (stats_interval != 0 && stats_interval < 0.01)
    coop_app::usage_error(name, "--stats-interval: must be 0 (off) or at least 0.01 seconds");
  if (!admin.empty() && mode != "fiber") coop_app::usage_error(name, "--admin needs --mode fiber");
  config.admin = admin;
  if (tls_cert.empty() != tls_key.empty()) coop_app::usage_error(name, "--tls-cert and --tls-key go together");
  if (!tls_cert.empty()) {
    if (mode != "fiber") coop_app::usage_error(name, "--tls-cert/--tls-key need --mode fiber");
    try {
      coop::net::tls_server_options tls_options; // at most 256 handshakes at once (the default)
      tls_options.handshake_timeout =
          config.idle_timeout.count() > 0 ? config.idle_timeout : echo::default_handshake_timeout;
      config.tls =
          std::make_shared<coop::net::ssl::context>(coop::net::tls_server_context(tls_cert, tls_key, tls_options));
    } catch (const std::exception& e) {
      std::cerr << name << ": error: " << e.what() << std::endl; // one line: the file and OpenSSL's reason
      return 2;
    }
  }

  // Before any thread starts: every thread inherits this mask, so SIGINT and
  // SIGTERM wait for wait_for_stop_signal() instead of killing the process.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // An ignored signal is discarded even while blocked, so undo the SIG_IGN a
  // shell gives background jobs: this server stops on SIGINT, as documented.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  std::signal(SIGPIPE, SIG_IGN); // a vanished peer is an error code, not a death
  coop_app::raise_open_file_limit();

  try {
    return mode == "fiber" ? echo::run_fiber_server(config) : echo::run_thread_server(config);
  } catch (const std::exception& e) {
    echo::log(std::string("fatal: ") + e.what());
    return 1;
  }
}
