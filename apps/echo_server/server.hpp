// apps/echo_server/server.hpp — what the fiber and the thread variant of
// echo_server share: configuration, counters, accept back-off, stop signal.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

namespace echo {

struct server_config {
  boost::asio::ip::tcp::endpoint endpoint;
  unsigned threads = 1;                          ///< runtime threads (fiber mode)
  std::size_t max_connections = 0;               ///< 0: unlimited
  std::chrono::milliseconds idle_timeout{0};     ///< 0: never
  std::chrono::milliseconds drain_timeout{5000}; ///< after SIGINT/SIGTERM
  std::size_t thread_stack_size = 128 * 1024;    ///< per-connection stack, both modes
  std::chrono::milliseconds stats_interval{0};   ///< --stats-interval; 0: no stats lines
  /// Set: serve TLS with this context (--tls-cert/--tls-key; fiber mode only).
  /// Shared by every runtime thread; read-only once loaded.
  std::shared_ptr<boost::asio::ssl::context> tls;
  std::string admin; ///< --admin: coop::run_options::admin_socket (fiber mode)
};

/// How long a TLS handshake may take when no --idle-timeout bounds it.
inline constexpr std::chrono::seconds default_handshake_timeout{10};

/// Counters shared by every thread of the server.
struct server_stats {
  std::atomic<std::size_t> live{0};     ///< connections being served now
  std::atomic<std::size_t> accepted{0}; ///< connections handed to a handler
  std::atomic<std::size_t> rejected{0}; ///< closed at once (--max-connections, no thread)
  std::atomic<std::size_t> cut_off{0};  ///< still open at the drain deadline, then closed

  /// Claims a slot under --max-connections; false when the server is full.
  bool try_admit(std::size_t max) {
    std::size_t before = live.fetch_add(1, std::memory_order_relaxed);
    if (max != 0 && before >= max) {
      live.fetch_sub(1, std::memory_order_relaxed);
      rejected.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    accepted.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
};

/// Growing pause after the thread server's blocking accept fails for lack of
/// resources (EMFILE, ENFILE, ENOBUFS, ENOMEM): 1 ms, doubling up to 100 ms,
/// back to 1 ms after a success. (Fiber mode gets this from coop::net::serve.)
/// The connection stays in the kernel's backlog and is accepted later.
class accept_backoff {
public:
  /// The next pause; the first of an episode is also reported (once) by the caller.
  std::chrono::milliseconds next() {
    delay_ = std::clamp(delay_ * 2, std::chrono::milliseconds(1), std::chrono::milliseconds(100));
    return delay_;
  }
  bool in_episode() const noexcept { return delay_.count() != 0; }
  void reset() noexcept { delay_ = std::chrono::milliseconds(0); }

private:
  std::chrono::milliseconds delay_{0};
};

/// Blocks the calling thread until SIGINT or SIGTERM arrives; returns it.
/// main() blocks both signals in every thread before starting any, so they
/// queue for this call instead of killing the process. While it waits, every
/// `config.stats_interval` (when not 0) it logs one line
/// "echo_server: stats: connections N, fibers F, accepted A, refused R"
/// (F: coop::fiber_count(), the live fibers of the process).
int wait_for_stop_signal(const server_config& config, const server_stats& stats);

/// Prints "echo_server: MESSAGE" on stderr.
void log(const std::string& message);

/// Serve until SIGINT/SIGTERM, drain, return the exit status. Both print the
/// "listening on" line once the listening sockets exist.
int run_fiber_server(const server_config& config);
int run_thread_server(const server_config& config);

} // namespace echo
