// coop/net/basic_stream.hpp — a connected stream socket (TCP or Unix-domain) whose
// calls block only the calling fiber. `tcp_stream` (coop/net/tcp_stream.hpp) and
// `unix_stream` (coop/net/unix.hpp) name its two instantiations.
#pragma once

#include <coop/detail/io_loop.hpp>
#include <coop/detail/stream_algorithms.hpp>
#include <coop/error.hpp>
#include <coop/yield.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <cstddef>
#include <memory>
#include <type_traits>

namespace coop::detail {
template <class Protocol> inline constexpr bool is_tcp = std::is_same_v<Protocol, boost::asio::ip::tcp>;
template <class Protocol>
inline constexpr bool is_local_stream = std::is_same_v<Protocol, boost::asio::local::stream_protocol>;
} // namespace coop::detail

namespace coop::net {

using tcp = boost::asio::ip::tcp;

/// A connected stream socket with blocking-style calls: `tcp_stream`
/// (`basic_stream<boost::asio::ip::tcp>`) or `unix_stream`
/// (`basic_stream<boost::asio::local::stream_protocol>`); the two behave the
/// same, except that only TCP has `set_no_delay`. In a fiber they suspend
/// only that fiber while the socket is not ready; on a plain thread inside a
/// `coop::blocking_scope` they block the thread (a `coop::timeout` on that
/// thread still bounds them). Every call comes as a pair:
/// one throws `boost::system::system_error` (`coop::timeout_error`,
/// `coop::cancelled` when interrupted), one reports into an `error_code&`.
/// End of stream is `boost::asio::error::eof`.
///
/// It also models Asio's SyncReadStream/SyncWriteStream, so Boost.Beast's
/// synchronous algorithms run over it and yield the fiber.
///
/// Thread-safety: one fiber at a time may read and one may write (the usual
/// full-duplex rule); the stream belongs to the runtime thread that created
/// it. Owns its socket; destruction closes it.
///
/// Example:
/// @code
///   coop::net::tcp_stream s = coop::net::connect("127.0.0.1", 7000);
///   s.write_all(boost::asio::buffer("ping\n", 5));
///   std::string line;
///   std::size_t n = s.read_until(line, "\n");
/// @endcode
template <class Protocol> class basic_stream : public detail::stream_algorithms<basic_stream<Protocol>> {
  static_assert(detail::is_tcp<Protocol> || detail::is_local_stream<Protocol>,
                "coop::net::basic_stream: Protocol is boost::asio::ip::tcp or boost::asio::local::stream_protocol");

public:
  using protocol_type = Protocol;
  using endpoint_type = typename Protocol::endpoint;
  using socket_type = typename Protocol::socket;

  /// Takes ownership of a connected socket. A socket of a runtime thread is
  /// switched to non-blocking mode once, here (fibers never block the thread).
  explicit basic_stream(socket_type socket) noexcept;
  basic_stream(basic_stream&&) noexcept = default;
  basic_stream& operator=(basic_stream&&) noexcept = default;

  /// "coop::net::tcp_stream" or "coop::net::unix_stream": what errors name.
  static constexpr const char* type_name() noexcept {
    return detail::is_tcp<Protocol> ? "coop::net::tcp_stream" : "coop::net::unix_stream";
  }

  // read_exact, read_until, write_all and the throwing forms of read_some
  // and write_some: detail::stream_algorithms, over the two calls below.
  using detail::stream_algorithms<basic_stream>::read_some;
  using detail::stream_algorithms<basic_stream>::write_some;

  /// Reads at least one byte (unless `buffers` is empty); returns the count.
  /// The I/O loop (coop/detail/io_loop.hpp): `recv`; when nothing is there,
  /// wait until the socket is readable, and `recv` again.
  template <class MutableBuffers> std::size_t read_some(const MutableBuffers& buffers, boost::system::error_code& ec) {
    const detail::io_call call = detail::begin_io(
        socket_.get_executor(), call_name("coop::net::tcp_stream::read_some", "coop::net::unix_stream::read_some"), ec);
    detail::iovecs_for<MutableBuffers, max_iov> iov(buffers);
    if (ec || iov.bytes == 0) return 0;
    const detail::io_handle h = detail::handle_of(socket_);
    std::size_t n = detail::io_loop(
        call, h, detail::io_read, this, [&](int flags) { return detail::receive_once(h.fd, iov, flags); }, ec);
    if (n == 0 && !ec) ec = boost::asio::error::eof;
    return n;
  }

  /// Writes some of `buffers`; returns the count. The I/O loop: `send`; when
  /// the socket's buffer is full, wait until it is writable, and `send` again.
  template <class ConstBuffers> std::size_t write_some(const ConstBuffers& buffers, boost::system::error_code& ec) {
    const detail::io_call call =
        detail::begin_io(socket_.get_executor(),
                         call_name("coop::net::tcp_stream::write_some", "coop::net::unix_stream::write_some"), ec);
    detail::iovecs_for<ConstBuffers, max_iov> iov(buffers);
    if (ec || iov.bytes == 0) return 0;
    const detail::io_handle h = detail::handle_of(socket_);
    return detail::io_loop(
        call, h, detail::io_write, this, [&](int flags) { return detail::send_once(h.fd, iov, flags); }, ec);
  }

  /// Asio's AsyncReadStream/AsyncWriteStream, so composed operations take the
  /// stream itself: `boost::asio::async_read(stream, buf, coop::yield)` or
  /// Beast's `http::async_read(stream, buffer, req, coop::yield)` runs the
  /// whole operation as one wait, and an interruption surfaces as
  /// `coop::timeout_error` / `coop::cancelled` from the token.
  template <class MutableBuffers, class Token> decltype(auto) async_read_some(const MutableBuffers& b, Token&& token) {
    return socket_.async_read_some(b, std::forward<Token>(token));
  }
  template <class ConstBuffers, class Token> decltype(auto) async_write_some(const ConstBuffers& b, Token&& token) {
    return socket_.async_write_some(b, std::forward<Token>(token));
  }

  /// Half-closes: the peer reads end of stream; this side may still read.
  void shutdown_send(boost::system::error_code& ec) {
    detail::require_owner(socket_.get_executor(),
                          call_name("coop::net::tcp_stream::shutdown_send", "coop::net::unix_stream::shutdown_send"));
    socket_.shutdown(socket_type::shutdown_send, ec);
  }
  void shutdown_send() {
    boost::system::error_code ec;
    shutdown_send(ec);
    detail::throw_call_error(ec, type_name(), "shutdown_send");
  }

  /// Closes the socket; a fiber blocked on it fails with `operation_aborted`.
  /// Throws `usage_error` when called from another thread than the owner's
  /// (another fiber's thread would race with the reactor).
  void close(boost::system::error_code& ec) {
    detail::require_owner(socket_.get_executor(),
                          call_name("coop::net::tcp_stream::close", "coop::net::unix_stream::close"));
    socket_.close(ec);
  }
  void close() {
    boost::system::error_code ec;
    close(ec);
    detail::throw_call_error(ec, type_name(), "close");
  }
  bool is_open() const noexcept { return socket_.is_open(); }

  endpoint_type remote_endpoint() const { return socket_.remote_endpoint(); }
  endpoint_type remote_endpoint(boost::system::error_code& ec) const { return socket_.remote_endpoint(ec); }
  endpoint_type local_endpoint() const { return socket_.local_endpoint(); }
  endpoint_type local_endpoint(boost::system::error_code& ec) const { return socket_.local_endpoint(ec); }

  /// TCP only: disables (true) or enables Nagle's algorithm. coop's accept
  /// and connect turn it off.
  void set_no_delay(bool on = true) requires detail::is_tcp<Protocol> {
    socket_.set_option(boost::asio::ip::tcp::no_delay(on));
  }

  /// The underlying Asio socket, for options and operations coop does not wrap.
  socket_type& socket() noexcept { return socket_; }
  using executor_type = typename socket_type::executor_type;
  executor_type get_executor() noexcept { return socket_.get_executor(); }

private:
  static constexpr std::size_t max_iov = 16;

  /// The name a usage error gives the call.
  static constexpr const char* call_name(const char* for_tcp, const char* for_unix) noexcept {
    return detail::is_tcp<Protocol> ? for_tcp : for_unix;
  }

  std::shared_ptr<void> keep_io_; ///< destroyed after socket_ (detail::keep_io_alive)
  socket_type socket_;
};

// Compiled once, in the library (lib/src/net/tcp_stream.cpp).
extern template class basic_stream<boost::asio::ip::tcp>;
extern template class basic_stream<boost::asio::local::stream_protocol>;

} // namespace coop::net
