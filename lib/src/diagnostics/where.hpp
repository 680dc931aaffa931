// lib/src/diagnostics/where.hpp — where each parked fiber waits in the
// program, for the admin endpoint's /fibers (lib/src/diagnostics/where.cpp).
//
// Nothing is recorded while fibers run: a fiber's stack says where it waits,
// and only the fiber itself can read it safely. So when /fibers is asked,
// each runtime thread (between fibers, in an Asio handler) wakes its parked
// fibers a batch at a time; each, back in `park`, records its stack's return
// addresses (`wait_context::trace_wait`) and waits on, its wait unaffected.
// The addresses are named only when the page is made (libbacktrace, cached).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace coop::detail {

inline constexpr std::size_t max_where_frames = 24;

/// A parked fiber's stack when it was last asked (`fiber_state::where`).
struct where_record {
  std::uint64_t generation = 0; ///< the request it answered
  std::uint32_t count = 0;
  std::uintptr_t pcs[max_where_frames]{};
};

/// Asks every parked fiber of every runtime thread where it waits, and
/// waits for the answers while they come: it gives up once none has come
/// for `quiet` (a stuck thread gives none), or after `limit` in all.
/// Returns the request's number: records with it are current. Fibers per
/// batch: `trace_batch`, so that other fibers run between batches.
std::uint64_t trace_parked_fibers(std::chrono::milliseconds quiet, std::chrono::milliseconds limit);
inline constexpr std::size_t trace_batch = 256;

/// The program's frames among `pcs` (innermost first), as "function at
/// file:line": coop's own frames on top and the fiber's start below are
/// left out; at most `max`.
std::vector<std::string> program_frames(const std::uintptr_t* pcs, std::size_t count, std::size_t max);

/// Bytes of a fiber stack that are resident (touched and not given back):
/// its high-water mark, from mincore. 0 when unknown.
std::size_t stack_touched_bytes(const void* top, std::size_t size) noexcept;

/// A fiber's stack: its top (highest address) and size.
struct stack_extent {
  const void* top = nullptr;
  std::size_t size = 0;
};

/// `stack_touched_bytes` of each of `stacks`, in order. Stacks that lie
/// side by side (mmap usually places them so) are read with one mincore
/// call between them, which matters with 100,000 fibers.
std::vector<std::size_t> stacks_touched_bytes(const std::vector<stack_extent>& stacks);

} // namespace coop::detail
