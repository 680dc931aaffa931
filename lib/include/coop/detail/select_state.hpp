// coop/detail/select_state.hpp — what one `coop::select` call waits on.
#pragma once

#include <coop/detail/park.hpp>

#include <atomic>
#include <cstddef>

namespace coop::detail {

/// One waiter per case, each queued in its channel. Exactly one case wins
/// (claimed with a CAS); the winner's channel completes the operation, then
/// calls `complete()`. Lives on the selecting fiber's stack; waits through
/// `park` like every other wait.
class select_state {
public:
  static constexpr int none = -1;
  static constexpr int withdrawn = -2;

  /// `unlink_case(ctx, i)` removes case i's waiter from its channel (taking
  /// that channel's lock).
  select_state(std::size_t n_cases, void (*unlink_case)(void*, std::size_t), void* ctx) noexcept
      : n_cases_(n_cases), unlink_(unlink_case), unlink_ctx_(ctx) {}

  bool claim(int index) noexcept {
    int expected = none;
    return winner_.compare_exchange_strong(expected, index, std::memory_order_acq_rel);
  }
  int winner() const noexcept { return winner_.load(std::memory_order_acquire); }

  /// The claimed case is complete: let the fiber go on (waking it if parked).
  void complete() noexcept {
    spinlock_lock lk(lock_);
    done_ = true;
    if (armed_) waker_.wake(); // under the lock: the fiber cannot leave before we are done
  }

  /// Parks until a case completed, an interruption is due, or `own_deadline`
  /// passes; on return no case is queued any more.
  park_result wait(const wait_info& info, steady_time own_deadline, boost::system::error_code& ec) noexcept {
    spinlock_lock lk(lock_);
    park_result r = park(current_wait_context(), lk, *this, info, own_deadline, ec);
    unlink_all();
    return r;
  }

  // The `park` site interface.
  bool completed() const noexcept { return done_; }
  void arm(const boost::fibers::waker& w) noexcept {
    waker_ = w;
    armed_ = true;
  }
  bool withdraw(spinlock_lock& lk, const boost::system::error_code&) noexcept {
    if (!claim(withdrawn)) return false; // a case won: its completion is under way
    lk.unlock();                         // lock order: channel locks before ours
    unlink_all();
    return true;
  }

private:
  void unlink_all() noexcept {
    for (std::size_t i = 0; i < n_cases_; ++i)
      unlink_(unlink_ctx_, i);
  }

  std::atomic<int> winner_{none};
  spinlock lock_;
  bool done_ = false;
  bool armed_ = false;
  boost::fibers::waker waker_;
  std::size_t n_cases_;
  void (*unlink_)(void*, std::size_t);
  void* unlink_ctx_;
};

} // namespace coop::detail
