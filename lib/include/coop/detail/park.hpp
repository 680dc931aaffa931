// coop/detail/park.hpp — the one way coop suspends a fiber (or a plain thread).
//
// Every blocking call of coop ends up here: Asio operations through the
// coop::yield token, channel pushes and pops, select, sleep, join, the
// runtime's own waits. The loop below is the only code that decides when a
// wait is interrupted and what it then reports.
#pragma once

#include <coop/detail/wait_context.hpp>

#include <boost/fiber/context.hpp>
#include <boost/fiber/detail/cpu_relax.hpp>
#include <boost/fiber/detail/spinlock.hpp>
#include <boost/fiber/waker.hpp>

#include <mutex>
#include <thread>

namespace coop::detail {

using spinlock = boost::fibers::detail::spinlock;

/// Takes `m` without `spinlock_ttas::lock()`. That one seeds a thread_local
/// back-off generator from a `std::random_device` (a 5 KiB object) and so
/// reserves a 5 KiB frame on every call, which -fstack-clash-protection
/// probes: every fiber that parked held a second resident stack page (8 KiB
/// of RSS per connection of echo_server instead of 4). The lock is held for
/// a few instructions, contended only by another thread waking one of this
/// thread's fibers: spinning, then yielding the CPU, is enough.
inline void lock_spinlock(spinlock& m) noexcept {
  for (unsigned tries = 0; !m.try_lock(); ++tries) {
    if (tries < 64) {
      cpu_relax(); // Boost.Fiber's macro (a pause instruction)
    } else {
      std::this_thread::yield();
    }
  }
}

/// Boost.Fiber's `spinlock_lock` (what its `context::suspend` and
/// `wait_until` take), locking with `lock_spinlock`.
class spinlock_lock : public boost::fibers::detail::spinlock_lock {
  using base = boost::fibers::detail::spinlock_lock;

public:
  spinlock_lock() noexcept = default;
  explicit spinlock_lock(spinlock& m) noexcept : base(m, std::defer_lock) { lock(); }
  spinlock_lock(spinlock& m, std::defer_lock_t) noexcept : base(m, std::defer_lock) {}
  void lock() noexcept {
    spinlock& m = *mutex();
    lock_spinlock(m);
    base::release();
    static_cast<base&>(*this) = base(m, std::adopt_lock);
  }
};

/// How a wait ended.
enum class park_result {
  completed,   ///< the awaited thing happened (it wins over any interruption)
  interrupted, ///< a cancel or timeout was due; `ec` says which; nothing happened
  deadline,    ///< the call's own deadline passed (e.g. `pop_until`); nothing happened
};

/// Suspends the calling context until `site` completes, an interruption is
/// due (see `wait_context`), or `own_deadline` passes.
///
/// `lk` guards the site's state; it is held on entry and released on return.
/// The caller has already passed `wc.checkpoint()`. A `Site` provides, all
/// called with `lk` held:
///   - `bool completed()`: the awaited thing happened;
///   - `void arm(const boost::fibers::waker&)`: registers the waker that the
///     completer will wake (the first call also queues the site, if it
///     queues at all); re-armed with a fresh waker after each wake-up;
///   - `bool withdraw(spinlock_lock& lk, const error_code& why)`: gives up
///     the wait because of the interruption `why` (empty: the call's own
///     deadline passed); true when it is withdrawn and will not complete (it
///     may release `lk`), false when completion is already under way or must
///     be awaited (an Asio operation being cancelled): the loop then waits
///     for it, uninterruptibly, and the site reports its completion knowing
///     `why`;
///   - optionally `void interrupt_now(const error_code& why)`, called without
///     `lk` on the context's own thread while it is parked, when a cancel
///     arrives: a site that can be interrupted from outside (an Asio
///     operation, cancelled on the spot while its I/O object surely still
///     exists) does it there, and completes as usual. Other sites are woken
///     and withdraw themselves.
///
/// How the wait ended is the return value alone: `ec` is set exactly when
/// it is `interrupted` (to the interruption). A wait that completed while an
/// interruption was withdrawing it is `completed`, with `ec` clear: the
/// completion wins, and the interruption stays due for the next blocking
/// call.
template <class Site>
park_result park(wait_context& wc, spinlock_lock& lk, Site& site, const wait_info& info, steady_time own_deadline,
                 boost::system::error_code& ec) noexcept {
  ec.clear();
  boost::fibers::context* self = wc.self_context ? wc.self_context : boost::fibers::context::active();
  bool withdrawing = false;
  bool again = false; // a wake-up that ended nothing: the same wait goes on
  park_result reason = park_result::interrupted;
  for (;;) {
    if (site.completed()) break;
    if (!withdrawing) {
      const boost::system::error_code why = wc.pending_interrupt();
      if (!why && own_deadline != no_deadline && std::chrono::steady_clock::now() >= own_deadline)
        reason = park_result::deadline;
      if (why || reason == park_result::deadline) {
        if (site.withdraw(lk, why)) {
          if (lk.owns_lock()) lk.unlock();
          if (reason == park_result::interrupted) ec = why;
          return reason;
        }
        withdrawing = true;
        continue;
      }
    }
    boost::fibers::waker w = self->create_waker();
    site.arm(w);
    steady_time deadline = no_deadline;
    if (!withdrawing) {
      deadline = wc.interrupt_deadline();
      if (own_deadline < deadline) deadline = own_deadline;
    }
    struct hook_args {
      Site* site;
      wait_context* wc;
      boost::fibers::waker* w;
    } args{&site, &wc, &w};
    wait_interrupter hook{[](void* p) {
                            auto& a = *static_cast<hook_args*>(p);
                            if constexpr (requires { a.site->interrupt_now(a.wc->pending_interrupt()); })
                              a.site->interrupt_now(a.wc->pending_interrupt());
                            else
                              a.w->wake();
                          },
                          &args};
    wc.enter_wait(info, deadline, withdrawing ? nullptr : &hook, &w, again);
    again = true;
    if (deadline == no_deadline)
      self->suspend(lk);
    else
      self->wait_until(deadline, lk, boost::fibers::waker(w));
    wc.leave_wait();
    if (wc.trace_requested) [[unlikely]]
      wc.trace_wait(); // woken by the diagnostics, to say where it waits
    lk.lock();
  }
  if (lk.owns_lock()) lk.unlock();
  return park_result::completed;
}

/// A site for a context that waits on nothing but time or interruption
/// (sleep): it never completes and withdraws at once.
struct time_site {
  bool completed() const noexcept { return false; }
  void arm(const boost::fibers::waker&) noexcept {}
  bool withdraw(spinlock_lock&, const boost::system::error_code&) noexcept { return true; }
};

/// A site completed by a flag that another context sets (under the same
/// lock) before waking the stored waker; withdraws at once.
struct flag_site {
  bool done = false;
  bool armed = false;
  boost::fibers::waker waker;

  bool completed() const noexcept { return done; }
  void arm(const boost::fibers::waker& w) noexcept {
    waker = w;
    armed = true;
  }
  bool withdraw(spinlock_lock&, const boost::system::error_code&) noexcept { return true; }
  /// Called by the completer with the lock held.
  void complete() noexcept {
    done = true;
    if (armed) waker.wake();
  }
};

} // namespace coop::detail
