// apps/echo_server/fiber_server.cpp — --mode fiber: one fiber per connection on
// coop's runtime; N runtime threads, each with its own SO_REUSEPORT listener.
#include "echo_handler.hpp"
#include "server.hpp"

#include <app.hpp>
#include <coop/coop.hpp>

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

namespace echo {
namespace {

using clock = std::chrono::steady_clock;

/// One runtime thread's part of the server. Only fibers of that thread touch
/// it, so it needs no lock (the stop request is delivered as a fiber there).
struct shard {
  std::optional<coop::net::tcp_listener> listener;
  std::unordered_map<std::uint64_t, coop::task<void>> connections; ///< live handlers
  std::uint64_t next_id = 0;
  bool stopping = false;
  clock::time_point drain_deadline{};
};

/// Errors that concern only the connection being accepted: try the next one.
bool is_connection_gone(const boost::system::error_code& ec) {
  return ec == boost::asio::error::connection_aborted || ec == boost::asio::error::connection_reset ||
         ec == boost::system::errc::protocol_error;
}

void accept_loop(shard& sh, const server_config& config, server_stats& stats) {
  const handler_options options{config.idle_timeout};
  accept_backoff backoff;
  while (!sh.stopping) {
    boost::system::error_code ec;
    coop::net::tcp_stream stream = sh.listener->accept(ec);
    if (ec) {
      if (sh.stopping) break;
      if (is_connection_gone(ec)) continue;
      // Out of descriptors (or anything unexpected): pause this fiber only;
      // the other fibers keep serving, and their closing frees descriptors.
      if (!backoff.in_episode())
        log("accept: " + ec.message() + "; backing off while serving " + std::to_string(stats.live.load()) +
            " connections");
      boost::system::error_code ignored;
      coop::sleep_for(backoff.next(), ignored);
      continue;
    }
    if (backoff.in_episode()) {
      log("accept: accepting again");
      backoff.reset();
    }
    if (!stats.try_admit(config.max_connections)) continue; // `stream` closes here: full
    std::uint64_t id = sh.next_id++;
    coop::task<void> t = coop::spawn([&sh, &stats, options, id, s = std::move(stream)]() mutable {
      struct forget { // however the handler ends, even by an exception (kept in the task)
        shard& sh;
        server_stats& stats;
        coop::net::tcp_stream& s;
        std::uint64_t id;
        ~forget() {
          boost::system::error_code ignored;
          s.close(ignored);
          sh.connections.erase(id);
          stats.live.fetch_sub(1, std::memory_order_relaxed);
        }
      } on_exit{sh, stats, s, id};
      echo_connection(s, options);
    });
    // The new fiber runs only once this one blocks, so the entry exists before it can erase it.
    sh.connections.emplace(id, std::move(t));
  }
  sh.listener->close();
}

/// Waits for this thread's connections to finish until the drain deadline,
/// then cancels the rest (their blocking calls fail with coop::cancelled) and
/// waits for them to unwind.
void drain(shard& sh, server_stats& stats) {
  boost::system::error_code ec;
  {
    coop::timeout deadline(sh.drain_deadline);
    while (!sh.connections.empty() && !ec) {
      coop::task<void> first = sh.connections.begin()->second;
      first.join(ec);
    }
  }
  if (sh.connections.empty()) return;
  std::vector<coop::task<void>> rest;
  for (auto& entry : sh.connections)
    rest.push_back(entry.second);
  stats.cut_off.fetch_add(rest.size());
  for (auto& t : rest)
    t.cancel();
  for (auto& t : rest)
    t.join(ec);
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

  int sig = wait_for_stop_signal();
  auto deadline = clock::now() + config.drain_timeout;
  log(std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") + ": stopped accepting; draining " +
      std::to_string(stats.live.load()) + " connections");
  rt.run_on_each([&](unsigned i) {
    shards[i].stopping = true;
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
