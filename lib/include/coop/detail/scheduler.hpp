// coop/detail/scheduler.hpp — the Boost.Fiber scheduling algorithm that drives Asio.
#pragma once

#include <coop/detail/fiber_state.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/fiber/algo/algorithm.hpp>
#include <boost/fiber/scheduler.hpp>

#include <atomic>
#include <chrono>

namespace coop::detail {

struct worker;

/// Round-robin over ready fibers; when none is ready, the thread sleeps inside
/// the worker's io_context (epoll), so I/O completions, timers and cross-thread
/// wake-ups all resume it without polling.
///
/// - Idle: `suspend_until` blocks in `io_context::run_one()`: no busy loop.
/// - Latency: a completion handler readies its fiber directly; no timer tick.
/// - Starvation: while fibers stay ready, the dispatcher visits the reactor
///   (`poll()`) at least once per `poll_interval`.
/// - Draining: every handler already queued runs before the reactor is asked
///   again, since Asio's queue keeps the reactor task behind them.
/// - `notify()` (any thread) only posts to the io_context, deduplicated by an
///   atomic flag.
class scheduler final : public boost::fibers::algo::algorithm_with_properties<fiber_state> {
public:
  static constexpr std::chrono::microseconds poll_interval{500};

  explicit scheduler(worker& w) noexcept;

  void awakened(boost::fibers::context* ctx, fiber_state& props) noexcept override;
  boost::fibers::context* pick_next() noexcept override;
  bool has_ready_fibers() const noexcept override;
  void suspend_until(std::chrono::steady_clock::time_point const& tp) noexcept override;
  void notify() noexcept override;
  boost::fibers::fiber_properties* new_properties(boost::fibers::context* ctx) override;

private:
  /// Whether the calling context is Boost.Fiber's dispatcher.
  bool in_dispatcher() const noexcept;
  void run_handlers(bool block, std::chrono::steady_clock::time_point tp) noexcept;

  worker& worker_;
  boost::fibers::scheduler::ready_queue_type ready_;
  std::atomic<bool> notified_{false};
  std::chrono::steady_clock::time_point last_reactor_visit_{};
};

} // namespace coop::detail
