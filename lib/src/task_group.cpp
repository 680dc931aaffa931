#include <coop/task_group.hpp>

namespace coop {

void task_group::left(std::list<task<void>>::iterator it) noexcept {
  it->detach(); // the fiber is ending: its result goes the way of a detached task
  members_.erase(it);
  if (!members_.empty()) return;
  detail::spinlock_lock lk(lock_);
  while (detail::waiter* w = joiners_.pop())
    w->wake();
}

void task_group::join() {
  while (!members_.empty()) {
    detail::spinlock_lock lk(lock_);
    detail::waiter w;
    throw_on_error(joiners_.wait(lk, w), "coop::task_group::join");
  }
}

void task_group::join_shielded() {
  if (detail::current_fiber_state()) {
    shield s;
    join();
  } else {
    join();
  }
}

} // namespace coop
