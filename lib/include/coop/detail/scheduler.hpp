// coop/detail/scheduler.hpp — the Boost.Fiber scheduling algorithm that drives Asio.
#pragma once

#include <coop/detail/fiber_state.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/fiber/algo/algorithm.hpp>
#include <boost/fiber/scheduler.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

namespace coop::detail {

struct worker;

/// Round-robin over ready fibers; when none is ready, the thread sleeps inside
/// the worker's io_context (epoll), so I/O completions, timers and cross-thread
/// wake-ups all resume it without polling.
///
/// - Idle: `suspend_until` blocks in `io_context::run_one()`: no busy loop.
/// - Latency: a completion handler readies its fiber directly; no timer tick.
/// - Starvation: while fibers stay ready, the dispatcher visits the reactor
///   (`poll()`) at least once per `poll_interval` (measured in `ticks()`).
/// - Draining: every handler already queued runs before the reactor is asked
///   again, since Asio's queue keeps the reactor task behind them.
/// - `notify()` (any thread) only posts to the io_context, deduplicated by an
///   atomic flag.
///
/// Every context it schedules carries a `fiber_state` as its Boost.Fiber
/// properties, created the first time the context becomes ready. (Not
/// `algorithm_with_properties`: its `awakened` looks the properties up twice
/// per wake-up through calls into the shared library.)
class scheduler final : public boost::fibers::algo::algorithm {
public:
  static constexpr std::chrono::microseconds poll_interval{500};
  /// Asio handlers run per visit to the reactor while fibers are ready.
  static constexpr int max_handlers_per_visit = 256;

  /// A clock for the reactor-visit check, read on every dispatcher pass. On
  /// x86 the time-stamp counter (about a third of `steady_clock::now()`'s
  /// cost here), counted as if it ran at 1 GHz: every x86 TSC of the last
  /// fifteen years runs at 1 GHz or faster, so `poll_interval` is then an
  /// upper bound (250 µs at 2 GHz). Elsewhere, steady_clock nanoseconds.
  static std::uint64_t ticks() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    return __rdtsc();
#else
    return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#endif
  }
  static constexpr std::uint64_t poll_interval_ticks =
      std::chrono::duration_cast<std::chrono::nanoseconds>(poll_interval).count();

  explicit scheduler(worker& w) noexcept;

  void awakened(boost::fibers::context* ctx) noexcept override;
  boost::fibers::context* pick_next() noexcept override;
  bool has_ready_fibers() const noexcept override;
  void suspend_until(std::chrono::steady_clock::time_point const& tp) noexcept override;
  void notify() noexcept override;

private:
  /// Whether the calling context is Boost.Fiber's dispatcher.
  bool in_dispatcher() const noexcept;
  void run_handlers(bool block, std::chrono::steady_clock::time_point tp) noexcept;

  worker& worker_;
  boost::fibers::scheduler::ready_queue_type ready_;
  std::atomic<bool> notified_{false};
  std::uint64_t last_reactor_visit_ = 0; ///< ticks()
};

} // namespace coop::detail
