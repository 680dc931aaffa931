#include <coop/task_group.hpp>
#include <coop/timeout.hpp>

namespace coop {

void task_group::left(std::list<task<void>>::iterator it) noexcept {
  it->detach(); // the fiber is ending: its result goes the way of a detached task
  members_.erase(it);
  detail::spinlock_lock lk(lock_);
  room_waiters_.wake_all();
  if (members_.empty()) joiners_.wake_all();
}

detail::park_result task_group::wait(boost::system::error_code& ec, detail::steady_time deadline) noexcept {
  // Members leave on this thread, so emptiness cannot change before we queue.
  const detail::wait_info info{wait_kind::join, "task_group join", this, -1, true};
  while (!members_.empty()) {
    detail::spinlock_lock lk(lock_);
    detail::waiter w;
    auto r = joiners_.wait(lk, w, info, ec, deadline);
    if (r != detail::park_result::completed) return r;
  }
  return detail::park_result::completed;
}

void task_group::join(boost::system::error_code& ec) {
  if (detail::current_wait_context().checkpoint(ec)) return;
  wait(ec, detail::no_deadline);
}

void task_group::wait_size_below(std::size_t limit, boost::system::error_code& ec) {
  if (limit == 0) throw usage_error("coop::task_group::wait_size_below: the limit must be at least 1");
  if (detail::current_wait_context().checkpoint(ec)) return;
  const detail::wait_info info{wait_kind::join, "task_group room", this, -1, true};
  // Members leave on this thread, so the size cannot change before we queue.
  while (members_.size() >= limit) {
    detail::spinlock_lock lk(lock_);
    detail::waiter w;
    if (room_waiters_.wait(lk, w, info, ec) != detail::park_result::completed) return;
  }
}

bool task_group::join_shielded(detail::steady_time deadline) noexcept {
  shield s;
  boost::system::error_code ec;
  return wait(ec, deadline) == detail::park_result::completed;
}

bool task_group::join_or_cancel_until(std::chrono::steady_clock::time_point deadline) {
  if (join_shielded(deadline)) return true;
  cancel();
  join_shielded(detail::no_deadline);
  return false;
}

} // namespace coop
