// coop/detail/wait_queue.hpp — fibers (or plain threads) queued on a condition
// guarded by a spinlock: channels, joins, task groups. Waits go through `park`.
#pragma once

#include <coop/detail/park.hpp>
#include <coop/detail/select_state.hpp>

#include <boost/intrusive/list.hpp>

#include <atomic>
#include <cstddef>

namespace coop::detail {

class wait_queue;

/// One waiting context, on the waiter's stack. Whoever unlinks it from its
/// queue (under the queue's lock) completes it and owns the single wake-up,
/// which it delivers before releasing the lock.
class waiter {
public:
  boost::intrusive::list_member_hook<> hook;
  void* payload = nullptr; ///< what the waker hands over, defined by the queue's owner
  int status = 0;          ///< likewise

  /// Makes this waiter case `index` of the `select` that `st` decides.
  void join_select(select_state& st, int index) noexcept {
    select_ = &st;
    case_index_ = index;
  }
  /// For a waiter that is one case of a `select`: tries to make this case the
  /// one that completes. Always true for a plain waiter.
  bool claim() noexcept { return !select_ || select_->claim(case_index_); }
  /// Wakes the waiting context; called once, by whoever claimed the waiter,
  /// with the queue's lock held.
  void wake() noexcept {
    if (select_) return select_->complete();
    waker_.wake();
  }

private:
  friend class wait_queue;
  boost::fibers::waker waker_;
  bool armed_ = false;
  select_state* select_ = nullptr;
  int case_index_ = 0;
};

class wait_queue {
public:
  /// Queues `w` and parks the caller until another context pops and wakes
  /// it, an interruption is due, or `own_deadline` passes (see `park`). `lk`
  /// guards this queue; held on entry, released on return. The caller has
  /// passed `wait_context::checkpoint` before taking the lock.
  park_result wait(spinlock_lock& lk, waiter& w, const wait_info& info, boost::system::error_code& ec,
                   steady_time own_deadline = no_deadline) noexcept {
    struct site {
      wait_queue& q;
      waiter& w;
      bool queued = false;
      bool completed() const noexcept { return queued && !w.hook.is_linked(); }
      void arm(const boost::fibers::waker& wk) noexcept {
        w.waker_ = wk;
        w.armed_ = true;
        if (!queued) {
          q.list_.push_back(w);
          queued = true;
        }
      }
      bool withdraw(spinlock_lock&, const boost::system::error_code&) noexcept {
        q.remove(w);
        return true;
      }
    } s{*this, w};
    return park(current_wait_context(), lk, s, info, own_deadline, ec);
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
  /// Caller holds the lock. Pops and wakes every waiter.
  void wake_all() noexcept {
    while (waiter* w = pop())
      w->wake();
  }
  /// Caller holds the lock. Queues a select case without suspending.
  void enqueue(waiter& w) noexcept { list_.push_back(w); }
  /// Caller holds the lock. Removes `w` if it is still queued.
  void remove(waiter& w) noexcept {
    if (w.hook.is_linked()) list_.erase(list_.iterator_to(w));
  }
  bool empty() const noexcept { return list_.empty(); }

private:
  boost::intrusive::list<waiter,
                         boost::intrusive::member_hook<waiter, boost::intrusive::list_member_hook<>, &waiter::hook>>
      list_;
};

} // namespace coop::detail
