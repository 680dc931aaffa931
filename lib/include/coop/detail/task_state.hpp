// coop/detail/task_state.hpp — the control block behind coop::task, and how
// fibers are launched.
#pragma once

#include <coop/detail/fiber_state.hpp>
#include <coop/detail/wait_queue.hpp>
#include <coop/error.hpp>

#include <boost/context/fiber.hpp> // forced_unwind, for either Boost.Context backend

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace coop::detail {

struct worker;

/// Control block shared by a spawned fiber and its `task` handle.
/// Thread-safe: the handle may be used from any thread.
class task_base {
public:
  task_base() = default;
  task_base(const task_base&) = delete;
  task_base& operator=(const task_base&) = delete;
  virtual ~task_base(); // logs an exception nobody retrieved

  /// On w's thread (or before the task is shared): attaches the fiber's state.
  /// Under the lock: `cancel` may read `owner_` on another thread meanwhile.
  void bind(worker& w, fiber_state* fs) noexcept {
    spinlock_lock lk(lock_);
    owner_ = &w;
    fs_ = fs;
  }
  /// Waits until the fiber finished, an interruption is due, or `deadline`.
  /// Throws `usage_error` when a fiber would wait for itself.
  park_result wait(boost::system::error_code& ec, steady_time deadline = no_deadline);
  bool done() const noexcept;
  /// Requests cancellation; thread-safe; harmless once finished.
  void cancel(std::shared_ptr<task_base> self);
  /// Rethrows the fiber's exception, if any; marks it observed.
  void rethrow();
  /// What a `task` handle does when it lets go of `self` (destroyed or
  /// assigned over): when the fiber has not finished, cancels it and waits,
  /// shielded, until it has ended. Detaches instead where the caller cannot
  /// wait: on the fiber itself, and in a runtime thread's scheduler context.
  static void drop(std::shared_ptr<task_base> self) noexcept;

  /// On the fiber: runs its function (`spawned_task::start`).
  virtual void start() = 0;

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
  fiber_state* fs_ = nullptr; // valid on the owner thread from launch until finish()
};

template <class R> class task_state : public task_base {
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
  /// The result, once; `usage_error` the second time.
  R take() {
    if constexpr (!std::is_void_v<R>) {
      if (taken_) throw usage_error("coop::task::get: the result was already taken (get() moves it out once)");
      taken_ = true;
      return std::move(*value_);
    }
  }

private:
  std::optional<std::conditional_t<std::is_void_v<R>, char, R>> value_;
  bool taken_ = false;
};

/// A task's control block with the function its fiber runs, `body(state)`
/// (the caller's function wrapped in what the spawning call adds), kept here
/// until the fiber has run it: its captures end with the fiber, not with
/// the last `task` handle.
template <class R, class Body> class spawned_task final : public task_state<R> {
public:
  explicit spawned_task(Body&& body) : body_(std::move(body)) {}
  void start() override {
    struct drop_body { // also when the fiber is unwound
      std::optional<Body>& body;
      ~drop_body() { body.reset(); }
    } on_exit{body_};
    (*body_)(static_cast<task_state<R>&>(*this));
  }

private:
  std::optional<Body> body_;
};

/// A control block for a fiber that will run `body(state)`.
template <class R, class Body> std::shared_ptr<task_state<R>> make_task(Body&& body) {
  return std::make_shared<spawned_task<R, std::decay_t<Body>>>(std::forward<Body>(body));
}

/// Starts the fiber of `st` (its `start()`) as a detached Boost.Fiber fiber
/// on worker `w`; must run on w's thread. The fiber shares ownership of the
/// control block. (lib/src/core/task.cpp)
void launch_fiber(worker& w, std::shared_ptr<task_base> st);

template <class F> using spawn_result_t = std::invoke_result_t<std::decay_t<F>&>;

} // namespace coop::detail
