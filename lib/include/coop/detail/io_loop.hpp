// coop/detail/io_loop.hpp — the one loop under every socket call of coop:
// try the non-blocking system call; when it would block, wait until the
// socket is ready; try again.
#pragma once

#include <coop/detail/io_mode.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/system/error_code.hpp>

#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace coop::detail {

/// A socket as the loop sees it: its descriptor and its registration with
/// the reactor of the thread that owns it (Asio's per-descriptor state, made
/// when the socket was opened). A wait queues on that registration: no
/// `epoll_ctl` per wait.
struct io_handle {
  int fd = -1;
  void* registration = nullptr; ///< the socket's `reactor::per_descriptor_data` (see lib/src/net/io_loop.cpp)
};

io_handle handle_of(boost::asio::ip::tcp::socket& s) noexcept;
io_handle handle_of(boost::asio::ip::tcp::acceptor& s) noexcept;
io_handle handle_of(boost::asio::ip::udp::socket& s) noexcept;
io_handle handle_of(boost::asio::local::stream_protocol::socket& s) noexcept;
io_handle handle_of(boost::asio::local::stream_protocol::acceptor& s) noexcept;

/// What one kind of call waits for, and how it shows in `dump_fibers`.
struct io_kind {
  const char* label; ///< "read", "write", "accept", ...
  bool for_write;    ///< waits until writable (else readable)
  /// Calls in a row without waiting before the fiber yields
  /// (`direct_io_budget`); 0: not counted. Reads and accepts are counted:
  /// a peer that always has data ready, or a burst of clients, must not
  /// keep the thread's other fibers from running. Writes are not: a
  /// request–response fiber is counted once per request, by its read.
  std::uint32_t batch;
  /// How its waits count in the metrics; `other`: `read` or `write` by the
  /// direction of each wait.
  wait_kind wait = wait_kind::other;
};
inline constexpr io_kind io_read{"read", false, direct_io_budget};
inline constexpr io_kind io_write{"write", true, 0};
inline constexpr io_kind io_receive{"receive", false, direct_io_budget};
inline constexpr io_kind io_send{"send", true, 0};
inline constexpr io_kind io_accept{"accept", false, accept_batch, wait_kind::accept};
inline constexpr io_kind io_connect{"connect", true, 0, wait_kind::connect};

/// One call in progress: who makes it, and the flags its system calls take.
struct io_call {
  fiber_state* fiber = nullptr; ///< null on a plain thread (in a `blocking_scope`)
  /// MSG_DONTWAIT; 0 on a plain thread without a timeout, whose calls may
  /// simply block in the kernel (one system call, as a thread-per-connection
  /// server expects).
  int flags = MSG_DONTWAIT;
  /// A timeout bounds this plain thread's call: its socket calls must not
  /// block in the kernel (connect and accept switch the socket to
  /// non-blocking for that).
  bool must_not_block() const noexcept { return fiber || flags != 0; }
};

/// The start of every socket call: checks that the caller may use an
/// object with executor `ex` (throws `usage_error` naming `what`), then
/// makes the entry check of its wait context (`ec` set when an interruption
/// is due: the call must fail at once).
io_call begin_io(const boost::asio::any_io_executor& ex, const char* what, boost::system::error_code& ec);

/// The call's system call would have blocked: waits until `h` is ready for
/// `kind` (parks the fiber on the socket's registration, or polls on a plain
/// thread, within the thread's timeouts). False with `ec` set when it was
/// interrupted, when the socket was closed meanwhile (`operation_aborted`)
/// or on an error.
bool wait_io(const io_call& call, io_handle h, const io_kind& kind, const void* object, boost::system::error_code& ec);

/// What one step of a call needs before it can go on.
enum class io_want : unsigned char {
  nothing, ///< the call is over (done, or failed with `ec` set)
  read,    ///< wait until readable, then step again
  write,   ///< wait until writable, then step again
};

/// The loop every socket call of coop runs: `step()` tries the call once
/// without blocking; when it says what it waits for, the fiber parks until
/// the socket is ready for that (`wait_io`, labelled `kind.label` in
/// `dump_fibers`) and steps again. A call that ends without an error counts
/// against the fiber's `kind.batch`. The socket calls below step one system
/// call; TLS steps OpenSSL (lib/src/net/tls.cpp), whose record layer may
/// want either direction whatever the call (`kind.for_write` is not used).
template <class Step>
void drive_io(const io_call& call, io_handle h, const io_kind& kind, const void* object, Step&& step,
              boost::system::error_code& ec) {
  for (;;) {
    const io_want want = step();
    if (want == io_want::nothing) {
      if (!ec && call.fiber && kind.batch != 0) count_direct_io(*call.fiber, kind.batch);
      return;
    }
    if (!wait_io(call, h, io_kind{kind.label, want == io_want::write, kind.batch, kind.wait}, object, ec)) return;
  }
}

/// The loop over one system call. `attempt(flags)` makes it once and returns
/// what it returned: >= 0 on success, -1 with `errno` set. It is retried at
/// once after EINTR and after a wait for readiness after EAGAIN; any other
/// error ends the call. A success counts against the fiber's `kind.batch`,
/// after which it yields (the count restarts whenever the fiber has waited).
template <class Attempt>
std::size_t io_loop(const io_call& call, io_handle h, const io_kind& kind, const void* object, Attempt&& attempt,
                    boost::system::error_code& ec) {
  std::size_t n = 0;
  drive_io(
      call, h, kind, object,
      [&] {
        for (;;) {
          const ssize_t r = attempt(call.flags);
          if (r >= 0) {
            n = static_cast<std::size_t>(r);
            return io_want::nothing;
          }
          const int err = errno;
          if (err == EINTR) continue;
          if (err == EAGAIN || err == EWOULDBLOCK) return kind.for_write ? io_want::write : io_want::read;
          ec.assign(err, boost::system::system_category());
          return io_want::nothing;
        }
      },
      ec);
  return n;
}

/// A buffer sequence as the kernel takes it: up to `Max` iovecs (the rest
/// of a longer sequence is left for the next call, as Asio does), with
/// their total size.
template <std::size_t Max> struct iovecs {
  template <class Buffers> explicit iovecs(const Buffers& buffers) noexcept : count(to_iovec(buffers, v, Max)) {
    for (std::size_t i = 0; i < count; ++i)
      bytes += v[i].iov_len;
  }
  /// A message header over them (and the address `name`, when given).
  msghdr header(void* name = nullptr, std::size_t name_len = 0) noexcept {
    msghdr msg{};
    msg.msg_name = name;
    msg.msg_namelen = static_cast<socklen_t>(name_len);
    msg.msg_iov = v;
    msg.msg_iovlen = count;
    return msg;
  }
  iovec v[Max];
  std::size_t count;
  std::size_t bytes = 0;
};

/// The iovecs for a call on `Buffers`: one for a single buffer, the
/// common call (240 bytes less than 16 in the frame of every read and
/// write, and so on the stack of every fiber parked in one), up to `Max`
/// for a sequence.
template <class Buffers, std::size_t Max>
using iovecs_for = iovecs<(std::is_convertible_v<const Buffers&, boost::asio::const_buffer> ? 1 : Max)>;

/// One `recv` into `iov` (one buffer and no address: `recv`; otherwise
/// `recvmsg`). With `from`, the sender's address is stored there (room:
/// `*from_len` bytes, which becomes its real length).
template <std::size_t Max>
ssize_t receive_once(int fd, iovecs<Max>& iov, int flags, void* from = nullptr,
                     std::size_t* from_len = nullptr) noexcept {
  if (iov.count == 1 && !from) return ::recv(fd, iov.v[0].iov_base, iov.v[0].iov_len, flags);
  msghdr msg = iov.header(from, from ? *from_len : 0);
  const ssize_t r = ::recvmsg(fd, &msg, flags);
  if (r >= 0 && from) *from_len = msg.msg_namelen;
  return r;
}
/// One `send` of `iov` (to the address `to`, when given), never raising SIGPIPE.
template <std::size_t Max>
ssize_t send_once(int fd, iovecs<Max>& iov, int flags, const void* to = nullptr, std::size_t to_len = 0) noexcept {
  if (iov.count == 1 && !to) return ::send(fd, iov.v[0].iov_base, iov.v[0].iov_len, flags | MSG_NOSIGNAL);
  msghdr msg = iov.header(const_cast<void*>(to), to_len);
  return ::sendmsg(fd, &msg, flags | MSG_NOSIGNAL);
}

} // namespace coop::detail
