// coop/task_group.hpp — a set of fibers that end together (structured concurrency).
#pragma once

#include <coop/task.hpp>
#include <coop/timeout.hpp>

#include <cstddef>
#include <list>
#include <utility>

namespace coop {

/// Fibers spawned into a group can be cancelled and waited for as one: a
/// server keeps its connection fibers in a group and, on shutdown, cancels
/// them (or gives them until a deadline) and waits until all have cleaned up.
/// A member removes itself when it finishes, so a long-running server's group
/// holds only live fibers. A member's exception is reported like a detached
/// task's (logged to stderr unless it is `coop::cancelled`); it never affects
/// the other members.
///
/// The destructor cancels the members still running and waits for them.
///
/// Thread-safety: use a group from fibers of one runtime thread (members run
/// on that thread).
///
/// Example:
/// @code
///   coop::task_group connections;
///   for (;;) connections.spawn([c = listener.accept()]() mutable { serve(c); });
///   // on shutdown:  connections.join_for(5s); (cancels what is left after 5 s)
/// @endcode
class task_group {
public:
  task_group() = default;
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;
  ~task_group() {
    try {
      cancel();
      join_shielded();
    } catch (...) {
    }
  }

  /// Starts `fn` in a new fiber that belongs to the group.
  template <class F> void spawn(F&& fn) {
    auto it = members_.emplace(members_.end());
    *it = coop::spawn([this, it, f = std::decay_t<F>(std::forward<F>(fn))]() mutable {
      struct leave {
        task_group* g;
        std::list<task<void>>::iterator it;
        ~leave() { g->left(it); }
      } on_exit{this, it};
      f();
    });
  }

  /// Fibers of the group still running.
  std::size_t size() const noexcept { return members_.size(); }
  bool empty() const noexcept { return members_.empty(); }

  /// Cancels every member still running (see `task::cancel`).
  void cancel() {
    for (auto& t : members_)
      t.cancel();
  }

  /// Waits until every member has finished. Interruptible (timeout/cancel of
  /// the waiting fiber) like any blocking call.
  void join();

  /// Waits up to `d` for the members to finish, then cancels the rest and
  /// waits for them to clean up. Returns true when all ended within `d`.
  template <class Rep, class Period> bool join_for(std::chrono::duration<Rep, Period> d) {
    try {
      coop::timeout t(d);
      join();
      return true;
    } catch (const timeout_error&) {
      cancel();
      join_shielded();
      return false;
    }
  }

private:
  void left(std::list<task<void>>::iterator it) noexcept;
  void join_shielded();

  std::list<task<void>> members_;
  detail::spinlock lock_;
  detail::wait_queue joiners_;
};

} // namespace coop
