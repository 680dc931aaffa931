// coop/metrics.hpp — the runtime's counters, as a plain struct or in
// Prometheus's text format.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string_view>
#include <vector>

namespace coop {

/// What a waiting fiber waits for, by kind (`coop::dump_fibers` shows the
/// precise call: "channel pop", "tls read"...).
enum class wait_kind : std::uint8_t {
  other,   ///< an Asio operation through `coop::yield`, the runtime's own waits
  read,    ///< a socket (or descriptor) to become readable: read, receive, wait_readable
  write,   ///< a socket to become writable: write, send, wait_writable
  accept,  ///< a listener's next connection
  connect, ///< a connection being established
  channel, ///< a channel push or pop
  sync,    ///< a mutex, semaphore, event, wait_group or async_result
  sleep,   ///< a timer: sleep_for, sleep_until
  join,    ///< another fiber's end: task::join, task_group
  select,  ///< `coop::select` over several channels
  offload, ///< work run on the offload pool
  hooked,  ///< a blocking libc call made cooperative by coop::hooks
  signal,  ///< `coop::wait_signal`
};
inline constexpr std::size_t wait_kinds = 13;

/// "read", "channel", ...: the `wait` label of the Prometheus metrics.
std::string_view to_string(wait_kind kind) noexcept;

/// A distribution of durations: how many fell in each bucket.
struct duration_histogram {
  /// Upper bounds of the buckets in seconds (inclusive), ascending; one
  /// more bucket, unbounded, follows the last.
  std::vector<double> upper_bounds;
  /// Observations per bucket (not cumulative); `upper_bounds.size() + 1` entries.
  std::vector<std::uint64_t> counts;
  std::uint64_t count = 0;  ///< observations in all
  double sum_seconds = 0.0; ///< their total
};

/// One runtime thread. Counters (`_total` in Prometheus) only grow while the
/// thread lives; the others are its state at the snapshot.
struct thread_metrics {
  unsigned runtime = 0; ///< the number `dump_fibers` gives the runtime ("runtime 1")
  unsigned thread = 0;  ///< the thread's index in its runtime

  std::uint64_t fibers = 0;  ///< live fibers
  std::uint64_t running = 0; ///< 1 while one of them runs, else 0
  std::uint64_t ready = 0;   ///< live fibers neither running nor parked
  /// Parked (waiting) fibers by `wait_kind` (index: `static_cast<std::size_t>(kind)`).
  std::array<std::uint64_t, wait_kinds> parked{};

  std::uint64_t fibers_spawned = 0;  ///< fibers launched on the thread
  std::uint64_t fibers_finished = 0; ///< of which finished
  std::uint64_t context_switches = 0;
  std::uint64_t parks = 0;          ///< switches away from a fiber that began to wait
  std::uint64_t reactor_visits = 0; ///< looks into the io_context (epoll) for events
  std::uint64_t handlers_run = 0;   ///< Asio handlers those visits ran
  std::uint64_t ready_queue = 0;    ///< contexts in the ready queues now

  /// How long each fiber that became ready waited before it ran.
  duration_histogram scheduling_delay;
  /// How much later than planned the thread looked into its io_context
  /// while fibers were ready (the planned interval is 0.5 to 4 ms).
  duration_histogram reactor_lag;

  std::uint64_t stalls = 0;            ///< stall reports (`run_options::stall_threshold`)
  double longest_stall_seconds = 0.0;  ///< the longest of them
  std::uint64_t stacks_mapped = 0;     ///< fiber stacks mapped by the thread's pool
  std::uint64_t stacks_cached = 0;     ///< of which kept for reuse, unused
  std::uint64_t stacks_unguarded = 0;  ///< of which without a guard region (a canary instead)
  std::uint64_t serve_accepted = 0;    ///< connections `coop::net::serve` accepted on the thread
  std::uint64_t serve_open = 0;        ///< of which still served
  std::uint64_t serve_limit_waits = 0; ///< times `serve` stopped accepting at `max_connections`
};

/// The offload pool (one per process).
struct offload_metrics {
  std::uint64_t queued = 0;    ///< jobs waiting for a thread
  std::uint64_t running = 0;   ///< jobs being run
  std::uint64_t completed = 0; ///< jobs run to the end (counter)
  std::uint64_t threads = 0;   ///< pool threads alive
};

/// Every runtime thread of the process, and the offload pool.
struct metrics {
  std::vector<thread_metrics> threads; ///< by runtime, then thread
  offload_metrics offload;
};

/// The counters of every runtime thread of the process, callable from any
/// thread. The runtime threads keep them in plain per-thread counters (no
/// atomic read-modify-write on their hot paths), so a snapshot is a
/// consistent picture of each counter, not of all of them at one instant.
/// The fibers by state come from a walk over each thread's live fibers, a
/// few dozen at a time (as `dump_fibers`).
///
/// Example:
/// @code
///   for (const coop::thread_metrics& t : coop::metrics_snapshot().threads)
///     std::cout << "runtime " << t.runtime << " thread " << t.thread << ": " << t.fibers << " fibers, "
///               << t.parked[static_cast<std::size_t>(coop::wait_kind::read)] << " waiting to read\n";
/// @endcode
metrics metrics_snapshot();

/// `metrics_snapshot()` in Prometheus's text exposition format (version
/// 0.0.4): every metric with `# HELP` and `# TYPE`, per runtime thread with
/// the labels `runtime` and `thread`, `_total` on counters, durations in
/// seconds. For example `coop_fibers_parked{runtime="1",thread="0",wait="read"} 100`.
/// `docs/observability.md` lists them all.
void write_prometheus(std::ostream& out);

} // namespace coop
