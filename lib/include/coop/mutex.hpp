// coop/mutex.hpp — a mutual-exclusion lock that parks instead of blocking the thread.
#pragma once

#include <coop/detail/sync_wait.hpp>

#include <chrono>

namespace coop {

/// A mutex for fibers (and plain threads): `lock()` parks the calling fiber
/// while another holder has it, so the other fibers of its thread run on. It
/// meets the standard Lockable and TimedLockable requirements, so
/// `std::lock_guard`, `std::unique_lock` and `std::scoped_lock` work with it.
///
/// - Fair: `unlock()` hands the mutex straight to the longest waiter (FIFO),
///   under its lock.
/// - Not recursive: `lock()` by the holder throws `coop::usage_error` (it
///   would wait for itself). `unlock()` by anyone but the holder, or of an
///   unlocked mutex, throws `usage_error` too. The holder is the calling fiber
///   (or plain thread), remembered by its wait context's address — a cheap
///   check, not a proof.
/// - Interruptible like every blocking call (docs/runtime.md): `lock()` fails
///   at entry in a cancelled fiber or an expired `coop::timeout`, even when
///   the mutex is free, and a wait in progress ends with `timeout_error` /
///   `cancelled`; a `coop::shield` defers both. `std::lock_guard` then
///   propagates the exception from its constructor and the mutex is not held.
///   Use `lock(ec)` or `try_lock_for` to handle it without exceptions.
///
/// Do not hold it across a long wait that others need to make progress; it
/// protects data, it does not order fibers (use `event` or a `channel`).
///
/// Thread-safety: every member may be called from fibers of any runtime
/// thread and from plain threads; the holder may be on any of them. Destroy
/// it unlocked, when nobody waits.
///
/// Example:
/// @code
///   coop::mutex m;
///   std::map<std::string, int> counts;
///   {
///     std::lock_guard lock(m);
///     ++counts[name];
///   }
/// @endcode
class mutex {
public:
  mutex() = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  /// Takes the mutex, waiting (FIFO) while it is held. Throws `timeout_error`
  /// / `cancelled` when interrupted (then it is not held), `usage_error` when
  /// the caller already holds it.
  void lock();
  /// Like lock(), reporting an interruption in `ec` instead.
  void lock(boost::system::error_code& ec);
  /// Takes the mutex only if it is free now. Never waits, never interrupted.
  bool try_lock() noexcept;

  /// Waits at most `d`: true when taken, false when `d` passed.
  template <class Rep, class Period> bool try_lock_for(std::chrono::duration<Rep, Period> d) {
    return try_lock_until(detail::deadline_after(d));
  }
  /// Like try_lock_for; false with `ec` set when interrupted, false with `ec` clear when `d` passed.
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> d, boost::system::error_code& ec) {
    return try_lock_until(detail::deadline_after(d), ec);
  }
  bool try_lock_until(std::chrono::steady_clock::time_point deadline);
  bool try_lock_until(std::chrono::steady_clock::time_point deadline, boost::system::error_code& ec);

  /// Releases the mutex, handing it to the longest waiter. Never blocks.
  /// Throws `usage_error` when the caller does not hold it.
  void unlock();

private:
  detail::park_result lock_impl(detail::steady_time deadline, boost::system::error_code& ec);

  detail::spinlock lock_;
  const detail::wait_context* owner_ = nullptr; // null: unlocked
  detail::wait_queue waiters_;                  // non-empty only while held
};

} // namespace coop
