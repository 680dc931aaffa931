// coop/task.hpp — spawning fibers and waiting for their results.
#pragma once

#include <coop/detail/deadline.hpp>
#include <coop/detail/sync_wait.hpp>
#include <coop/detail/task_state.hpp>
#include <coop/error.hpp>
#include <coop/this_fiber.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <ranges>
#include <type_traits>
#include <utility>

namespace coop {

/// A handle to a spawned fiber: wait for it, take its result, cancel it.
///
/// The handle owns the fiber the way `std::jthread` owns its thread: the
/// fiber may use the spawner's locals, because it cannot outlive its handle.
/// When a handle whose fiber has not finished is destroyed (or assigned
/// over), it cancels the fiber and waits until it has ended; the fiber's
/// exception is not rethrown (and never escapes the destructor). That wait
/// is a clean-up wait, like `task_group`'s destructor: it waits even in a
/// fiber that is being cancelled, has an expired `coop::timeout`, or is
/// unwinding an exception; a fiber cancelled before it started never runs
/// its function. It works wherever the handle is destroyed: in a fiber of
/// any runtime thread, or on a plain thread (a task from
/// `runtime::spawn_on` held by `main`), which then blocks. A fiber that
/// ignores cancellation (catches `coop::cancelled` and goes on blocking)
/// keeps its handle's destructor waiting.
///
/// Two places cannot wait, and detach instead (the fiber runs on; the first
/// is also cancelled): a runtime thread's scheduler context (a handle
/// destroyed inside a raw Asio handler), and the fiber itself (its own
/// handle, moved into its own state, destroyed by it).
///
/// `detach()` is the explicit fire-and-forget: the fiber runs on without the
/// handle. A detached, moved-from or default-constructed handle does nothing
/// when destroyed. A fiber's exception that nobody retrieves with `get()` is
/// logged to stderr (except `coop::cancelled`).
///
/// Thread-safety: all members may be called from any thread; blocking ones
/// (`join`, `get`, the destructor) park the calling fiber (or thread,
/// outside a runtime). One handle is not used by two threads at once.
///
/// Misuse throws `coop::usage_error`: `join`/`get` on an empty handle
/// (default-constructed, moved-from or detached), a second `get()` of a
/// value, a fiber joining itself.
///
/// Example:
/// @code
///   auto fetch = coop::spawn([&] { return client.get(url); });  // may use locals
///   check_config();                    // throws: `fetch` is cancelled and awaited
///   auto page = fetch.get();
///   coop::spawn([c = std::move(conn)]() mutable { serve(c); }).detach();  // fire and forget
/// @endcode
template <class R = void> class [[nodiscard]] task {
public:
  task() = default;
  explicit task(std::shared_ptr<detail::task_state<R>> st) noexcept : st_(std::move(st)) {}
  task(task&& other) noexcept = default;
  /// Ends the fiber this handle had, as the destructor does, then takes over `other`'s.
  task& operator=(task&& other) noexcept {
    if (this != &other) {
      release();
      st_ = std::move(other.st_);
    }
    return *this;
  }
  /// Cancels the fiber if it has not finished and waits until it has ended.
  ~task() { release(); }

  /// Waits until the fiber has finished. Does not rethrow its exception.
  /// Throws `timeout_error`/`cancelled` when the waiting fiber is interrupted.
  void join() {
    boost::system::error_code ec;
    join(ec);
    throw_on_error(ec, "coop::task::join");
  }
  void join(boost::system::error_code& ec) { state("join").wait(ec); }

  /// Waits until the fiber has finished or `d` has passed: true when finished.
  template <class Rep, class Period> bool join_for(std::chrono::duration<Rep, Period> d) {
    return join_until(detail::deadline_after(d));
  }
  bool join_until(std::chrono::steady_clock::time_point deadline) {
    boost::system::error_code ec;
    return detail::timed_outcome(state("join_until").wait(ec, deadline), ec, "coop::task::join_until");
  }

  /// Waits, then returns the fiber's result or rethrows its exception.
  /// Call at most once for a non-void R (the value is moved out).
  R get() {
    join();
    st_->rethrow();
    return st_->take();
  }

  /// Requests cancellation: the fiber's current and later blocking calls fail
  /// with `coop::cancelled` until it exits (a `coop::shield` defers this).
  /// A fiber cancelled before it started never runs.
  void cancel() {
    if (st_) st_->cancel(st_);
  }
  /// Lets the fiber run on without this handle (fire and forget).
  void detach() noexcept { st_.reset(); }
  bool done() const noexcept { return !st_ || st_->done(); }
  bool valid() const noexcept { return static_cast<bool>(st_); }

private:
  void release() noexcept {
    if (st_) detail::task_base::drop(std::move(st_));
  }
  detail::task_state<R>& state(const char* what) const {
    if (!st_)
      throw usage_error(std::string("coop::task::") + what +
                        " on an empty task (default-constructed, moved-from or detached)");
    return *st_;
  }

  std::shared_ptr<detail::task_state<R>> st_;
};

namespace detail {
/// The control block of a fiber that runs `fn` and keeps its result.
template <class F> std::shared_ptr<task_state<spawn_result_t<F>>> task_for(F&& fn) {
  return make_task<spawn_result_t<F>>(
      [f = std::decay_t<F>(std::forward<F>(fn))](task_state<spawn_result_t<F>>& st) mutable { st.run(f); });
}
} // namespace detail

/// Starts `fn` in a new fiber on the calling runtime thread. The new fiber
/// first runs when the caller blocks or yields (as gevent.spawn). Keep the
/// returned task (its destructor cancels the fiber and waits for it) or call
/// `detach()` on it. Throws `usage_error` outside a runtime.
template <class F>
[[nodiscard("dropping the task cancels the fiber; call detach() to let it run on")]] task<detail::spawn_result_t<F>>
spawn(F&& fn) {
  detail::worker& w = detail::require_worker("coop::spawn");
  auto st = detail::task_for(std::forward<F>(fn));
  detail::launch_fiber(w, st);
  return task<detail::spawn_result_t<F>>(std::move(st));
}

/// Starts `fn` in a new fiber on the calling runtime thread after `d`
/// (gevent.spawn_later): the fiber sleeps until then, parked like any
/// `sleep_for`, then calls `fn`. Cancelling the task (or dropping it) before
/// `fn` started means `fn` never runs: `get()` throws `coop::cancelled`;
/// `detach()` it to have `fn` run later regardless. A `d` of zero or less
/// starts `fn` when the caller next blocks or yields, as `spawn`.
/// Throws `usage_error` outside a runtime.
///
/// Example:
/// @code
///   auto reminder = coop::spawn_later(30s, [&] { conn.write_all(ping); });
///   ...
///   reminder.cancel();   // before 30 s: the ping is never sent
/// @endcode
template <class Rep, class Period, class F>
[[nodiscard("dropping the task cancels the fiber; call detach() to let it run on")]] task<detail::spawn_result_t<F>>
spawn_later(std::chrono::duration<Rep, Period> d, F&& fn) {
  auto start = detail::deadline_after(d);
  return spawn([start, f = std::decay_t<F>(std::forward<F>(fn))]() mutable -> detail::spawn_result_t<F> {
    coop::sleep_until(start);
    return std::invoke(f);
  });
}

/// Something with a `join()`: a task.
template <class T>
concept joinable = requires(T& t) {
  t.join();
};

/// Waits for every task (does not rethrow their exceptions).
template <joinable... Tasks> void join_all(Tasks&... tasks) {
  (tasks.join(), ...);
}

/// Waits for every task of a range (does not rethrow their exceptions).
template <class Range>
requires joinable<std::ranges::range_value_t<Range>>
void join_all(Range& tasks) {
  for (auto& t : tasks)
    t.join();
}

} // namespace coop
