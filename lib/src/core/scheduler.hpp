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

/// Three ready queues, served by priority and in turns; when no fiber is
/// ready, the thread sleeps inside the worker's io_context (epoll), so I/O
/// completions, timers and cross-thread wake-ups all resume it without
/// polling.
///
/// - Queues (`lane`): fibers woken by the reactor (I/O, timers, other
///   threads), fibers woken by a fiber of this thread (a channel, a lock, an
///   event, a join) and new fibers, and fibers that yielded (with the
///   dispatcher). A woken fiber thus runs as soon as the running one
///   switches, as Go's scheduler gives a just-readied goroutine `runnext`,
///   not after a pass over every fiber that yielded.
/// - Priority with turns: the first queue in that order that has fibers is
///   served, except that a queue that has waited while `lane_turn_picks`
///   fibers of the others ran (or for `lane_max_wait`) takes a turn of up to
///   `lane_turn_picks` fibers and `lane_quantum`, the one that waited
///   longest first (the first queue too: long fibers in the lower queues
///   must not keep it waiting). So a woken fiber waits at most for one such turn of
///   each lower queue and the fibers ahead of it in its queue, and a fiber
///   that yielded waits for the fibers ahead of it with at most 64 woken
///   fibers (or 10 ms of them) between turns of its queue, whatever the rate
///   of wake-ups.
/// - The dispatcher runs at bounded intervals, not once per pass: once
///   `poll_interval` has passed since it last ran, the next switch goes to
///   it (wherever it stands in its queue). It moves due sleepers and fibers
///   readied by other threads to the ready queues and frees ended fibers, so
///   a sleep ends at most `poll_interval` plus the longest time one fiber
///   runs without yielding after its deadline.
/// - The reactor (epoll: sockets, Asio timers, posts) is visited by the
///   dispatcher, up to `max_handlers_per_visit` handlers per visit, every
///   `poll_interval` while its visits find work. A visit that finds nothing
///   doubles the interval, up to `max_poll_interval`; a visit that finds
///   work, or the thread going idle, brings it back to `poll_interval`. A
///   saturated server whose fibers always find data thus makes few empty
///   `epoll_wait` calls, and an event after a quiet spell is still seen
///   within `max_poll_interval` plus one fiber's run.
/// - Idle: `suspend_until` blocks in `io_context::run_one()`: no busy loop.
/// - `notify()` (any thread) only posts to the io_context, deduplicated by an
///   atomic flag.
/// - Scheduling delay: how long each fiber waited in a ready queue; the
///   longest over `run_options::scheduling_delay_threshold` is noted for the
///   watchdog to report (`worker::note_delay`).
///
/// Every context it schedules carries a `fiber_state` as its Boost.Fiber
/// properties, created the first time the context becomes ready. (Not
/// `algorithm_with_properties`: its `awakened` looks the properties up twice
/// per wake-up through calls into the shared library.)
class scheduler final : public boost::fibers::algo::algorithm {
public:
  static constexpr std::chrono::microseconds poll_interval{500};
  /// The longest interval between reactor visits while fibers are ready
  /// (reached after visits that found nothing).
  static constexpr std::chrono::microseconds max_poll_interval{4000};
  /// Asio handlers run per visit to the reactor while fibers are ready.
  static constexpr std::size_t max_handlers_per_visit = 256;
  /// A lower ready queue that has waited while `lane_turn_picks` fibers of
  /// the queues above it ran, or for `lane_max_wait`, takes a turn of up to
  /// `lane_turn_picks` fibers and `lane_quantum` (at least one fiber). The
  /// trigger counts fibers rather than time so that a thread the OS
  /// preempts (a loaded machine) does not hand turns to the lower queues.
  static constexpr std::uint64_t lane_turn_picks = 64;
  static constexpr std::chrono::microseconds lane_quantum{500};
  static constexpr std::chrono::milliseconds lane_max_wait{10};

  /// A clock for the scheduler's intervals, read at every switch. On x86 the
  /// time-stamp counter (about a third of `steady_clock::now()`'s cost
  /// here). Its rate is measured against steady_clock while the scheduler
  /// runs (`calibrate`); until then it is taken as 1 GHz, which every x86
  /// TSC of the last fifteen years reaches or exceeds, so the intervals are
  /// upper bounds meanwhile. Elsewhere, steady_clock nanoseconds.
  static std::uint64_t ticks() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    return __rdtsc();
#else
    return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#endif
  }
  static constexpr std::uint64_t nanoseconds(std::chrono::nanoseconds d) noexcept {
    return static_cast<std::uint64_t>(d.count());
  }

  explicit scheduler(worker& w) noexcept;

  void awakened(boost::fibers::context* ctx) noexcept override;
  boost::fibers::context* pick_next() noexcept override;
  bool has_ready_fibers() const noexcept override;
  void suspend_until(std::chrono::steady_clock::time_point const& tp) noexcept override;
  void notify() noexcept override;

private:
  /// The running context, as recorded by the last `pick_next` when known.
  const boost::fibers::context* running() const noexcept;
  /// Whether the calling context is Boost.Fiber's dispatcher.
  bool in_dispatcher() const noexcept;
  /// Runs the Asio handlers that are ready (`block`: waits for one, until
  /// `tp`); returns how many ran.
  std::size_t run_handlers(bool block, std::chrono::steady_clock::time_point tp) noexcept;
  /// Visits the reactor (non-blocking) and adapts `visit_interval_` to what
  /// the visit found.
  void visit_reactor(std::uint64_t now) noexcept;
  /// Measures ticks() against steady_clock until `calibration_time` has
  /// passed, then sets the intervals in ticks from the measured rate.
  void calibrate(std::uint64_t now) noexcept;
  /// Counts a park when the context switching out began to wait.
  void count_park() noexcept;
  /// `ticks` in nanoseconds (as at 1 GHz until calibrated).
  std::uint64_t to_ns(std::uint64_t ticks) const noexcept {
    return static_cast<std::uint64_t>(static_cast<double>(ticks) * ns_per_tick_);
  }
  /// Takes `ctx` (just unlinked from its queue) as the next to run.
  boost::fibers::context* resume(boost::fibers::context* ctx, std::uint64_t now) noexcept;

  /// The ready queues, in priority order.
  enum lane : unsigned { from_reactor, from_fiber, yielded, lanes };
  /// The lane a context made ready now joins.
  lane lane_for(boost::fibers::context* ctx, fiber_state& props) noexcept;

  worker& worker_;
  boost::fibers::scheduler::ready_queue_type queues_[lanes];
  /// ticks() and `picks_` when each lane last had a fiber switch out (or,
  /// for a lane that was empty, when its first fiber came): how long it has
  /// been waiting.
  std::uint64_t last_served_[lanes] = {};
  std::uint64_t last_served_pick_[lanes] = {};
  std::uint64_t picks_ = 0;                      ///< fibers picked so far
  std::uint64_t turn_start_pick_ = 0;            ///< `picks_` when the owed turn began
  unsigned running_lane_ = lanes;                ///< the lane of the running fiber (`lanes`: none)
  unsigned owed_ = lanes;                        ///< a lower lane having a turn after waiting (`lanes`: none)
  std::uint64_t turn_start_ = 0;                 ///< ticks() when that turn began
  boost::fibers::context* dispatcher_ = nullptr; ///< Boost.Fiber's dispatcher, once seen
  bool dispatcher_queued_ = false;               ///< the dispatcher is in `queues_[yielded]`
  std::atomic<bool> notified_{false};
  std::uint64_t last_dispatch_ = 0;      ///< ticks() when the dispatcher last ran its checks
  std::uint64_t last_reactor_visit_ = 0; ///< ticks()
  /// The intervals above in ticks (as at 1 GHz until calibrated).
  std::uint64_t poll_interval_ticks_ = nanoseconds(poll_interval);
  std::uint64_t max_poll_interval_ticks_ = nanoseconds(max_poll_interval);
  std::uint64_t lane_quantum_ticks_ = nanoseconds(lane_quantum);
  std::uint64_t lane_max_wait_ticks_ = nanoseconds(lane_max_wait);
  std::uint64_t visit_interval_ = poll_interval_ticks_; ///< ticks between reactor visits now
  static constexpr std::chrono::milliseconds calibration_time{20};
  std::uint64_t calibration_ticks_ = 0; ///< ticks() at the calibration's start (0: not started)
  std::chrono::steady_clock::time_point calibration_start_{};
  bool calibrated_ = false;
  double ns_per_tick_ = 1.0;
};

} // namespace coop::detail
