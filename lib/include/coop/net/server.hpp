// coop/net/server.hpp — a listener, its accept loop and its connections, with
// one call that stops them (gevent's StreamServer.stop(timeout)).
#pragma once

#include <coop/detail/deadline.hpp>
#include <coop/event.hpp>
#include <coop/net/basic_listener.hpp>
#include <coop/net/serve.hpp>
#include <coop/task_group.hpp>

#include <chrono>
#include <cstddef>
#include <utility>

namespace coop::net {

/// A stream server: owns a listener and the group of its connection fibers.
/// `serve(handler)` runs the accept loop (`coop::net::serve`) in the calling
/// fiber; `stop(drain)`, called from another fiber, ends it in the order a
/// graceful shutdown needs:
///  1. the listener is closed at once: from then on a new client's connect
///     is refused (connections still waiting in the kernel's backlog are
///     reset), instead of hanging through the drain;
///  2. the connections still running get until the drain deadline to finish;
///  3. those left at the deadline are cancelled (their blocking calls fail
///     with `coop::cancelled`), and `stop` waits until they have unwound.
/// `stop` returns once `serve` has returned too, with the number of
/// connections that were cancelled at the deadline (0: all finished in time).
///
/// `serve` also returns when its own fiber is cancelled or its `coop::timeout`
/// expires; the listener is closed then too (nobody accepts any more), and
/// the connections keep running until `stop()` or the destructor.
///
/// `tcp_server` serves a `tcp_listener`, `unix_server` a `unix_listener`.
///
/// Thread-safety: like its listener, a server belongs to the runtime thread
/// that created the listener: call `serve`, `stop` and the destructor from
/// fibers of that thread. With one listener per runtime thread
/// (SO_REUSEPORT), make one server per thread and stop them all at once
/// (`runtime::run_on_each`). The destructor closes the listener, cancels the
/// connections still running and waits for them; destroy the server only
/// once `serve` has returned (after `stop`, or with the serving fiber joined).
///
/// Example (the main fiber stops the server on a signal):
/// @code
///   coop::net::tcp_server server(coop::net::tcp_listener({boost::asio::ip::make_address("127.0.0.1"), 8000}));
///   auto accepting = coop::spawn([&] { server.serve([](coop::net::tcp_stream c) { echo(c); }); });
///   coop::wait_for_signal({SIGINT, SIGTERM});
///   server.stop(5s);   // refuse new clients, give the others 5 s, cancel the rest
/// @endcode
template <class Protocol> class basic_server {
public:
  using listener_type = basic_listener<Protocol>;
  using stream_type = basic_stream<Protocol>;
  using endpoint_type = typename listener_type::endpoint_type;

  /// Takes `listener` (already listening: clients may connect from now on,
  /// and wait in its backlog until `serve` accepts them).
  explicit basic_server(listener_type listener, const serve_options& options = {})
      : listener_(std::move(listener)), options_(options) {
    serving_.set();
  }
  basic_server(const basic_server&) = delete;
  basic_server& operator=(const basic_server&) = delete;
  ~basic_server() {
    try {
      close_listener();
    } catch (...) { // another thread's server: its listener closes as it is destroyed
    }
  } // then connections_'s destructor cancels the connections and waits for them

  /// Accepts connections and runs `handler(stream)` for each in a fiber of
  /// `connections()` (see `coop::net::serve`: back-off when out of
  /// descriptors, `serve_options::max_connections`), until `stop()` is
  /// called or the calling fiber is cancelled or times out; returns normally
  /// then, with the listener closed. Returns at once after `stop()`.
  /// `handler` is copied into each connection's fiber.
  template <class Handler> void serve(Handler handler) {
    if (!listener_.is_open()) return; // stopped before it started
    serving_.clear();
    struct ended { // however serve ends, stop() may go on
      basic_server& s;
      ~ended() {
        s.close_listener();
        s.serving_.set();
      }
    } on_exit{*this};
    coop::net::serve(listener_, connections_, std::move(handler), options_);
  }

  /// Stops accepting, lets the connections run until `drain` has passed,
  /// cancels the rest and waits for them and for `serve` to return (see the
  /// class comment). Returns how many connections were cancelled. Shielded:
  /// it runs to the end in a fiber that is being cancelled or whose timeout
  /// expired (that is when servers stop); `drain` bounds the wait for the
  /// connections, their reaction to cancellation the rest. Call it from a
  /// fiber other than `serve`'s and other than the connections'.
  template <class Rep, class Period> std::size_t stop(std::chrono::duration<Rep, Period> drain) {
    return stop_until(detail::deadline_after(drain));
  }
  /// As `stop`, with the drain ending at `deadline` (one deadline for several servers).
  std::size_t stop_until(std::chrono::steady_clock::time_point deadline);

  /// The address clients connect to (the real port when listening on port 0).
  endpoint_type local_endpoint() const { return listener_.local_endpoint(); }
  /// False once `stop` was called or `serve` returned.
  bool is_accepting() const noexcept { return listener_.is_open(); }
  /// The connection fibers still running (`size()` counts them).
  task_group& connections() noexcept { return connections_; }
  listener_type& listener() noexcept { return listener_; }

private:
  void close_listener();

  listener_type listener_;
  serve_options options_;
  event serving_; ///< set while `serve` is not running
  task_group connections_;
};

using tcp_server = basic_server<boost::asio::ip::tcp>;
using unix_server = basic_server<boost::asio::local::stream_protocol>;

// Compiled once, in the library (lib/src/net/server.cpp).
extern template class basic_server<boost::asio::ip::tcp>;
extern template class basic_server<boost::asio::local::stream_protocol>;

} // namespace coop::net
