// apps/echo_server/thread_server.cpp — --mode thread: one OS thread per
// connection, running the same echo_connection() as the fiber variant inside a
// coop::blocking_scope, so its reads and writes block the thread in the kernel.
#include "echo_handler.hpp"
#include "server.hpp"

#include <app.hpp>
#include <coop/coop.hpp>

#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

namespace echo {
namespace {

using clock = std::chrono::steady_clock;

/// The connections being served, so that the drain can reach their sockets
/// from another thread.
///
/// Thread-safety: all members lock. A socket is closed only under the lock
/// (`close`), so `shutdown` never hits a descriptor number reused by a newer
/// connection. Never destroyed (see run_thread_server): detached connection
/// threads may touch it until their very last instruction.
class registry {
public:
  std::uint64_t add(int fd) {
    std::lock_guard lock(mutex_);
    ++threads_;
    std::uint64_t id = next_id_++;
    sockets_.emplace(id, fd);
    return id;
  }

  /// Closes the connection's socket and forgets it.
  void close(std::uint64_t id, coop::net::tcp_stream& stream) {
    std::lock_guard lock(mutex_);
    boost::system::error_code ignored;
    stream.close(ignored);
    sockets_.erase(id);
  }

  /// The connection's thread is about to return: the last thing it does.
  void thread_done() {
    std::lock_guard lock(mutex_);
    if (--threads_ == 0) all_done_.notify_all();
  }

  /// Waits until every connection thread called thread_done(), or `deadline`.
  bool wait_all_done(clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    return all_done_.wait_until(lock, deadline, [&] { return threads_ == 0; });
  }

  /// Shuts every socket down both ways: blocked reads see end of stream,
  /// blocked writes fail, and each handler returns. Returns how many.
  std::size_t shutdown_all() {
    std::lock_guard lock(mutex_);
    for (auto& [id, fd] : sockets_)
      ::shutdown(fd, SHUT_RDWR);
    return sockets_.size();
  }

private:
  std::mutex mutex_;
  std::condition_variable all_done_;
  std::unordered_map<std::uint64_t, int> sockets_; ///< id -> descriptor
  std::uint64_t next_id_ = 0;
  std::size_t threads_ = 0;
};

/// What a connection thread starts with; it owns it.
struct connection_start {
  coop::net::tcp_stream stream;
  std::uint64_t id;
  registry* connections;
  server_stats* stats;
  handler_options options;
};

void* connection_main(void* arg) {
  auto* start = static_cast<connection_start*>(arg);
  registry& connections = *start->connections;
  server_stats& stats = *start->stats;
  try {
    coop::blocking_scope blocking;
    echo_connection(start->stream, start->options); // the same handler as in fiber mode
  } catch (const std::exception& e) {               // must not escape a thread: that would terminate the server
    log(std::string("connection handler failed: ") + e.what());
  }
  connections.close(start->id, start->stream);
  delete start;
  stats.live.fetch_sub(1, std::memory_order_relaxed);
  connections.thread_done();
  return nullptr;
}

/// Small detached threads, so that 10,000 of them fit comfortably.
class thread_attributes {
public:
  explicit thread_attributes(std::size_t stack_size) {
    ::pthread_attr_init(&attr_);
    ::pthread_attr_setstacksize(&attr_, stack_size);
    ::pthread_attr_setdetachstate(&attr_, PTHREAD_CREATE_DETACHED);
  }
  ~thread_attributes() { ::pthread_attr_destroy(&attr_); }
  thread_attributes(const thread_attributes&) = delete;
  thread_attributes& operator=(const thread_attributes&) = delete;
  const pthread_attr_t* get() const noexcept { return &attr_; }

private:
  pthread_attr_t attr_;
};

void accept_loop(coop::net::tcp_listener& listener, const std::atomic<bool>& stopping, const server_config& config,
                 registry& connections, server_stats& stats) {
  coop::blocking_scope blocking;
  thread_attributes attributes(config.thread_stack_size);
  accept_backoff backoff;
  while (!stopping.load()) {
    boost::system::error_code ec;
    coop::net::tcp_stream stream = listener.accept(ec);
    if (ec) {
      if (stopping.load()) break;
      if (ec == boost::asio::error::connection_aborted || ec == boost::asio::error::connection_reset) continue;
      if (!backoff.in_episode())
        log("accept: " + ec.message() + "; backing off while serving " + std::to_string(stats.live.load()) +
            " connections");
      std::this_thread::sleep_for(backoff.next());
      continue;
    }
    if (backoff.in_episode()) {
      log("accept: accepting again");
      backoff.reset();
    }
    if (!stats.try_admit(config.max_connections)) continue; // `stream` closes here: full
    int fd = stream.socket().native_handle();
    auto* start =
        new connection_start{std::move(stream), 0, &connections, &stats, handler_options{config.idle_timeout}};
    start->id = connections.add(fd);
    pthread_t thread;
    if (int rc = ::pthread_create(&thread, attributes.get(), connection_main, start); rc != 0) {
      connections.close(start->id, start->stream);
      delete start;
      stats.live.fetch_sub(1);
      stats.rejected.fetch_add(1);
      connections.thread_done();
      if (!backoff.in_episode())
        log(std::string("cannot start a connection thread: ") + std::strerror(rc) + "; backing off");
      std::this_thread::sleep_for(backoff.next());
    }
  }
}

} // namespace

int run_thread_server(const server_config& config) {
  server_stats stats;
  // Deliberately never deleted: detached connection threads use it up to
  // their last instruction, possibly after main() has returned. Kept in a
  // static so it stays reachable (leak checkers see it is not lost).
  static registry* const connections = new registry;

  std::optional<coop::net::tcp_listener> listener;
  try {
    coop::blocking_scope blocking; // the listener is used synchronously only
    listener.emplace(config.endpoint);
  } catch (const std::exception& e) {
    log(std::string("cannot listen: ") + e.what());
    return 1;
  }

  std::atomic<bool> stopping{false};
  std::thread acceptor([&] { accept_loop(*listener, stopping, config, *connections, stats); });

  coop_app::announce_listening(listener->local_endpoint());

  int sig = wait_for_stop_signal(config, stats);
  auto deadline = clock::now() + config.drain_timeout;
  log(std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") + ": stopped accepting; draining " +
      std::to_string(stats.live.load()) + " connections");
  stopping = true;
  // A thread blocked in accept() is not woken by close(); shutdown() wakes it.
  ::shutdown(listener->acceptor().native_handle(), SHUT_RDWR);
  acceptor.join();
  listener->close();

  if (!connections->wait_all_done(deadline)) {
    stats.cut_off.fetch_add(connections->shutdown_all());
    connections->wait_all_done(clock::now() + std::chrono::seconds(10));
  }
  log("stopped: " + std::to_string(stats.accepted.load()) + " connections served, " +
      std::to_string(stats.rejected.load()) + " refused, " + std::to_string(stats.cut_off.load()) +
      " closed at the drain deadline");
  return 0;
}

} // namespace echo
