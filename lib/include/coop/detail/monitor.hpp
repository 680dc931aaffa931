// coop/detail/monitor.hpp — the watchdog thread behind stall reports,
// deadlock reports and coop::dump_fibers (lib/src/monitor.cpp).
#pragma once

#include <coop/run_options.hpp>

namespace coop::detail {

struct worker;

/// `opts` with the environment's overrides (COOP_STALL_MS, COOP_DEADLOCK_MS).
run_options with_environment(run_options opts);

/// Starts / stops watching a worker (on its thread, while it is attached).
void watch_worker(worker& w);
void unwatch_worker(worker& w) noexcept;

} // namespace coop::detail
