// coop/run_options.hpp — the settings of a runtime (coop::run or coop::runtime).
#pragma once

#include <chrono>
#include <cstddef>

namespace coop {

/// Settings of a runtime, given to `coop::run` or `coop::runtime`; every
/// runtime thread of a `coop::runtime` gets the same.
///
/// Example:
/// @code
///   coop::run_options opts;
///   opts.stall_threshold = std::chrono::milliseconds(20); // report fibers that hog their thread for 20 ms
///   opts.dump_on_sigquit = true;                          // kill -QUIT prints every fiber, like Go
///   coop::run([] { ... }, opts);
/// @endcode
struct run_options {
  /// Stack size of every fiber (pooled and reused per thread). A guard page
  /// below each stack turns an overflow into a clear message.
  std::size_t stack_size = 128 * 1024;

  /// A fiber that runs this long without yielding (computing, or stuck in a
  /// call that blocks the thread) gets one line on stderr naming it, its
  /// runtime thread and how long it ran, and a backtrace of the thread where
  /// one can be taken. Time the OS kept a runnable thread off its CPU (an
  /// overloaded machine) does not count: such a thread is reported once its
  /// fiber has computed for the threshold; a thread blocked in a system call
  /// is reported as such. The environment variable `COOP_STALL_MS` overrides it;
  /// 0 turns the reports off. Cost on the hot path: two relaxed stores per
  /// fiber switch; a process-wide watchdog thread looks every threshold / 2.
  std::chrono::milliseconds stall_threshold{100};

  /// When every fiber of the runtime has waited this long on coop primitives
  /// (channels, locks, events, joins, select without a timer) and no I/O,
  /// timer, signal or offloaded job can end any of those waits, print a
  /// "possible deadlock" warning with the runtime's fibers (as
  /// `coop::dump_fibers`) once. `COOP_DEADLOCK_MS` overrides it; 0 turns it
  /// off. Plain threads that may still push to a channel are unknown to the
  /// runtime: such a program may get the warning and carry on.
  std::chrono::milliseconds deadlock_threshold{2000};

  /// SIGQUIT (Ctrl-\) prints every fiber of every runtime to stderr, as
  /// `coop::dump_fibers(std::cerr)`, instead of ending the process. The
  /// previous SIGQUIT disposition comes back when the last such runtime ends.
  bool dump_on_sigquit = false;
};

} // namespace coop
