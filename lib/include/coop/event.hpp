// coop/event.hpp — a flag that fibers and threads wait for (gevent's Event).
#pragma once

#include <coop/detail/sync_wait.hpp>

#include <chrono>

namespace coop {

/// A flag that can be waited for: `set()` wakes every current waiter and lets
/// later `wait()` calls return at once until `clear()`. A waiter woken by
/// `set()` returns true even if `clear()` follows before it runs.
///
/// Waits follow coop's rules for every blocking call (docs/runtime.md): they
/// fail at entry when a timeout or cancel is due (even on a set event), an
/// expired `coop::timeout` or a cancel ends a wait in progress, a
/// `coop::shield` defers both. The timed forms report their own deadline as
/// false, not as an exception.
///
/// Thread-safety: every member may be called concurrently from fibers of any
/// runtime thread, from plain threads (which may wait too) and from Asio
/// handlers; `set()`, `clear()` and `is_set()` never block. Destroy the event
/// only when nobody waits on it.
///
/// Example:
/// @code
///   coop::event ready;
///   auto t = coop::spawn([&] { load(); ready.set(); });
///   if (!ready.wait_for(5s)) std::cout << "still loading\n";
/// @endcode
class event {
public:
  event() = default;
  event(const event&) = delete;
  event& operator=(const event&) = delete;

  /// Sets the flag and wakes every waiter.
  void set() noexcept;
  /// Resets the flag; later waits block until the next `set()`.
  void clear() noexcept;
  bool is_set() const noexcept;

  /// Waits until the flag is set. Throws `timeout_error` / `cancelled`.
  void wait();
  /// Like wait(), reporting an interruption in `ec` (`errc::timed_out` / `errc::cancelled`).
  void wait(boost::system::error_code& ec);

  /// Waits at most `d`: true when the flag was set, false when `d` passed.
  template <class Rep, class Period> bool wait_for(std::chrono::duration<Rep, Period> d) {
    return wait_until(detail::deadline_after(d));
  }
  /// Like wait_for; false with `ec` set when interrupted, false with `ec` clear when `d` passed.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d, boost::system::error_code& ec) {
    return wait_until(detail::deadline_after(d), ec);
  }
  bool wait_until(std::chrono::steady_clock::time_point deadline);
  bool wait_until(std::chrono::steady_clock::time_point deadline, boost::system::error_code& ec);

private:
  detail::park_result wait_impl(detail::steady_time deadline, boost::system::error_code& ec);

  mutable detail::spinlock lock_;
  bool set_ = false;
  detail::wait_queue waiters_;
};

} // namespace coop
