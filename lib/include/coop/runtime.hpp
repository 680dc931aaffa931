// coop/runtime.hpp — a multi-threaded runtime: one scheduler and io_context per thread.
#pragma once

#include <coop/run.hpp>
#include <coop/task.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace coop {

/// N OS threads, each a coop runtime thread with its own scheduler and
/// io_context. Fibers never move between threads; spread work with
/// `spawn_on` or `run_on_each` (e.g. one SO_REUSEPORT listener per thread).
///
/// Thread-safety: all members may be called from any thread except that the
/// destructor must not run on one of the runtime's own threads (it would wait
/// for itself): there it throws `usage_error` and leaves the runtime running
/// until its fibers have finished. Elsewhere the destructor waits for every
/// fiber of the runtime to finish.
class runtime {
public:
  /// Starts `threads` runtime threads (0: one per hardware thread).
  explicit runtime(unsigned threads = 0, const run_options& opts = {});
  ~runtime() noexcept(false);
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  /// Number of runtime threads.
  unsigned size() const noexcept { return static_cast<unsigned>(workers_.size()); }

  /// Starts `fn` in a new fiber on runtime thread `index`. Throws
  /// `usage_error` when `index` is not below `size()`.
  template <class F> task<detail::spawn_result_t<F>> spawn_on(unsigned index, F&& fn) {
    using R = detail::spawn_result_t<F>;
    if (index >= workers_.size())
      throw usage_error("coop::runtime::spawn_on: thread index " + std::to_string(index) + " on a runtime of " +
                        std::to_string(workers_.size()) + " threads");
    std::shared_ptr<detail::task_state<R>> st = detail::task_for(std::forward<F>(fn));
    launch_on(index, st);
    return task<R>(std::move(st));
  }

  /// Runs `fn(index)` in a fiber on every runtime thread and waits for all of
  /// them; rethrows the first exception (after all have finished).
  template <class F> void run_on_each(F fn) {
    std::vector<task<void>> tasks;
    for (unsigned i = 0; i < size(); ++i)
      tasks.push_back(spawn_on(i, [fn, i]() mutable { fn(i); }));
    join_all(tasks);
    for (auto& t : tasks)
      t.get();
  }

  /// Index of the calling runtime thread, or -1 when called elsewhere.
  static int this_thread_index() noexcept;

  /// The live fibers of this runtime's threads (see `coop::fiber_count()`,
  /// which counts every runtime of the process), for monitoring and leak
  /// checks in tests.
  std::size_t fiber_count() const;

private:
  /// Starts `st`'s fiber on thread `index` (posted there).
  void launch_on(unsigned index, std::shared_ptr<detail::task_base> st);

  std::vector<std::unique_ptr<detail::worker>> workers_;
  std::vector<std::thread> threads_;
};

} // namespace coop
