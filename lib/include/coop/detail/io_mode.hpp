// coop/detail/io_mode.hpp — how a coop I/O call waits on the calling thread.
#pragma once

#include <coop/detail/fiber_state.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>

#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <memory>

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

/// The start of a socket call: decides the mode as `mode_for` does, then
/// makes the entry check of the caller's wait context. The calling fiber's
/// state in fiber mode, null in blocking mode; `ec` is set when an
/// interruption is due (the call must then fail at once).
fiber_state* begin_call(const boost::asio::any_io_executor& ex, const char* what, boost::system::error_code& ec);

/// An I/O call of `fs` completed without waiting: after `batch` such calls
/// in a row the fiber yields (the scheduler resets the count whenever it
/// resumes the fiber).
inline void count_direct_io(fiber_state& fs, std::uint32_t batch = direct_io_budget) {
  if (++fs.direct_io_streak >= batch) yield_now();
}

/// Connections a fiber accepts in a row without waiting before it yields
/// (gevent's StreamServer takes up to 100 per readiness event): accepting
/// costs little, and a burst of clients should not wait a pass of the ready
/// queue each.
inline constexpr std::uint32_t accept_batch = 64;

/// The start of a call that may be served from bytes already in user space
/// (a buffered reader's buffer, the caller's buffer of `read_until`): the
/// entry check of the caller's wait context (`ec` set when an interruption
/// is due: the call must fail). Returns the calling fiber's state, null on
/// a plain thread.
fiber_state* begin_buffered_read(boost::system::error_code& ec) noexcept;

/// Such a call was served from user space, without a system call or a wait:
/// like a read that found data, it counts against the fiber's
/// `direct_io_budget`, so a reader that always finds its next line buffered
/// still lets the other fibers of its thread run. Nothing on a plain thread.
inline void count_buffered_read(fiber_state* fs) noexcept {
  if (fs) count_direct_io(*fs);
}

/// The io_context new I/O objects of the calling thread belong to.
boost::asio::io_context& io_for_new_object(const char* what);

/// Keeps the io_context of a coop I/O object alive for as long as the object
/// (a member declared before the socket): an object that outlives its
/// `coop::run` then closes cleanly instead of touching a freed reactor.
/// Null for objects of a blocking scope (their io_context lives forever).
std::shared_ptr<void> keep_io_alive(const boost::asio::any_io_executor& ex) noexcept;

/// For calls that do not wait (close, shutdown): throws `usage_error` when
/// the object belongs to a runtime thread and the caller is not a fiber of
/// that thread (it would race with the reactor). Objects of a blocking scope
/// are plain sockets: any thread may close them.
void require_owner(const boost::asio::any_io_executor& ex, const char* what);

/// True for objects created in a blocking scope (their io_context never runs).
bool is_blocking_io(const boost::asio::any_io_executor& ex) noexcept;

bool in_blocking_scope() noexcept;

/// `errno` as an error code.
inline boost::system::error_code errno_error() noexcept {
  return {errno, boost::system::system_category()};
}

/// Blocking mode: the one place where a plain thread waits on a
/// descriptor. Waits in poll() until `fd` is readable (or writable), within
/// the thread's timeouts; false with `ec` set on an interruption, a poll
/// error or a descriptor that is not open, false with `ec` clear once
/// `own_deadline` (the call's own limit) has passed.
bool wait_ready(int fd, bool for_write, boost::system::error_code& ec, steady_time own_deadline = no_deadline);

/// Gathers up to `max` buffers of a sequence as iovecs; returns how many.
template <class Buffers> std::size_t to_iovec(const Buffers& buffers, iovec* iov, std::size_t max) noexcept {
  std::size_t n = 0;
  for (auto it = boost::asio::buffer_sequence_begin(buffers);
       it != boost::asio::buffer_sequence_end(buffers) && n < max; ++it) {
    auto b = *it;
    iov[n].iov_base = const_cast<void*>(static_cast<const void*>(b.data()));
    iov[n].iov_len = b.size();
    ++n;
  }
  return n;
}

} // namespace coop::detail
