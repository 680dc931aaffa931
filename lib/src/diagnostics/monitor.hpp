// coop/detail/monitor.hpp — the watchdog thread behind stall reports,
// deadlock reports and coop::dump_fibers (lib/src/diagnostics/monitor.cpp).
#pragma once

#include <coop/run_options.hpp>

#include <cstddef>
#include <cstdint>

namespace coop::detail {

struct worker;

/// `opts` with the environment's overrides (COOP_STALL_MS, COOP_DEADLOCK_MS).
run_options with_environment(run_options opts);

/// Starts / stops watching a worker (on its thread, while it is attached).
void watch_worker(worker& w);
void unwatch_worker(worker& w) noexcept;

/// The longest the diagnostics held a worker's registry lock at a time
/// while copying its fibers (in CPU time of the thread that held it, so a
/// loaded machine does not inflate it) and the most fibers copied under one
/// hold, since the previous call. For the tests: a dump must not keep a
/// runtime thread from spawning for more than a moment.
struct registry_hold_stats {
  std::int64_t cpu_ns = 0;
  std::size_t fibers = 0;
};
registry_hold_stats take_registry_hold_stats() noexcept;

} // namespace coop::detail
