// coop/wait_group.hpp — waiting for a counted set of jobs (Go's sync.WaitGroup).
#pragma once

#include <coop/detail/sync_wait.hpp>

#include <chrono>
#include <cstddef>

namespace coop {

/// A counter of outstanding jobs: `add(n)` before starting them, `done()` as
/// each finishes, `wait()` until the counter is back at 0. A wait on a zero
/// counter returns at once (after the entry check); every waiter is woken
/// when the counter reaches 0. Bringing the counter below zero (more `done()`
/// than `add()`) throws `coop::usage_error` and leaves it unchanged.
///
/// Waits follow coop's rules for every blocking call (docs/runtime.md); the
/// timed forms report their own deadline as false.
///
/// Thread-safety: every member may be called concurrently from fibers of any
/// runtime thread and from plain threads (which may wait too); `add` and
/// `done` never block and may be called from Asio handlers. As in Go, call
/// `add` before the job that calls `done` can start. Destroy it only when
/// nobody waits on it.
///
/// Example:
/// @code
///   coop::wait_group wg;
///   for (auto& url : urls) {
///     wg.add(1);
///     coop::spawn([&wg, url] { fetch(url); wg.done(); }).detach();
///   }
///   wg.wait();
/// @endcode
class wait_group {
public:
  wait_group() = default;
  wait_group(const wait_group&) = delete;
  wait_group& operator=(const wait_group&) = delete;

  /// Adds `n` (which may be negative) to the counter; wakes every waiter when
  /// it reaches 0. Throws `usage_error` if it would go below 0.
  void add(std::ptrdiff_t n = 1);
  /// `add(-1)`.
  void done();
  /// The counter now.
  std::ptrdiff_t count() const noexcept;

  /// Waits until the counter is 0. Throws `timeout_error` / `cancelled`.
  void wait();
  /// Like wait(), reporting an interruption in `ec` instead.
  void wait(boost::system::error_code& ec);

  /// Waits at most `d`: true when the counter reached 0, false when `d` passed.
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
  std::ptrdiff_t count_ = 0;
  detail::wait_queue waiters_; // non-empty only while count_ > 0
};

} // namespace coop
