// coop/detail/worker.hpp — one runtime thread: its io_context, scheduler and stacks.
#pragma once

#include <coop/detail/fiber_state.hpp>
#include <coop/detail/park.hpp>
#include <coop/detail/stack_pool.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/fiber/detail/spinlock.hpp>

#include <atomic>
#include <cstddef>
#include <memory>

namespace coop::detail {

/// Options for one runtime thread.
struct worker_options {
  std::size_t stack_size = 128 * 1024;
};

/// A runtime thread. Created on the thread it serves and used only there,
/// except for `io` (thread-safe `post`) and `request_stop()`.
struct worker {
  explicit worker(const worker_options& opts);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  boost::asio::io_context io{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> keep_alive{io.get_executor()};
  std::shared_ptr<stack_pool> stacks;
  std::size_t live_fibers = 0; ///< fibers launched here and not yet finished
  unsigned index = 0;          ///< position in its runtime (0 for coop::run)

  /// Makes this thread's fibers run on this worker until `wait_and_detach()`.
  void attach();
  /// Parks the calling (main) context until `live_fibers` is 0 and, when
  /// `until_stopped`, `request_stop()` was called; then restores Boost.Fiber's
  /// default scheduler on the thread.
  void wait_and_detach(bool until_stopped);
  /// Thread-safe: lets `wait_and_detach(true)` return once fibers are done.
  void request_stop();

  void fiber_started() noexcept { ++live_fibers; }
  void fiber_finished() noexcept;

private:
  void wake_main_if_done() noexcept;
  bool stop_requested_ = false;
  flag_site* main_waiting_ = nullptr;
  bool until_stopped_ = false;
};

/// The worker of the calling thread, or nullptr outside a runtime.
worker* current_worker() noexcept;
/// The worker of the calling thread; throws `usage_error` naming `what`.
worker& require_worker(const char* what);

} // namespace coop::detail
