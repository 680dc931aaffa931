// coop/blocking_scope.hpp — run coop's I/O types on a plain OS thread.
#pragma once

namespace coop {

/// While it lives on a plain OS thread (not a runtime thread), coop's socket
/// types block that thread in the kernel instead of yielding a fiber. This is
/// how one connection handler, written once against `coop::net::tcp_stream`,
/// runs either in a fiber or on a thread of its own. A `coop::timeout` on
/// the thread bounds every blocking call there the way it does in a fiber —
/// reads, writes, accept and connect wait in poll() with the deadline;
/// channel, join and sleep waits use it too (those need no blocking scope);
/// cancellation does not apply (there is no task). See docs/runtime.md.
/// Throws `usage_error` on a runtime thread.
class blocking_scope {
public:
  blocking_scope();
  ~blocking_scope();
  blocking_scope(const blocking_scope&) = delete;
  blocking_scope& operator=(const blocking_scope&) = delete;
};

} // namespace coop
