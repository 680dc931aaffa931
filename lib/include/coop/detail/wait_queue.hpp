// coop/detail/wait_queue.hpp — fibers (or plain threads) waiting on a condition
// guarded by a spinlock; interruptible by timeouts and cancellation.
#pragma once

#include <coop/detail/fiber_state.hpp>

#include <boost/fiber/context.hpp>
#include <boost/fiber/detail/spinlock.hpp>
#include <boost/fiber/waker.hpp>
#include <boost/intrusive/list.hpp>

#include <atomic>
#include <cstddef>

namespace coop::detail {

using spinlock = boost::fibers::detail::spinlock;
using spinlock_lock = boost::fibers::detail::spinlock_lock;

class wait_queue;
class select_state;

/// One waiting context. Lives on the waiter's stack. Whoever unlinks it from
/// its queue (under the queue's lock) owns the single wake-up.
class waiter final : public interrupter {
public:
  boost::intrusive::list_member_hook<> hook;
  void* payload = nullptr; ///< what the waker hands over, defined by the queue's owner
  int status = 0;          ///< likewise

  void interrupt() noexcept override;
  /// Wakes the waiting context; called once, by whoever claimed the waiter.
  inline void wake() noexcept;
  /// For a waiter that is one case of a `select`: tries to make this case the
  /// one that completes. Always true for a plain waiter.
  inline bool claim() noexcept;

private:
  friend class wait_queue;
  friend class select_state;
  boost::fibers::waker waker_;
  select_state* select_ = nullptr;
  int case_index_ = 0;
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

  /// Caller holds the lock. Removes and returns the first waiter that could
  /// be claimed (select cases already decided elsewhere are dropped), or nullptr.
  waiter* pop() noexcept {
    while (!list_.empty()) {
      waiter& w = list_.front();
      list_.pop_front();
      if (w.claim()) return &w;
    }
    return nullptr;
  }
  /// Caller holds the lock. Queues a select case without suspending.
  void enqueue(waiter& w) noexcept { list_.push_back(w); }
  /// Caller holds the lock. Removes `w` if it is still queued.
  void remove(waiter& w) noexcept {
    if (w.hook.is_linked()) list_.erase(list_.iterator_to(w));
  }
  bool empty() const noexcept { return list_.empty(); }

private:
  friend class waiter;
  boost::intrusive::list<waiter,
                         boost::intrusive::member_hook<waiter, boost::intrusive::list_member_hook<>, &waiter::hook>>
      list_;
};

/// What one `coop::select` call waits on: one waiter per case, each queued in
/// its channel. Exactly one case wins (claimed with a CAS); the winner's
/// channel completes the operation, then wakes the fiber. Lives on the
/// selecting fiber's stack.
class select_state final : public interrupter {
public:
  static constexpr int none = -1;
  static constexpr int interrupted = -2;

  explicit select_state(fiber_state* fs) noexcept : fs_(fs) {}

  void attach(waiter& w, int index) noexcept {
    w.select_ = this;
    w.case_index_ = index;
  }
  bool claim(int index) noexcept {
    int expected = none;
    return winner_.compare_exchange_strong(expected, index, std::memory_order_acq_rel);
  }
  int winner() const noexcept { return winner_.load(std::memory_order_acquire); }

  /// The claimed case is complete: let the fiber go on (waking it if parked).
  void complete() noexcept {
    spinlock_lock lk(lock_);
    done_ = true;
    if (!parked_) return;
    parked_ = false;
    auto w = waker_;
    lk.unlock(); // never touch *this after the wake: the fiber may return at once
    w.wake();
  }

  /// Parks the fiber until a case completed (or the select was interrupted).
  void wait(std::size_t n_cases, void (*unlink_case)(void*, int), void* ctx) noexcept {
    unlink_ = unlink_case;
    unlink_ctx_ = ctx;
    n_cases_ = n_cases;
    spinlock_lock lk(lock_);
    if (done_) return;
    auto* self = boost::fibers::context::active();
    waker_ = self->create_waker();
    parked_ = true;
    if (fs_) fs_->parked = this;
    self->suspend(lk);
    if (fs_) fs_->parked = nullptr;
  }

  /// Timeout or cancellation while parked (on the fiber's own thread).
  void interrupt() noexcept override {
    for (std::size_t i = 0; i < n_cases_; ++i)
      unlink_(unlink_ctx_, static_cast<int>(i));
    if (claim(interrupted)) complete();
  }

private:
  fiber_state* fs_;
  std::atomic<int> winner_{none};
  spinlock lock_;
  bool done_ = false;
  bool parked_ = false;
  boost::fibers::waker waker_;
  void (*unlink_)(void*, int) = nullptr;
  void* unlink_ctx_ = nullptr;
  std::size_t n_cases_ = 0;
};

inline bool waiter::claim() noexcept {
  return !select_ || select_->claim(case_index_);
}

inline void waiter::wake() noexcept {
  if (select_) return select_->complete();
  auto w = waker_; // copy: the waiter may be gone as soon as it runs again
  w.wake();
}

inline void waiter::interrupt() noexcept {
  spinlock_lock lk(*lock_);
  if (!hook.is_linked()) return; // already woken: the interruption applies to the next wait
  queue_->list_.erase(queue_->list_.iterator_to(*this));
  interrupted_ = true;
  wake();
}

} // namespace coop::detail
