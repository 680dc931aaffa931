// coop/net/serve.hpp — the accept loop every stream server needs (gevent's StreamServer).
#pragma once

#include <coop/net/basic_listener.hpp>
#include <coop/net/tcp_listener.hpp>
#include <coop/task_group.hpp>

#include <cstddef>
#include <functional>
#include <optional>
#include <utility>

namespace coop::net {

/// How `serve` accepts: its connection limit, and how it reports trouble.
struct serve_options {
  /// Called when accept fails for lack of resources (out of descriptors,
  /// buffers, memory) or another error not tied to one connection: `serve`
  /// then backs off (1 ms, doubling up to 100 ms) while the connections it
  /// has keep running, and retries. Called once per episode, and once more
  /// with a cleared error code when accepting works again.
  std::function<void(const boost::system::error_code&)> on_accept_error{};
  /// Most connections served at once (0: no limit). While the group holds
  /// this many members `serve` stops accepting — new connections wait in
  /// the kernel's listen backlog, still unanswered — and accepts again as
  /// soon as one ends. It waits parked, interruptible like accept itself; a
  /// listener closed meanwhile is noticed once a connection ends (cancel the
  /// serving fiber to stop at once).
  std::size_t max_connections = 0;
};

} // namespace coop::net

namespace coop::detail {
/// The next connection, waiting out resource shortages; empty once the
/// calling fiber is cancelled or timed out, or the listener closed.
/// Compiled for TCP and Unix-domain listeners (lib/src/net/serve.cpp).
template <class Protocol>
std::optional<net::basic_stream<Protocol>> accept_for_serve(net::basic_listener<Protocol>& listener,
                                                            const net::serve_options& options);

/// Counts a connection of `serve` as open on the calling runtime thread
/// while it lives (coop::metrics_snapshot's `serve_open`).
class serve_connection_count {
public:
  serve_connection_count() noexcept;
  ~serve_connection_count();
  serve_connection_count(const serve_connection_count&) = delete;
  serve_connection_count& operator=(const serve_connection_count&) = delete;

private:
  void* worker_;
};

/// `serve` stops accepting at its `max_connections` (metrics: `serve_limit_waits`).
void note_serve_limit_wait() noexcept;
} // namespace coop::detail

namespace coop::net {

/// Accepts connections on `listener` (a `tcp_listener` or a `unix_listener`)
/// and runs `handler(stream)` (a `tcp_stream` or a `unix_stream`) for each
/// in a fiber of `connections`, until the calling fiber is cancelled (or its
/// `coop::timeout` expires) or the listener is closed; then returns normally,
/// leaving the connections running so the caller decides how to end them
/// (`cancel()`, or the group's destructor). The listener stays open: for a
/// graceful stop — refuse new clients, drain, cancel the rest — use
/// `coop::net::tcp_server` (coop/net/server.hpp), whose `stop(drain)` closes
/// the listener before it drains.
/// A connection that fails while being accepted (reset, aborted) is skipped.
/// With `options.max_connections`, the connections counted are the members
/// of `connections` (fibers spawned there otherwise count too).
/// `handler` is copied into each connection's fiber.
///
/// Example:
/// @code
///   coop::task_group connections;
///   coop::net::serve(listener, connections, [](coop::net::tcp_stream c) { echo(c); });
///   // after serve returns (its fiber cancelled): end the connections
///   connections.cancel();
/// @endcode
template <class Protocol, class Handler>
void serve(basic_listener<Protocol>& listener, task_group& connections, Handler handler,
           const serve_options& options = {}) {
  for (;;) {
    if (options.max_connections != 0) {
      if (connections.size() >= options.max_connections) coop::detail::note_serve_limit_wait();
      boost::system::error_code ec;
      connections.wait_size_below(options.max_connections, ec);
      if (ec) return; // cancelled or timed out, as when accept is interrupted
    }
    auto stream = coop::detail::accept_for_serve(listener, options);
    if (!stream) return;
    connections.spawn([h = handler, c = std::move(*stream)]() mutable {
      const coop::detail::serve_connection_count open;
      h(std::move(c));
    });
  }
}

} // namespace coop::net
