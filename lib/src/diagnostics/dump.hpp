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
  std::uint64_t id = 0;
  std::string name;
  const void* task = nullptr;
  const char* what = nullptr; // null: not waiting
  wait_kind kind = wait_kind::other;
  const void* object = nullptr;
  int fd = -1;
  std::int64_t since_ns = 0;
  steady_time::rep until = 0;
  bool internal = false;
  /// Where it waits (return addresses, innermost first): empty unless the
  /// snapshot was asked for a trace request's records (`snapshot`).
  std::vector<std::uintptr_t> where{};
  const void* stack_top = nullptr; ///< its stack, for the high-water mark
  std::size_t stack_size = 0;
};

struct thread_rows {
  unsigned runtime; ///< the worker's group_number and index
  unsigned thread;
  bool idle;
  std::uint64_t running;
  std::vector<fiber_row> fibers;
};

/// The live fibers of `w`, oldest first, copied a batch per hold of its
/// registry lock. One copy per worker at a time: the caller holds the
/// watchdog's mutex (as for fiber_label).
/// With `where_generation` (trace_parked_fibers), the rows of the fibers
/// that answered that request carry where they wait.
thread_rows snapshot(worker& w, std::uint64_t where_generation = 0);

/// The live fibers of `w` by state, counted a batch per hold of its
/// registry lock (as `snapshot`, without copying them). The caller holds
/// the watchdog's mutex.
struct state_counts {
  std::uint64_t fibers = 0;
  std::uint64_t running = 0;
  std::array<std::uint64_t, wait_kinds> parked{};
};
state_counts count_states(worker& w);

/// A wait that only another fiber or thread can end: on a coop primitive
/// (`internal`: a channel, lock, event or join) with no timer (`until` is
/// `no_deadline`). What the deadlock check asks of every fiber.
inline bool only_another_can_end(const char* what, bool internal, steady_time::rep until) noexcept {
  return what && internal && until == no_deadline.time_since_epoch().count();
}

/// True when every live fiber of `w` is parked on a coop primitive with no
/// deadline (a channel, lock, event or join that only another fiber or
/// thread can end), adding them to `fibers`. Walked like `count_states`,
/// without copying, and stopped at the first fiber that is not. The
/// caller holds the watchdog's mutex.
bool only_others_can_wake(worker& w, std::size_t& fibers);

/// The dump's text for the threads in `rows` (see coop::dump_fibers).
std::string format_dump(const std::vector<thread_rows>& rows);

/// The dump of every watched runtime thread: what coop::dump_fibers and
/// SIGQUIT print.
std::string dump_all();

/// What the admin endpoint's /fibers shows: the dump as text (above) or as
/// a JSON array, one object per fiber (docs/observability.md), with where
/// each fiber waits in the program (from `where_generation`'s records, if
/// not 0) and, in JSON, its stack's high-water mark.
std::string format_dump_json(const std::vector<thread_rows>& rows);
std::string dump_all(std::uint64_t where_generation, bool json);

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
