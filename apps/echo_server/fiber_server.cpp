// apps/echo_server/fiber_server.cpp — --mode fiber: one fiber per connection on
// coop's runtime; N runtime threads, each with its own SO_REUSEPORT listener;
// TLS (coop::net::tls_stream) when configured.
#include "echo_handler.hpp"
#include "server.hpp"

#include <app.hpp>
#include <coop/coop.hpp>
#include <coop/net/tls.hpp>

#include <optional>
#include <vector>

namespace echo {
namespace {

using clock = std::chrono::steady_clock;

/// One runtime thread's part of the server. Only fibers of that thread touch
/// it, so it needs no lock (the stop request is delivered as a fiber there).
struct shard {
  std::optional<coop::net::tcp_listener> listener;
  coop::task_group connections; ///< live handlers
  clock::time_point drain_deadline{};
};

/// Accepts until the listener is closed (coop::net::serve backs off while out
/// of descriptors), one fiber per connection in the shard's group.
void accept_loop(shard& sh, const server_config& config, server_stats& stats) {
  coop::net::serve_options serve_options;
  serve_options.on_accept_error = [&stats](const boost::system::error_code& ec) {
    if (ec)
      log("accept: " + ec.message() + "; backing off while serving " + std::to_string(stats.live.load()) +
          " connections");
    else
      log("accept: accepting again");
  };
  // --max-connections is not serve_options::max_connections: the echo server
  // refuses the extra connections at once (the client reads end of stream)
  // and counts across every runtime thread, where serve's limit is per group
  // and leaves them waiting in the backlog.
  const handler_options options{config.idle_timeout};
  coop::net::serve(
      *sh.listener, sh.connections,
      [&stats, &config, options](coop::net::tcp_stream stream) {
        if (!stats.try_admit(config.max_connections)) return; // `stream` closes here: full
        struct release {                                      // however the handler ends
          server_stats& stats;
          ~release() { stats.live.fetch_sub(1, std::memory_order_relaxed); }
        } on_exit{stats};
        if (!config.tls) {
          echo_connection(stream, options);
          return;
        }
        boost::system::error_code ec;
        auto tls = [&] {
          coop::timeout handshake(options.idle_timeout.count() > 0
                                      ? options.idle_timeout
                                      : std::chrono::milliseconds(default_handshake_timeout));
          return coop::net::tls_accept(std::move(stream), *config.tls, ec);
        }();
        if (!ec) echo_connection(tls, options); // a failed handshake just ends the connection
      },
      serve_options);
  sh.listener->close();
}

/// Waits for this thread's connections to finish until the drain deadline,
/// then cancels the rest (their blocking calls fail with coop::cancelled) and
/// waits for them to unwind.
void drain(shard& sh, server_stats& stats) {
  try {
    coop::timeout deadline(sh.drain_deadline);
    sh.connections.join();
  } catch (const coop::timeout_error&) {
    stats.cut_off.fetch_add(sh.connections.size());
    sh.connections.cancel();
    sh.connections.join();
  }
}

} // namespace

int run_fiber_server(const server_config& config) {
  server_stats stats;
  coop::runtime rt(config.threads, coop::run_options{config.thread_stack_size});
  std::vector<shard> shards(config.threads);

  coop::net::listen_options listen_options;
  listen_options.reuse_port = config.threads > 1;
  auto endpoint = config.endpoint;
  try {
    for (unsigned i = 0; i < config.threads; ++i) {
      rt.spawn_on(i, [&, i] { shards[i].listener.emplace(endpoint, listen_options); }).get();
      if (i == 0) endpoint = shards[0].listener->local_endpoint(); // port 0: the others take the same
    }
  } catch (const std::exception& e) {
    log(std::string("cannot listen: ") + e.what());
    rt.run_on_each([&](unsigned i) { shards[i].listener.reset(); }); // on the thread they belong to
    return 1;
  }

  std::vector<coop::task<void>> servers;
  for (unsigned i = 0; i < config.threads; ++i)
    servers.push_back(rt.spawn_on(i, [&, i] {
      accept_loop(shards[i], config, stats);
      drain(shards[i], stats);
      shards[i].listener.reset();
    }));
  coop_app::announce_listening(endpoint);

  int sig = wait_for_stop_signal(config, stats);
  auto deadline = clock::now() + config.drain_timeout;
  log(std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") + ": stopped accepting; draining " +
      std::to_string(stats.live.load()) + " connections");
  rt.run_on_each([&](unsigned i) {
    shards[i].drain_deadline = deadline;
    shards[i].listener->close(); // the accept fiber wakes with operation_aborted
  });
  for (auto& t : servers)
    t.get();
  log("stopped: " + std::to_string(stats.accepted.load()) + " connections served, " +
      std::to_string(stats.rejected.load()) + " refused, " + std::to_string(stats.cut_off.load()) +
      " closed at the drain deadline");
  return 0;
}

} // namespace echo
