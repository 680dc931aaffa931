// coop/fd.hpp — waiting until any file descriptor is readable or writable.
#pragma once

#include <coop/detail/sync_wait.hpp>

#include <boost/system/error_code.hpp>

#include <chrono>

namespace coop {

/// Waits until `fd` is readable: data, end of file, a pending connection, an
/// error or a hang-up (the next call on `fd` then tells which). Any
/// descriptor works: a socket, a pipe, an eventfd, a descriptor a C library
/// opened and never gave to coop. gevent's `wait_read`.
///
/// In a fiber it parks the fiber only (the thread runs other fibers), and
/// like every blocking call it honours `coop::timeout`, `task::cancel()` and
/// `coop::shield`, and shows in `coop::dump_fibers` as `readable` with the
/// descriptor. The descriptor is registered with the thread's reactor at its
/// first wait and stays registered (no `epoll_ctl` per wait) until
/// `forget_fd`. A descriptor that is already ready returns at once (one
/// `poll` with timeout 0), so it is safe to wait before every read.
///
/// On a plain thread it waits in `poll`, bounded by a `coop::blocking_scope`'s
/// timeouts when there is one.
///
/// Fails with `bad_descriptor` when `fd` is not open, and, at once, when a
/// fiber waits on it while another fiber (of any thread) calls `forget_fd`.
///
/// Example (a C library's socket, made non-blocking):
/// @code
///   for (;;) {
///     ssize_t n = ::recv(fd, buf, sizeof buf, 0);
///     if (n >= 0 || errno != EAGAIN) return n;
///     coop::wait_readable(fd); // other fibers run meanwhile
///   }
/// @endcode
void wait_readable(int fd);
/// Like `wait_readable`, reporting an error or interruption into `ec`.
void wait_readable(int fd, boost::system::error_code& ec);
/// Waits until `fd` is writable (room in its buffer, a completed connect, an
/// error or a hang-up); otherwise as `wait_readable`. gevent's `wait_write`.
void wait_writable(int fd);
void wait_writable(int fd, boost::system::error_code& ec);

/// Like `wait_readable`, for at most until `deadline`: true when `fd` became
/// readable, false when `deadline` passed first.
bool wait_readable_until(int fd, std::chrono::steady_clock::time_point deadline);
/// False with `ec` set on an error or interruption, false with `ec` clear
/// when `deadline` passed.
bool wait_readable_until(int fd, std::chrono::steady_clock::time_point deadline, boost::system::error_code& ec);
bool wait_writable_until(int fd, std::chrono::steady_clock::time_point deadline);
bool wait_writable_until(int fd, std::chrono::steady_clock::time_point deadline, boost::system::error_code& ec);

/// For at most `d` (`duration::max()` waits without a limit).
template <class Rep, class Period> bool wait_readable_for(int fd, std::chrono::duration<Rep, Period> d) {
  return wait_readable_until(fd, detail::deadline_after(d));
}
template <class Rep, class Period>
bool wait_readable_for(int fd, std::chrono::duration<Rep, Period> d, boost::system::error_code& ec) {
  return wait_readable_until(fd, detail::deadline_after(d), ec);
}
template <class Rep, class Period> bool wait_writable_for(int fd, std::chrono::duration<Rep, Period> d) {
  return wait_writable_until(fd, detail::deadline_after(d));
}
template <class Rep, class Period>
bool wait_writable_for(int fd, std::chrono::duration<Rep, Period> d, boost::system::error_code& ec) {
  return wait_writable_until(fd, detail::deadline_after(d), ec);
}

/// Drops what coop keeps about `fd` for `wait_readable`/`wait_writable` (its
/// reactor registration, on every runtime thread), and wakes the fibers that
/// wait on it with `bad_descriptor`. Call it before closing a descriptor
/// that fibers have waited on: the kernel then reuses the number, and a
/// fiber still waiting on the old descriptor would otherwise wait forever
/// (epoll forgets a closed descriptor silently). A later wait on the same
/// number registers it afresh. Any thread; does nothing for a descriptor
/// never waited on. When another runtime thread has the descriptor
/// registered, it waits (without being interrupted: a timeout or cancel
/// could leave a registration behind) until that thread has dropped it, so
/// the descriptor may be closed as soon as it returns.
///
/// @code
///   coop::forget_fd(fd);
///   ::close(fd);
/// @endcode
void forget_fd(int fd) noexcept;

} // namespace coop
