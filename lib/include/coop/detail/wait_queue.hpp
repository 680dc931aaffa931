// coop/detail/wait_queue.hpp — fibers (or plain threads) waiting on a condition
// guarded by a spinlock; interruptible by timeouts and cancellation.
#pragma once

#include <coop/detail/fiber_state.hpp>

#include <boost/fiber/context.hpp>
#include <boost/fiber/detail/spinlock.hpp>
#include <boost/fiber/waker.hpp>
#include <boost/intrusive/list.hpp>

namespace coop::detail {

using spinlock = boost::fibers::detail::spinlock;
using spinlock_lock = boost::fibers::detail::spinlock_lock;

class wait_queue;

/// One waiting context. Lives on the waiter's stack. Whoever unlinks it from
/// its queue (under the queue's lock) owns the single wake-up.
class waiter final : public interrupter {
public:
  boost::intrusive::list_member_hook<> hook;
  void* payload = nullptr; ///< what the waker hands over, defined by the queue's owner
  int status = 0;          ///< likewise

  void interrupt() noexcept override;
  void wake() noexcept {
    auto w = waker_; // copy: the waiter may be gone as soon as it runs again
    w.wake();
  }

private:
  friend class wait_queue;
  boost::fibers::waker waker_;
  spinlock* lock_ = nullptr;
  wait_queue* queue_ = nullptr;
  bool interrupted_ = false;
};

class wait_queue {
public:
  /// Parks the calling context until another one pops and wakes `w`, or a
  /// timeout/cancellation of the calling fiber interrupts the wait. `lk` is
  /// held on entry and released on return. Returns the interruption's error,
  /// or success when woken normally. Plain threads may wait too (not
  /// interruptible).
  boost::system::error_code wait(spinlock_lock& lk, waiter& w) noexcept {
    fiber_state* fs = current_fiber_state();
    if (fs) {
      if (auto ec = fs->pending_interrupt()) {
        lk.unlock();
        return ec;
      }
    }
    auto* ctx = boost::fibers::context::active();
    w.waker_ = ctx->create_waker();
    w.lock_ = lk.mutex();
    w.queue_ = this;
    list_.push_back(w);
    if (fs) fs->parked = &w;
    ctx->suspend(lk);
    if (fs) fs->parked = nullptr;
    if (w.interrupted_) {
      auto ec = fs->pending_interrupt();
      return ec ? ec : make_error_code(errc::timed_out);
    }
    return {};
  }

  /// Caller holds the lock. Removes and returns the first waiter, or nullptr.
  waiter* pop() noexcept {
    if (list_.empty()) return nullptr;
    waiter& w = list_.front();
    list_.pop_front();
    return &w;
  }
  bool empty() const noexcept { return list_.empty(); }

private:
  friend class waiter;
  boost::intrusive::list<waiter,
                         boost::intrusive::member_hook<waiter, boost::intrusive::list_member_hook<>, &waiter::hook>>
      list_;
};

inline void waiter::interrupt() noexcept {
  spinlock_lock lk(*lock_);
  if (!hook.is_linked()) return; // already woken: the interruption applies to the next wait
  queue_->list_.erase(queue_->list_.iterator_to(*this));
  interrupted_ = true;
  wake();
}

} // namespace coop::detail
