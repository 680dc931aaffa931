// lib/src/diagnostics/dump.hpp — the fibers of the runtime threads as the
// diagnostics see them, and the text of a fiber dump (lib/src/diagnostics/dump.cpp).
#pragma once

#include <coop/detail/deadline.hpp>
#include <coop/metrics.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace coop::detail {

struct worker;

/// One live fiber, copied out of its worker's registry.
struct fiber_row {
  std::uint64_t id;
  std::string name;
  const void* task;
  const char* what; // null: not waiting
  wait_kind kind;
  const void* object;
  int fd;
  std::int64_t since_ns;
  steady_time::rep until;
  bool internal;
};

struct thread_rows {
  const worker* w;
  bool idle;
  std::uint64_t running;
  std::vector<fiber_row> fibers;
};

/// The live fibers of `w`, oldest first, copied a batch per hold of its
/// registry lock. One copy per worker at a time: the caller holds the
/// watchdog's mutex (as for fiber_label).
thread_rows snapshot(worker& w);

/// The live fibers of `w` by state, counted a batch per hold of its
/// registry lock (as `snapshot`, without copying them). The caller holds
/// the watchdog's mutex.
struct state_counts {
  std::uint64_t fibers = 0;
  std::uint64_t running = 0;
  std::array<std::uint64_t, wait_kinds> parked{};
};
state_counts count_states(worker& w);

/// The dump's text for the threads in `rows` (see coop::dump_fibers).
std::string format_dump(const std::vector<thread_rows>& rows);

/// The dump of every watched runtime thread: what coop::dump_fibers and
/// SIGQUIT print.
std::string dump_all();

/// The same as a JSON array, one object per fiber (docs/observability.md).
std::string format_dump_json(const std::vector<thread_rows>& rows);
std::string dump_all_json();

/// "fiber 12 \"name\"" for a fiber of `w` (its name looked up a few
/// fibers per hold of the registry lock), or what id 0 stands for.
std::string fiber_label(worker& w, std::uint64_t id);

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
