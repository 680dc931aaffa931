// lib/src/diagnostics/watchdog.hpp — the watchdog thread behind stall reports,
// deadlock reports and coop::dump_fibers (lib/src/diagnostics/watchdog.cpp).
#pragma once

#include <coop/run_options.hpp>

#include <functional>
#include <span>

namespace coop::detail {

struct worker;

/// `opts` with the environment's overrides (COOP_STALL_MS, COOP_DEADLOCK_MS).
run_options with_environment(run_options opts);

/// Starts / stops watching a worker (on its thread, while it is attached).
void watch_worker(worker& w);
void unwatch_worker(worker& w) noexcept;

/// Calls `f` with the watched workers, holding the watchdog's mutex: none
/// of them stops being watched meanwhile, and one walk of a worker's fiber
/// registry goes on at a time (dump.cpp).
void with_watched_workers(const std::function<void(std::span<worker* const>)>& f);

} // namespace coop::detail
