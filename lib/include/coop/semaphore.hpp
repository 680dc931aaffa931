// coop/semaphore.hpp — a counting semaphore with FIFO hand-off.
#pragma once

#include <coop/detail/sync_wait.hpp>

#include <chrono>
#include <cstddef>

namespace coop {

/// A counting semaphore: `acquire()` takes a unit, waiting while there is
/// none; `release()` gives one back. Fair: a `release()` hands its unit
/// straight to the longest waiter (under the semaphore's lock), so a fiber
/// that releases and at once acquires again queues behind the others instead
/// of starving them.
///
/// Not bounded (gevent's `Semaphore`, not its `BoundedSemaphore`): `release()`
/// may raise the count above the initial value, so a semaphore that starts at
/// 0 serves as a counted signal. When it guards a limited resource, pair each
/// release with an acquire (or use `coop::pool`, which does).
///
/// Waits follow coop's rules for every blocking call (docs/runtime.md):
/// `acquire` fails at entry when a timeout or cancel is due (even when a unit
/// is free), a `coop::timeout` or a cancel ends a wait in progress, a
/// `coop::shield` defers both. A wait that is interrupted takes no unit; a
/// unit handed over as the interruption arrives is kept (the call succeeds).
/// The timed forms report their own deadline as false.
///
/// Thread-safety: every member may be called concurrently from fibers of any
/// runtime thread and from plain threads (which may wait too); `release()`
/// and `try_acquire()` never block and may be called from Asio handlers.
/// Destroy it only when nobody waits on it.
///
/// Example:
/// @code
///   coop::semaphore db_slots(8);
///   db_slots.acquire();                  // at most 8 fibers past this line
///   query();
///   db_slots.release();
/// @endcode
class semaphore {
public:
  explicit semaphore(std::size_t initial) noexcept : count_(initial) {}
  semaphore(const semaphore&) = delete;
  semaphore& operator=(const semaphore&) = delete;

  /// Takes a unit, waiting (FIFO) until one is free. Throws `timeout_error` / `cancelled`.
  void acquire();
  /// Like acquire(), reporting an interruption in `ec` instead (no unit taken then).
  void acquire(boost::system::error_code& ec);
  /// Takes a unit only if one is free now. Never waits, never interrupted.
  bool try_acquire() noexcept;

  /// Waits at most `d` for a unit: true when taken, false when `d` passed.
  template <class Rep, class Period> bool acquire_for(std::chrono::duration<Rep, Period> d) {
    return acquire_until(detail::deadline_after(d));
  }
  /// Like acquire_for; false with `ec` set when interrupted, false with `ec` clear when `d` passed.
  template <class Rep, class Period>
  bool acquire_for(std::chrono::duration<Rep, Period> d, boost::system::error_code& ec) {
    return acquire_until(detail::deadline_after(d), ec);
  }
  bool acquire_until(std::chrono::steady_clock::time_point deadline);
  bool acquire_until(std::chrono::steady_clock::time_point deadline, boost::system::error_code& ec);

  /// Gives back `n` units: each goes to the longest waiter, or to the count
  /// when nobody waits. Never blocks.
  void release(std::size_t n = 1) noexcept;

  /// Units free now (0 while anybody waits).
  std::size_t available() const noexcept;

private:
  detail::park_result acquire_impl(detail::steady_time deadline, boost::system::error_code& ec);

  mutable detail::spinlock lock_;
  std::size_t count_;
  detail::wait_queue waiters_; // non-empty only while count_ == 0
};

} // namespace coop
