// coop/blocking_scope.hpp — run coop's I/O types on a plain OS thread.
#pragma once

namespace coop {

/// While it lives on a plain OS thread (not a runtime thread), coop's socket
/// types block that thread in the kernel instead of yielding a fiber. This is
/// how one connection handler, written once against `coop::net::tcp_stream`,
/// runs either in a fiber or on a thread of its own. Timeouts and
/// cancellation do not apply in this mode. Throws `usage_error` on a runtime
/// thread.
class blocking_scope {
public:
  blocking_scope();
  ~blocking_scope();
  blocking_scope(const blocking_scope&) = delete;
  blocking_scope& operator=(const blocking_scope&) = delete;
};

} // namespace coop
