// coop/task_group.hpp — a set of fibers that end together (structured concurrency).
#pragma once

#include <coop/detail/deadline.hpp>
#include <coop/task.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <utility>

namespace coop {

/// Fibers spawned into a group can be cancelled and waited for as one: a
/// server keeps its connection fibers in a group and, on shutdown, cancels
/// them (or gives them until a deadline) and waits until all have cleaned up.
/// A member removes itself when it finishes (also when it was cancelled
/// before it ever ran), so a long-running server's group holds only live
/// fibers. A member's exception is reported like a detached task's (logged to
/// stderr unless it is `coop::cancelled`); it never affects the other members.
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
///   // on shutdown:  connections.join_or_cancel_for(5s); (cancels what is left after 5 s)
/// @endcode
class task_group {
public:
  task_group() = default;
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;
  ~task_group() {
    cancel();
    join_shielded(detail::no_deadline);
  }

  /// Starts `fn` in a new fiber that belongs to the group.
  template <class F> void spawn(F&& fn) {
    detail::worker& w = detail::require_worker("coop::task_group::spawn");
    auto it = members_.emplace(members_.end());
    try {
      // The group is left after the task finished, whether its function ran or not.
      auto st = detail::make_task<void>(
          [this, it, f = std::decay_t<F>(std::forward<F>(fn))](detail::task_state<void>& state) mutable {
            struct leave {
              task_group* g;
              std::list<task<void>>::iterator it;
              ~leave() { g->left(it); }
            } on_exit{this, it};
            state.run(f);
          });
      *it = task<void>(st);
      detail::launch_fiber(w, st);
    } catch (...) {
      it->detach(); // no fiber to wait for
      members_.erase(it);
      throw;
    }
  }

  /// Starts `fn` in a member fiber after `d` (see `coop::spawn_later`): a
  /// member cancelled before then never calls `fn`.
  template <class Rep, class Period, class F> void spawn_later(std::chrono::duration<Rep, Period> d, F&& fn) {
    auto start = detail::deadline_after(d);
    spawn([start, f = std::decay_t<F>(std::forward<F>(fn))]() mutable {
      coop::sleep_until(start);
      std::invoke(f);
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
  void join() {
    boost::system::error_code ec;
    join(ec);
    throw_on_error(ec, "coop::task_group::join");
  }
  void join(boost::system::error_code& ec);

  /// Waits until fewer than `limit` members are running (a bounded pool's
  /// spawn, as gevent.pool.Pool): returns at once when there is room already.
  /// Interruptible like any blocking call. Throws `usage_error` for a
  /// `limit` of 0.
  void wait_size_below(std::size_t limit) {
    boost::system::error_code ec;
    wait_size_below(limit, ec);
    throw_on_error(ec, "coop::task_group::wait_size_below");
  }
  void wait_size_below(std::size_t limit, boost::system::error_code& ec);

  /// The clean-up wait: waits until `deadline` for the members to finish,
  /// then cancels the rest and waits for them to end. Returns true when all
  /// ended by the deadline. It is shielded: it waits even in a fiber that has
  /// been cancelled or whose timeouts expired (that is when a server drains
  /// its connections); the deadline bounds the first phase, the members'
  /// reaction to cancellation the second.
  /// (Unlike `task::join_for` and `pool::join_for`, which only wait.)
  bool join_or_cancel_until(std::chrono::steady_clock::time_point deadline);
  template <class Rep, class Period> bool join_or_cancel_for(std::chrono::duration<Rep, Period> d) {
    return join_or_cancel_until(detail::deadline_after(d));
  }

  /// The former names of `join_or_cancel_until` / `join_or_cancel_for`
  /// (they cancel too, which the name did not say); removed in the next release.
  [[deprecated(
      "coop::task_group::join_until cancels the members left at the deadline: call join_or_cancel_until")]] bool
  join_until(std::chrono::steady_clock::time_point deadline) {
    return join_or_cancel_until(deadline);
  }
  template <class Rep, class Period>
  [[deprecated("coop::task_group::join_for cancels the members left at the deadline: call join_or_cancel_for")]] bool
  join_for(std::chrono::duration<Rep, Period> d) {
    return join_or_cancel_for(d);
  }

private:
  void left(std::list<task<void>>::iterator it) noexcept;
  /// Waits (shielded) until empty or `deadline`; true when empty.
  bool join_shielded(detail::steady_time deadline) noexcept;
  detail::park_result wait(boost::system::error_code& ec, detail::steady_time deadline) noexcept;

  std::list<task<void>> members_;
  detail::spinlock lock_;
  detail::wait_queue joiners_;      ///< join: woken when the group is empty
  detail::wait_queue room_waiters_; ///< wait_size_below: woken whenever a member leaves
};

} // namespace coop
