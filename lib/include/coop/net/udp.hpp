// coop/net/udp.hpp — a UDP socket whose calls block only the calling fiber.
#pragma once

#include <coop/detail/io_loop.hpp>
#include <coop/error.hpp>
#include <coop/yield.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/udp.hpp>

#include <sys/socket.h>

#include <cstddef>
#include <iterator>

namespace coop::net {

using udp = boost::asio::ip::udp;

/// A bound UDP socket with blocking-style calls: datagrams to and from any
/// peer (`send_to`, `receive_from`), or, after `connect(peer)`, to and from
/// that peer only (`send`, `receive`). In a fiber the calls suspend only that
/// fiber; on a plain thread inside a `coop::blocking_scope` they block the
/// thread, and a `coop::timeout` on that thread still bounds them. Every
/// waiting call follows coop's rules (docs/runtime.md) and comes as a pair:
/// one throws `boost::system::system_error` (`coop::timeout_error`,
/// `coop::cancelled` when interrupted), one reports into an `error_code&`.
///
/// A datagram larger than the receive buffers is truncated: the buffers get
/// its first bytes, the rest is lost (the kernel discards it), and the call
/// reports `boost::asio::error::message_size` — the `error_code` form also
/// returns the number of bytes stored (the buffers' size) and fills in the
/// sender, so a caller that wants only a prefix can use it. A datagram
/// goes out whole or not at all (`message_size` when it is too big for UDP).
/// Sends wait only while the socket's send buffer is full (which loopback
/// never makes it). At most 64 buffers per datagram (`invalid_argument`
/// beyond). A connected socket may receive `connection_refused` when an
/// earlier datagram met a closed port (ICMP).
///
/// Thread-safety: belongs to the runtime thread (or blocking-scope thread)
/// that created it; one fiber at a time may receive and one may send. Owns
/// its socket; destruction closes it.
///
/// Example:
/// @code
///   coop::net::udp_socket s(coop::net::udp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
///   std::array<char, 1500> buf;
///   coop::net::udp::endpoint from;
///   std::size_t n = s.receive_from(boost::asio::buffer(buf), from);
///   s.send_to(boost::asio::buffer(buf.data(), n), from);
/// @endcode
class udp_socket {
public:
  /// Opens a socket and binds it to `local` (port 0: the kernel picks one;
  /// ask `local_endpoint()`). Throws `boost::system::system_error` (address
  /// in use...), or `usage_error` outside a runtime or blocking scope.
  explicit udp_socket(const udp::endpoint& local);
  udp_socket(udp_socket&&) noexcept = default;
  udp_socket& operator=(udp_socket&&) noexcept = default;

  /// Sends `buffers` as one datagram to `destination`; returns its size.
  template <class ConstBuffers>
  std::size_t send_to(const ConstBuffers& buffers, const udp::endpoint& destination, boost::system::error_code& ec) {
    return send_impl(buffers, &destination, "coop::net::udp_socket::send_to", ec);
  }
  template <class ConstBuffers> std::size_t send_to(const ConstBuffers& buffers, const udp::endpoint& destination) {
    boost::system::error_code ec;
    std::size_t n = send_to(buffers, destination, ec);
    detail::throw_call_error(ec, "coop::net::udp_socket", "send_to");
    return n;
  }

  /// Waits for one datagram, stores it in `buffers` and its origin in
  /// `sender`; returns its size (see truncation above).
  template <class MutableBuffers>
  std::size_t receive_from(const MutableBuffers& buffers, udp::endpoint& sender, boost::system::error_code& ec) {
    return receive_impl(buffers, &sender, "coop::net::udp_socket::receive_from", ec);
  }
  template <class MutableBuffers> std::size_t receive_from(const MutableBuffers& buffers, udp::endpoint& sender) {
    boost::system::error_code ec;
    std::size_t n = receive_from(buffers, sender, ec);
    detail::throw_call_error(ec, "coop::net::udp_socket", "receive_from");
    return n;
  }

  /// Sets the default peer: `send` goes there, and `receive` takes datagrams
  /// from it only. Never waits (UDP has no handshake), so it is never
  /// interrupted.
  void connect(const udp::endpoint& peer, boost::system::error_code& ec) { socket_.connect(peer, ec); }
  void connect(const udp::endpoint& peer) {
    boost::system::error_code ec;
    connect(peer, ec);
    detail::throw_call_error(ec, "coop::net::udp_socket", "connect");
  }

  /// Connected socket: sends `buffers` as one datagram to the peer.
  template <class ConstBuffers> std::size_t send(const ConstBuffers& buffers, boost::system::error_code& ec) {
    return send_impl(buffers, nullptr, "coop::net::udp_socket::send", ec);
  }
  template <class ConstBuffers> std::size_t send(const ConstBuffers& buffers) {
    boost::system::error_code ec;
    std::size_t n = send(buffers, ec);
    detail::throw_call_error(ec, "coop::net::udp_socket", "send");
    return n;
  }

  /// Connected socket: waits for one datagram from the peer.
  template <class MutableBuffers> std::size_t receive(const MutableBuffers& buffers, boost::system::error_code& ec) {
    return receive_impl(buffers, nullptr, "coop::net::udp_socket::receive", ec);
  }
  template <class MutableBuffers> std::size_t receive(const MutableBuffers& buffers) {
    boost::system::error_code ec;
    std::size_t n = receive(buffers, ec);
    detail::throw_call_error(ec, "coop::net::udp_socket", "receive");
    return n;
  }

  /// Closes the socket; a fiber blocked on it fails with `operation_aborted`.
  /// Throws `usage_error` when called from another thread than the owner's.
  void close(boost::system::error_code& ec) {
    detail::require_owner(socket_.get_executor(), "coop::net::udp_socket::close");
    socket_.close(ec);
  }
  void close() {
    boost::system::error_code ec;
    close(ec);
    detail::throw_call_error(ec, "coop::net::udp_socket", "close");
  }
  bool is_open() const noexcept { return socket_.is_open(); }

  udp::endpoint local_endpoint() const { return socket_.local_endpoint(); }
  udp::endpoint local_endpoint(boost::system::error_code& ec) const { return socket_.local_endpoint(ec); }
  /// The peer set by `connect`.
  udp::endpoint remote_endpoint() const { return socket_.remote_endpoint(); }
  udp::endpoint remote_endpoint(boost::system::error_code& ec) const { return socket_.remote_endpoint(ec); }

  /// The underlying Asio socket, for options (broadcast, multicast, buffer
  /// sizes...) and operations coop does not wrap.
  udp::socket& socket() noexcept { return socket_; }
  using executor_type = udp::socket::executor_type;
  executor_type get_executor() noexcept { return socket_.get_executor(); }

private:
  static constexpr std::size_t max_iov = 64; // as many as Asio passes to the kernel

  template <class Buffers> static bool too_many_buffers(const Buffers& buffers, boost::system::error_code& ec) {
    if (std::distance(boost::asio::buffer_sequence_begin(buffers), boost::asio::buffer_sequence_end(buffers)) <=
        static_cast<std::ptrdiff_t>(max_iov))
      return false;
    ec = boost::asio::error::invalid_argument; // a datagram cannot be split: never send or receive part of it
    return true;
  }

  /// A datagram longer than `capacity` (MSG_TRUNC reports its real size) is
  /// reported as truncated.
  static std::size_t check_truncation(std::size_t n, std::size_t capacity, boost::system::error_code& ec) noexcept {
    if (ec || n <= capacity) return n;
    ec = boost::asio::error::message_size;
    return capacity;
  }

  // The I/O loop (coop/detail/io_loop.hpp): `sendmsg` / `recvmsg`; when the
  // socket is not ready, wait until it is, and try again.
  template <class ConstBuffers>
  std::size_t send_impl(const ConstBuffers& buffers, const udp::endpoint* to, const char* what,
                        boost::system::error_code& ec) {
    const detail::io_call call = detail::begin_io(socket_.get_executor(), what, ec);
    if (ec || too_many_buffers(buffers, ec)) return 0;
    detail::iovecs_for<ConstBuffers, max_iov> iov(buffers);
    const detail::io_handle h = detail::handle_of(socket_);
    return detail::io_loop(
        call, h, detail::io_send, this,
        [&](int flags) {
          return to ? detail::send_once(h.fd, iov, flags, to->data(), to->size()) : detail::send_once(h.fd, iov, flags);
        },
        ec);
  }
  template <class MutableBuffers>
  std::size_t receive_impl(const MutableBuffers& buffers, udp::endpoint* from, const char* what,
                           boost::system::error_code& ec) {
    const detail::io_call call = detail::begin_io(socket_.get_executor(), what, ec);
    if (ec || too_many_buffers(buffers, ec)) return 0;
    detail::iovecs_for<MutableBuffers, max_iov> iov(buffers);
    const detail::io_handle h = detail::handle_of(socket_);
    const std::size_t n = detail::io_loop(
        call, h, detail::io_receive, this,
        [&](int flags) {
          if (!from) return detail::receive_once(h.fd, iov, flags | MSG_TRUNC);
          std::size_t len = from->capacity();
          const ssize_t r = detail::receive_once(h.fd, iov, flags | MSG_TRUNC, from->data(), &len);
          if (r >= 0) from->resize(len);
          return r;
        },
        ec);
    return check_truncation(n, iov.bytes, ec);
  }

  std::shared_ptr<void> keep_io_; ///< destroyed after socket_ (detail::keep_io_alive)
  udp::socket socket_;
};

} // namespace coop::net
