// coop/run_options.hpp — the settings of a runtime (coop::run or coop::runtime).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

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
  /// Stack size of every fiber (pooled and reused per thread). A guard
  /// region below each stack turns an overflow into a clear message.
  std::size_t stack_size = 128 * 1024;

  /// Size of the inaccessible region below every fiber stack (rounded up to
  /// whole pages, at least one). A frame bigger than this that is not probed
  /// page by page (code built without -fstack-clash-protection, which
  /// coop::coop passes to its consumers) can jump over it. It costs address
  /// space only, no memory.
  std::size_t stack_guard_size = 64 * 1024;

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

  /// A fiber that was ready to run (woken by I/O, a timer, another fiber, or
  /// yielding) and waited this long before it ran gets one line on stderr:
  /// its thread has more work than it can run in time, even though no
  /// single fiber stalls it (say, many fibers that each compute 20 ms). At
  /// most one report per runtime thread per second, with the longest delay
  /// and how many fibers waited that long since the last report. The
  /// environment variable `COOP_SCHED_DELAY_MS` overrides it; 0 turns it
  /// off. Cost on the hot path: a time-stamp counter read when a fiber
  /// becomes ready and one when it runs.
  std::chrono::milliseconds scheduling_delay_threshold{100};

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

  /// Where to serve the admin endpoint (empty: nowhere, the default): a Unix
  /// socket path ("/run/myserver/admin.sock") or a loopback "host:port"
  /// ("127.0.0.1:9100", "[::1]:9100"; port 0: one the kernel picks, see
  /// `coop::admin_addresses()`). The environment variable `COOP_ADMIN` sets
  /// it for every runtime of the process. HTTP/1.1, from a thread of its own
  /// (it answers while every runtime thread is stuck):
  ///   - `GET /metrics`: `coop::write_prometheus`;
  ///   - `GET /fibers`: every fiber as JSON (`docs/observability.md`);
  ///   - `GET /fibers?format=text`: `coop::dump_fibers`.
  /// One client at a time, 2 s to send a request of up to 8 KiB and to
  /// take in each 256 KiB of the answer. Runtimes that name the same
  /// address share the endpoint; it closes (and a Unix socket's file is
  /// removed) when the last of them ends. An address that cannot be served
  /// gets one line on stderr and the runtime runs without it.
  std::string admin_socket{};
};

} // namespace coop
