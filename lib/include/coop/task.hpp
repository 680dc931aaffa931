// coop/task.hpp — spawning fibers and waiting for their results.
#pragma once

#include <coop/detail/wait_queue.hpp>
#include <coop/detail/worker.hpp>
#include <coop/error.hpp>

#include <boost/context/fiber.hpp> // forced_unwind, for either Boost.Context backend
#include <boost/fiber/fiber.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>

namespace coop {

namespace detail {

/// Control block shared by a spawned fiber and its `task` handle.
/// Thread-safe: the handle may be used from any thread.
class task_base {
public:
  task_base() = default;
  task_base(const task_base&) = delete;
  task_base& operator=(const task_base&) = delete;
  virtual ~task_base(); // logs an exception nobody retrieved

  /// On w's thread (or before the task is shared): attaches the fiber's state.
  void bind(worker& w, fiber_state* fs) noexcept {
    owner_ = &w;
    fs_ = fs;
    if (fs && cancel_pending_) fs->cancel_requested = true;
  }
  /// Waits until the fiber finished (interruptible).
  boost::system::error_code wait() noexcept;
  bool done() const noexcept;
  /// Requests cancellation; thread-safe; harmless once finished.
  void cancel(std::shared_ptr<task_base> self);
  /// Rethrows the fiber's exception, if any; marks it observed.
  void rethrow();

protected:
  void finish(std::exception_ptr error) noexcept;
  /// On the fiber, before its function runs: false when cancelled before start.
  bool starting() noexcept { return !(fs_ && fs_->cancel_requested); }

private:
  void cancel_here() noexcept;

  mutable spinlock lock_;
  wait_queue waiters_;
  bool done_ = false;
  bool observed_ = false;
  std::exception_ptr error_;
  worker* owner_ = nullptr;
  fiber_state* fs_ = nullptr;   // valid on the owner thread until finish()
  bool cancel_pending_ = false; // owner thread only
};

template <class R> class task_state final : public task_base {
public:
  template <class F> void run(F& fn) {
    if (!starting()) return finish(std::make_exception_ptr(cancelled()));
    try {
      if constexpr (std::is_void_v<R>)
        std::invoke(fn);
      else
        value_.emplace(std::invoke(fn));
      finish(nullptr);
    } catch (const boost::context::detail::forced_unwind&) {
      finish(std::make_exception_ptr(cancelled()));
      throw;
    } catch (...) {
      finish(std::current_exception());
    }
  }
  std::optional<std::conditional_t<std::is_void_v<R>, char, R>> value_;
};

/// Starts `body` as a detached Boost.Fiber fiber on worker `w`; must run on
/// w's thread. The fiber shares ownership of the task's control block.
template <class Body> void launch_fiber(worker& w, std::shared_ptr<task_base> st, Body&& body) {
  auto fs = std::make_unique<fiber_state>(nullptr);
  fs->owner = &w;
  fs->task = st.get();
  st->bind(w, fs.get());
  boost::fibers::fiber f(boost::fibers::launch::post, static_cast<boost::fibers::fiber_properties*>(fs.get()),
                         std::allocator_arg, pool_allocator(w.stacks),
                         [&w, keep = std::move(st), b = std::forward<Body>(body)]() mutable {
                           b();
                           keep.reset();
                           w.fiber_finished();
                         });
  fs.release(); // the fiber's context owns its properties now
  w.fiber_started();
  f.detach();
}

} // namespace detail

/// A handle to a spawned fiber: wait for it, take its result, cancel it.
///
/// Thread-safety: all members may be called from any thread; blocking ones
/// (`join`, `get`) park the calling fiber (or thread, outside a runtime).
/// Dropping the handle detaches the fiber, which keeps running; an exception
/// it ends with and that nobody retrieves with `get()` is logged to stderr
/// (except `coop::cancelled`).
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
  void join(boost::system::error_code& ec) noexcept { ec = st_ ? st_->wait() : boost::system::error_code{}; }

  /// Waits, then returns the fiber's result or rethrows its exception.
  /// Call at most once for a non-void R (the value is moved out).
  R get() {
    join();
    st_->rethrow();
    if constexpr (!std::is_void_v<R>) return std::move(*st_->value_);
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
  std::shared_ptr<detail::task_state<R>> st_;
};

namespace detail {
template <class F> using spawn_result_t = std::invoke_result_t<std::decay_t<F>&>;

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
