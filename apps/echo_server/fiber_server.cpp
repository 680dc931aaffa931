// apps/echo_server/fiber_server.cpp — --mode fiber: one fiber per connection on
// coop's runtime; N runtime threads, each with its own SO_REUSEPORT listener;
// TLS (coop::net::tls_stream) when configured.
#include "echo_handler.hpp"
#include "server.hpp"

#include <app.hpp>
#include <coop/coop.hpp>
#include <coop/net/tls.hpp>

#include <chrono>
#include <optional>
#include <vector>

namespace echo {
namespace {

using clock = std::chrono::steady_clock;

/// Runs one runtime thread's server (its own SO_REUSEPORT listener) until
/// stopped: one fiber per connection (coop::net::serve backs off while out
/// of descriptors).
void serve_connections(coop::net::tcp_server& server, const server_config& config, server_stats& stats) {
  // --max-connections is not serve_options::max_connections: the echo server
  // refuses the extra connections at once (the client reads end of stream)
  // and counts across every runtime thread, where serve's limit is per group
  // and leaves them waiting in the backlog.
  const handler_options options{config.idle_timeout};
  server.serve([&stats, &config, options](coop::net::tcp_stream stream) {
    if (!stats.try_admit(config.max_connections)) return; // `stream` closes here: full
    struct release {                                      // however the handler ends
      server_stats& stats;
      ~release() { stats.live.fetch_sub(1, std::memory_order_relaxed); }
    } on_exit{stats};
    if (!config.tls) {
      echo_connection(stream, options);
      return;
    }
    // The context bounds the handshake (main.cpp: --idle-timeout, or 10 s)
    // and the handshakes in progress at once.
    boost::system::error_code ec;
    auto tls = coop::net::tls_accept(std::move(stream), *config.tls, ec);
    if (!ec) echo_connection(tls, options); // a failed handshake just ends the connection
  });
}

} // namespace

int run_fiber_server(const server_config& config) {
  server_stats stats;
  coop::run_options run_options;
  run_options.stack_size = config.thread_stack_size;
  run_options.admin_socket = config.admin;
  coop::runtime rt(config.threads, run_options);
  std::vector<std::optional<coop::net::tcp_server>> servers(config.threads); // one per runtime thread

  coop::net::listen_options listen_options;
  listen_options.reuse_port = config.threads > 1;
  coop::net::serve_options serve_options;
  serve_options.on_accept_error = [&stats](const boost::system::error_code& ec) {
    if (ec)
      log("accept: " + ec.message() + "; backing off while serving " + std::to_string(stats.live.load()) +
          " connections");
    else
      log("accept: accepting again");
  };
  auto endpoint = config.endpoint;
  try {
    for (unsigned i = 0; i < config.threads; ++i) {
      rt.spawn_on(i, [&, i] {
          servers[i].emplace(coop::net::tcp_listener(endpoint, listen_options), serve_options);
        }).get();
      if (i == 0) endpoint = servers[0]->local_endpoint(); // port 0: the others take the same
    }
  } catch (const std::exception& e) {
    log(std::string("cannot listen: ") + e.what());
    rt.run_on_each([&](unsigned i) { servers[i].reset(); }); // on the thread they belong to
    return 1;
  }

  std::vector<coop::task<void>> serving;
  for (unsigned i = 0; i < config.threads; ++i)
    serving.push_back(rt.spawn_on(i, [&, i] { serve_connections(*servers[i], config, stats); }));
  coop_app::announce_listening(endpoint);

  int sig = wait_for_stop_signal(config, stats);
  auto deadline = clock::now() + config.drain_timeout;
  log(std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") + ": stopped accepting; draining " +
      std::to_string(stats.live.load()) + " connections");
  // Every thread at once: each closes its listener (new clients are refused
  // from here on), waits for its connections until the deadline, then
  // cancels the rest (their blocking calls fail with coop::cancelled).
  rt.run_on_each([&](unsigned i) {
    stats.cut_off.fetch_add(servers[i]->stop_until(deadline));
    servers[i].reset();
  });
  for (auto& t : serving)
    t.get();
  log("stopped: " + std::to_string(stats.accepted.load()) + " connections served, " +
      std::to_string(stats.rejected.load()) + " refused, " + std::to_string(stats.cut_off.load()) +
      " closed at the drain deadline");
  return 0;
}

} // namespace echo
