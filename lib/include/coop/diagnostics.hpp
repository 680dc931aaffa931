// coop/diagnostics.hpp — what every fiber of the process is doing.
#pragma once

#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

namespace coop {

/// Prints every live fiber of every runtime in the process: its number, its
/// name (`this_fiber::set_name`), its runtime thread, and its state —
/// running, ready, or waiting, on what (a socket read or write with its
/// descriptor, accept, a channel push or pop, sleep, the join of which
/// fiber, select, a lock...) and for how long. Callable from any thread,
/// also while a runtime thread is stuck: it reads what each fiber published
/// when it began to wait, without stopping anybody (a fiber that changes
/// state meanwhile may show its old or its new state).
/// `coop::run_options::dump_on_sigquit` prints the same on SIGQUIT.
///
/// Example output:
/// @code
///   coop: 3 fibers on 1 runtime thread
///   runtime 1 thread 0: 3 fibers
///     fiber 1 "main": waiting 2.104 s on join (fiber 2)
///     fiber 2 "conn 127.0.0.1:50312": waiting 2.104 s on read (fd 7)
///     fiber 3: waiting 0.500 s on sleep (until +0.500 s)
/// @endcode
void dump_fibers(std::ostream& out);

/// The number of live fibers launched by coop in the process (every
/// runtime), for monitoring. Callable from any thread. A fiber counts from
/// its launch on its thread (for `runtime::spawn_on`, a moment after the
/// call) until its thread's scheduler has released it, a moment after it
/// finished: a test that checks for leaks waits a little, bounded, for the
/// count to drop.
std::size_t fiber_count();

/// Like `fiber_count()`, for the calling runtime only: the `coop::runtime`
/// whose thread calls it (all its threads; see also `runtime::fiber_count()`),
/// or the thread's `coop::run`. Throws `usage_error` outside a runtime.
///
/// Example:
/// @code
///   coop::runtime rt(2);
///   rt.spawn_on(0, [] { std::cout << coop::this_runtime_fiber_count() << '\n'; }).get();  // 1: itself
///   std::cout << rt.fiber_count() << '\n';  // soon 0 again; coop::fiber_count() counts other runtimes too
/// @endcode
std::size_t this_runtime_fiber_count();

/// The admin endpoints the process serves now (`run_options::admin_socket`,
/// `COOP_ADMIN`), as bound: a Unix socket's path, or "127.0.0.1:41235"
/// with the port the kernel picked for port 0.
std::vector<std::string> admin_addresses();

} // namespace coop
