// coop/detail/io_mode.hpp — how a coop I/O call waits on the calling thread.
#pragma once

#include <coop/detail/fiber_state.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <optional>

namespace coop::detail {

/// A fiber of the object's own runtime thread (yield), or a plain thread
/// inside a `blocking_scope` (block in the kernel).
struct io_mode {
  fiber_state* fiber; ///< nullptr in blocking mode
};

/// Decides the mode for an operation on an object with executor `ex`; throws
/// `usage_error` (naming `what`) outside a runtime or on another runtime
/// thread's object.
io_mode mode_for(const boost::asio::any_io_executor& ex, const char* what);

/// The io_context new I/O objects of the calling thread belong to.
boost::asio::io_context& io_for_new_object(const char* what);

bool in_blocking_scope() noexcept;

/// The `coop::timeout` scopes of a plain thread inside a `blocking_scope`
/// (innermost first); they bound the stream's blocking reads and writes.
timeout_node*& blocking_timeouts() noexcept;

/// The earliest deadline of the calling plain thread's timeout scopes, if any.
std::optional<std::chrono::steady_clock::time_point> blocking_deadline() noexcept;

/// Blocking mode under a deadline: waits until `fd` is readable (or writable)
/// or the deadline passes (then `ec` = errc::timed_out). False on error.
bool wait_ready(int fd, bool for_write, boost::system::error_code& ec);

} // namespace coop::detail
