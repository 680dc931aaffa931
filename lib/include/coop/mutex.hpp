// coop/mutex.hpp — a mutual-exclusion lock that parks instead of blocking the thread.
#pragma once

#include <coop/detail/sync_wait.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace coop {

namespace detail {
struct mutex_test_access; // the tests' view of the internals
} // namespace detail

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
/// Cost: taking a free mutex and releasing one that nobody waits for are one
/// atomic operation each (plus the entry check); the wait queue's spinlock is
/// touched only when a caller has to wait. A caller that finds the mutex
/// held by a fiber or thread running on another thread first spins briefly
/// (a few hundred ns) before it queues. Once callers queue, each hand-off
/// goes to the longest waiter and, across threads, costs a wake-up of that
/// waiter's thread (microseconds): under steady contention from several
/// runtime threads the holders then take turns at that pace. A critical
/// section that never waits (no coop blocking call inside it) and is shared
/// by several threads is better protected by a `std::mutex`: it blocks the
/// thread only for the few nanoseconds the other holder needs.
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
  friend struct detail::mutex_test_access;

  /// The low bit of `state_`: callers are queued (or were, and may have left).
  static constexpr std::uintptr_t queued = 1;

  detail::park_result lock_impl(detail::steady_time deadline, boost::system::error_code& ec);
  detail::park_result lock_slow(detail::wait_context& self, std::uintptr_t seen, detail::steady_time deadline,
                                boost::system::error_code& ec);
  void unlock_slow(std::uintptr_t self, std::uintptr_t seen);
  /// After a wait that ended without the mutex: clears `queued` if nobody is left.
  void left_queue() noexcept;

  /// 0 when free; otherwise the holder's wait context address, with
  /// `queued` set while callers wait. Without `queued`, lock and unlock are
  /// one compare-and-swap each; with it, the holder changes only under `lock_`.
  std::atomic<std::uintptr_t> state_{0};
  /// The thread the holder took the mutex on (a hint: a caller on that same
  /// thread does not spin, the holder cannot run meanwhile).
  std::atomic<const void*> holder_thread_{nullptr};
  detail::spinlock lock_;      // guards waiters_ and the hand-off
  detail::wait_queue waiters_; // non-empty only while held
};

} // namespace coop
