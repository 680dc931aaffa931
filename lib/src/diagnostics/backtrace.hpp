// lib/src/diagnostics/backtrace.hpp — the stack of a stalled runtime thread:
// captured there by a signal, named off it (lib/src/diagnostics/backtrace.cpp).
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace coop::detail {

/// Raw frames kept per capture: coop's signal frames, the stalled code, and
/// what lies below it down to the fiber's entry.
inline constexpr std::size_t max_raw_frames = 128;

/// One runtime thread's capture buffer: allocated by the watchdog when the
/// thread starts being watched, written only by the signal handler on that
/// thread, read by the watchdog once `done` equals the `requested` number.
struct stack_capture {
  std::atomic<std::uint32_t> requested{0};
  std::atomic<std::uint32_t> done{0};
  std::uintptr_t pc = 0; ///< where the signal found the thread
  void* frames[max_raw_frames + 1]{};
};

/// Makes `c` the calling runtime thread's buffer (null: none), while the
/// watchdog watches the thread.
void set_this_thread_capture(stack_capture* c) noexcept;

/// Asks `thread`, whose buffer is `c`, for its stack (the stall signal) and
/// waits for it; false when the signal is not ours to send, or no capture
/// came in time.
bool capture_stack(stack_capture& c, pthread_t thread);

/// A capture copied out of its buffer, to be printed after the watchdog
/// lets go of its lock (naming frames may read debug information).
struct raw_backtrace {
  std::uintptr_t pc = 0; ///< the interrupted instruction
  std::vector<std::uintptr_t> frames;
  std::string header; ///< the line that says whose stack it is
};

raw_backtrace copy_of(const stack_capture& c);

/// The backtrace block of a capture: its header, then the frames from the
/// one the signal interrupted (coop's handler frames above it are cut) down
/// to the program's outermost frame on the stack (the fiber's entry below
/// it is cut), at most `max_printed_frames` lines: the innermost frames and
/// the outermost ones, with a line for those left out between.
std::string format_backtrace(const raw_backtrace& c);

} // namespace coop::detail
