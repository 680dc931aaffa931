// coop/detail/worker.hpp — one runtime thread: its io_context, scheduler and stacks.
#pragma once

#include "core/counters.hpp"
#include "core/stack_pool.hpp"
#include <coop/detail/fiber_state.hpp>
#include <coop/detail/park.hpp>
#include <coop/run_options.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/fiber/detail/spinlock.hpp>

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace coop::detail {

class fd_table;       // lib/src/net/fd_table.hpp
struct trace_request; // lib/src/diagnostics/where.cpp

/// What the watchdog (lib/src/diagnostics/watchdog.cpp) remembers about a worker between
/// its looks; touched only by the watchdog thread.
struct worker_watch {
  std::uint64_t switches = 0;
  steady_time busy_since{};  ///< when `switches` was first seen unchanged, not idle
  steady_time quiet_since{}; ///< when `switches` last changed
  bool stall_reported = false;
  bool deadlock_checked = false;
  /// The thread's CPU time at `busy_since` in ns (-1: unknown), and its
  /// kernel thread id: a thread the OS kept off its CPU is not stalled.
  std::int64_t busy_since_cpu_ns = -1;
  int tid = 0;
};

/// A runtime thread. Created on the thread it serves and used only there,
/// except for `io` (thread-safe `post`), `request_stop()`, and what the
/// diagnostics read from other threads: the registry of live fibers (under
/// `registry_mutex`) and the relaxed atomics below.
struct worker {
  /// `opts` with the environment's overrides (COOP_STALL_MS, COOP_DEADLOCK_MS).
  explicit worker(const run_options& opts);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  /// Shared with the coop I/O objects made here (`keep_io_alive`), so one
  /// that outlives the runtime still closes against a live reactor.
  ///
  /// Asio's per-descriptor locks are off (BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO):
  /// every operation on a socket of this io_context runs on this thread (coop
  /// checks it: `mode_for`, `require_owner`), so they guarded nothing and
  /// cost two lock/unlock pairs per operation. The scheduler and descriptor
  /// registration keep their locks: other threads post wake-ups here and
  /// offloaded work completes here.
  std::shared_ptr<boost::asio::io_context> io_holder =
      std::make_shared<boost::asio::io_context>(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO);
  boost::asio::io_context& io = *io_holder;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> keep_alive{io.get_executor()};
  std::shared_ptr<stack_pool> stacks;
  /// The descriptors this thread's fibers wait on with coop::wait_readable
  /// and wait_writable; made at the first such wait. Declared after `io`:
  /// its entries leave the reactor before the reactor goes.
  std::shared_ptr<fd_table> fds;
  std::size_t live_fibers = 0; ///< fibers launched here and not yet finished
  unsigned index = 0;          ///< position in its runtime (0 for coop::run)
  run_options options;
  /// The workers of one coop::runtime share a group (the deadlock report
  /// looks at them together); a coop::run worker is a group of its own.
  const void* group = this;
  unsigned group_number = 0; ///< "runtime N" in reports, given by the watchdog

  // --- read by the watchdog and coop::dump_fibers from other threads ---
  /// `fiber_state::id` of the fiber the scheduler last switched to (0: a
  /// context of Boost.Fiber's own), and the number of switches so far.
  std::atomic<std::uint64_t> running{0};
  std::atomic<std::uint64_t> switches{0};
  /// True while the thread sleeps in the reactor with nothing to run.
  std::atomic<bool> idle{false};
  /// The longest scheduling delay (in `scheduler::ticks()`) at or over
  /// `delay_report_ticks` since the watchdog last took it (0: none), and
  /// the fiber that waited it. Written by the scheduler only when a delay
  /// passes the threshold; the watchdog reports and resets them.
  std::atomic<std::uint64_t> worst_delay{0};
  std::atomic<std::uint64_t> worst_delay_fiber{0};
  std::atomic<std::uint64_t> delays_over{0}; ///< delays at or over the threshold, in all
  /// `options.scheduling_delay_threshold` in ticks (0: not measured):
  /// counted at 1 GHz at first (at or below the threshold on any TSC), then
  /// set by the watchdog once it has measured the tick rate.
  std::atomic<std::uint64_t> delay_report_ticks{0};
  steady_time delay_reported_at{}; ///< the last scheduling delay report (watchdog only)
  /// The thread's CPU time (ns, -1: unknown) at `delay_window_start`, the
  /// last report or the first look (watchdog only).
  std::int64_t delay_window_cpu_ns = -1;
  steady_time delay_window_start{};
  pthread_t thread{};
  std::mutex registry_mutex;
  fiber_state* fibers = nullptr; ///< live coop fibers, newest first
  std::size_t fiber_count = 0;
  /// Where the diagnostics' walk over `fibers` resumes after letting go of
  /// `registry_mutex` (diagnostics/dump.cpp, `walk_registry`); `forget` moves it past
  /// a fiber that ends meanwhile.
  fiber_state* registry_cursor = nullptr;
  /// Where fibers wait (diagnostics/where.cpp), on this thread only: the
  /// request whose batches it is waking its parked fibers for, where the
  /// next batch starts in `fibers` (`forget` moves it past a fiber that
  /// ends), and how many of the last batch have yet to trace themselves
  /// (the last one wakes the next batch).
  std::shared_ptr<trace_request> tracing;
  fiber_state* trace_cursor = nullptr;
  std::size_t trace_outstanding = 0;
  worker_watch watch;
  /// What coop::metrics_snapshot reports (lib/src/diagnostics/metrics.cpp).
  worker_counters counters;
  /// This thread's hold on the admin endpoint (`run_options::admin_socket`)
  /// from `attach` to `wait_and_detach`; null when there is none.
  std::shared_ptr<void> admin;

  /// Registers a fiber launched on this worker (on its thread); the
  /// fiber_state's destructor unregisters it.
  void adopt(fiber_state& fs) noexcept;
  void forget(fiber_state& fs) noexcept;

  /// Makes this thread's fibers run on this worker until `wait_and_detach()`.
  void attach();
  /// Parks the calling (main) context until `live_fibers` is 0 and, when
  /// `until_stopped`, `request_stop()` was called; then restores Boost.Fiber's
  /// default scheduler on the thread.
  void wait_and_detach(bool until_stopped);
  /// Thread-safe: lets `wait_and_detach(true)` return once fibers are done.
  void request_stop();

  // --- the running context, as the scheduler last switched ---
  /// Every switch on a runtime thread goes through `scheduler::pick_next`,
  /// which records the context it resumes here, so `current_fiber_state()`
  /// needs no call into Boost.Fiber (a shared library: a PLT call and a
  /// general-dynamic TLS lookup each time, several times per I/O call).
  /// `current_known` is false while a switch happened that bypassed
  /// `pick_next` (a raw `boost::fibers::fiber` launched with
  /// `launch::dispatch`): `current_fiber_state()` then asks Boost.Fiber until
  /// the next `pick_next`.
  boost::fibers::context* current_context = nullptr;
  bool current_known = false;
  bool detaching = false; ///< set by wait_and_detach: stop tracking

  /// The scheduler saw a fiber (`id`, 0 for Boost.Fiber's own contexts)
  /// wait `delay` ticks, at or over `delay_report_ticks`.
  void note_delay(std::uint64_t delay, std::uint64_t id) noexcept;

  void fiber_started() noexcept {
    ++live_fibers;
    counters.spawned.add();
  }
  void fiber_finished() noexcept;

private:
  void wake_main_if_done() noexcept;
  bool stop_requested_ = false;
  flag_site* main_waiting_ = nullptr;
  bool until_stopped_ = false;
};

/// The worker of the calling thread, or nullptr outside a runtime.
worker* current_worker() noexcept;
// require_worker: coop/detail/fiber_state.hpp.

} // namespace coop::detail
