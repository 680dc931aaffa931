// coop/task.hpp — spawning fibers and waiting for their results.
#pragma once

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
/// Thread-safety: all members may be called from any thread; blocking ones
/// (`join`, `get`) park the calling fiber (or thread, outside a runtime).
/// Dropping the handle detaches the fiber, which keeps running; an exception
/// it ends with and that nobody retrieves with `get()` is logged to stderr
/// (except `coop::cancelled`).
///
/// Misuse throws `coop::usage_error`: `join`/`get` on an empty handle
/// (default-constructed, moved-from or detached), a second `get()` of a
/// value, a fiber joining itself.
template <class R = void> class [[nodiscard]] task {
public:
  task() = default;
  explicit task(std::shared_ptr<detail::task_state<R>> st) noexcept : st_(std::move(st)) {}

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
    return join_until(std::chrono::steady_clock::now() + std::chrono::ceil<std::chrono::steady_clock::duration>(d));
  }
  bool join_until(std::chrono::steady_clock::time_point deadline) {
    boost::system::error_code ec;
    auto r = state("join_until").wait(ec, deadline);
    throw_on_error(ec, "coop::task::join_until");
    return r == detail::park_result::completed;
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
  /// Lets the fiber run on without this handle.
  void detach() noexcept { st_.reset(); }
  bool done() const noexcept { return !st_ || st_->done(); }
  bool valid() const noexcept { return static_cast<bool>(st_); }

private:
  detail::task_state<R>& state(const char* what) const {
    if (!st_)
      throw usage_error(std::string("coop::task::") + what +
                        " on an empty task (default-constructed, moved-from or detached)");
    return *st_;
  }

  std::shared_ptr<detail::task_state<R>> st_;
};

namespace detail {
template <class F> task<spawn_result_t<F>> spawn_on_worker(worker& w, F&& fn) {
  using R = spawn_result_t<F>;
  auto st = std::make_shared<task_state<R>>();
  launch_fiber(w, st, [raw = st.get(), f = std::decay_t<F>(std::forward<F>(fn))]() mutable { raw->run(f); });
  return task<R>(std::move(st));
}
} // namespace detail

/// Starts `fn` in a new fiber on the calling runtime thread. The new fiber
/// first runs when the caller blocks or yields (as gevent.spawn).
/// Throws `usage_error` outside a runtime.
template <class F> task<detail::spawn_result_t<F>> spawn(F&& fn) {
  return detail::spawn_on_worker(detail::require_worker("coop::spawn"), std::forward<F>(fn));
}

/// Starts `fn` in a new fiber on the calling runtime thread after `d`
/// (gevent.spawn_later): the fiber sleeps until then, parked like any
/// `sleep_for`, then calls `fn`. Cancelling the task before `fn` started
/// means `fn` never runs: `get()` throws `coop::cancelled`. A `d` of zero or
/// less starts `fn` when the caller next blocks or yields, as `spawn`.
/// Throws `usage_error` outside a runtime.
///
/// Example:
/// @code
///   auto reminder = coop::spawn_later(30s, [&] { conn.write_all(ping); });
///   ...
///   reminder.cancel();   // before 30 s: the ping is never sent
/// @endcode
template <class Rep, class Period, class F>
task<detail::spawn_result_t<F>> spawn_later(std::chrono::duration<Rep, Period> d, F&& fn) {
  auto start = std::chrono::steady_clock::now() + std::chrono::ceil<std::chrono::steady_clock::duration>(d);
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
