// coop/timeout.hpp — scoped timeouts (gevent's Timeout) and cancellation shields.
#pragma once

#include <coop/detail/fiber_state.hpp>

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>

namespace coop {

/// While a `timeout` object lives, every blocking call of the fiber that
/// created it fails with `coop::timeout_error` (or `errc::timed_out` in the
/// `error_code` forms) once the deadline has passed — including a call that
/// is already waiting when it expires. Calls that complete without blocking
/// are not interrupted; the next blocking one is. Scopes nest; the earliest
/// deadline wins.
///
/// On a plain thread inside a `coop::blocking_scope` it bounds the blocking
/// reads and writes of `coop::net::tcp_stream` the same way.
///
/// Thread-safety: create, use and destroy it on one fiber, as a local object.
///
/// Example:
/// @code
///   try {
///     coop::timeout t(50ms);
///     coop::sleep_for(1s);
///   } catch (const coop::timeout_error&) { std::cout << "timed out\n"; }
/// @endcode
class timeout {
public:
  explicit timeout(std::chrono::steady_clock::time_point deadline);
  template <class Rep, class Period>
  explicit timeout(std::chrono::duration<Rep, Period> d)
      : timeout(std::chrono::steady_clock::now() + std::chrono::ceil<std::chrono::steady_clock::duration>(d)) {}
  ~timeout();
  timeout(const timeout&) = delete;
  timeout& operator=(const timeout&) = delete;

  /// True once the deadline has passed (and the scope was not cancelled).
  bool expired() const noexcept {
    return node_.expired || (!node_.disarmed && std::chrono::steady_clock::now() >= node_.deadline);
  }
  /// Disarms the timeout early; the scope then never fires.
  void cancel() noexcept;

private:
  struct link {
    timeout* self;
  };
  detail::fiber_state* fs_;
  detail::timeout_node node_;
  std::shared_ptr<link> link_;
  boost::asio::steady_timer timer_;
};

/// Defers cancellation of the calling fiber while it lives, so clean-up code
/// can block (flush, say goodbye) after `task::cancel()`. Timeouts created
/// outside the shield are deferred too; ones created inside still apply.
class shield {
public:
  shield();
  ~shield();
  shield(const shield&) = delete;
  shield& operator=(const shield&) = delete;

private:
  detail::fiber_state* fs_;
};

} // namespace coop
