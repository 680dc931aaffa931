// coop/timeout.hpp — scoped timeouts (gevent's Timeout) and cancellation shields.
#pragma once

#include <coop/detail/wait_context.hpp>

#include <chrono>

namespace coop {

/// While a `timeout` object lives, every blocking call of the fiber (or plain
/// thread) that created it fails with `coop::timeout_error` (or
/// `errc::timed_out` in the `error_code` forms) once the deadline has passed —
/// including a call that is already waiting when it expires. Scopes nest; the
/// earliest deadline wins. A blocking call made after the deadline fails at
/// once, even if it could complete without waiting, so a loop that never has
/// to wait still ends. `docs/runtime.md` has the full rules.
///
/// It costs no timer and no allocation: waits started inside the scope sleep
/// with the deadline.
///
/// Thread-safety: create, use and destroy it on one fiber or thread, as a
/// local object (scopes may end in any order, e.g. when held in optionals).
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
  explicit timeout(std::chrono::steady_clock::time_point deadline) noexcept;
  template <class Rep, class Period>
  explicit timeout(std::chrono::duration<Rep, Period> d) noexcept
      : timeout(detail::deadline_after(d), detail::saturated_ns(d)) {}
  ~timeout();
  timeout(const timeout&) = delete;
  timeout& operator=(const timeout&) = delete;

  /// True once the deadline has passed (and the scope was not cancelled).
  bool expired() const noexcept {
    return node_.expired || (!node_.disarmed && std::chrono::steady_clock::now() >= node_.deadline);
  }
  /// Disarms the timeout early; the scope then never fires.
  void cancel() noexcept;
  std::chrono::steady_clock::time_point deadline() const noexcept { return node_.deadline; }

private:
  timeout(std::chrono::steady_clock::time_point deadline, std::chrono::nanoseconds duration) noexcept;

  detail::wait_context* wc_;
  detail::timeout_node node_;
};

/// Defers cancellation of the calling fiber while it lives, so clean-up code
/// can block (flush, say goodbye) after `task::cancel()`. Timeouts created
/// outside the shield are deferred too; ones created inside still apply. A
/// wait in progress inside the shield is not woken by what it defers; the
/// first blocking call after the shield ends fails with it.
class shield {
public:
  shield() noexcept;
  ~shield();
  shield(const shield&) = delete;
  shield& operator=(const shield&) = delete;

private:
  detail::wait_context* wc_;
};

} // namespace coop
