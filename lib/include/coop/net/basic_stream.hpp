// coop/net/basic_stream.hpp — a connected stream socket (TCP or Unix-domain) whose
// calls block only the calling fiber. `tcp_stream` (coop/net/tcp_stream.hpp) and
// `unix_stream` (coop/net/unix.hpp) name its two instantiations.
#pragma once

#include <coop/detail/io_mode.hpp>
#include <coop/error.hpp>
#include <coop/yield.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

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
template <class Protocol> class basic_stream {
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

  /// Reads at least one byte (unless `buffers` is empty); returns the count.
  template <class MutableBuffers> std::size_t read_some(const MutableBuffers& buffers, boost::system::error_code& ec) {
    if (detail::fiber_state* fs =
            begin(call_name("coop::net::tcp_stream::read_some", "coop::net::unix_stream::read_some"), ec)) {
      if (ec) return 0;
      if (read_first()) {
        std::size_t n = socket_.read_some(buffers, ec); // non-blocking
        if (read_first_done(*fs, ec)) return n;
      }
      const detail::wait_info info{"read", this, socket_.native_handle()};
      return socket_.async_read_some(buffers, detail::yield_for(info, ec));
    }
    if (ec) return 0;
    // Blocking mode: with a timeout, wait in poll() first; the read then
    // returns at once (one reader at a time).
    if (detail::has_blocking_deadline() && !detail::wait_ready(socket_.native_handle(), false, ec)) return 0;
    return socket_.read_some(buffers, ec);
  }
  template <class MutableBuffers> std::size_t read_some(const MutableBuffers& buffers) {
    boost::system::error_code ec;
    std::size_t n = read_some(buffers, ec);
    throw_on_error(ec, "read_some");
    return n;
  }

  /// Fills `buffers` completely; fails with `eof` if the peer closes first.
  /// (In both modes, Asio's algorithm over `read_some`: in a fiber, each
  /// step tries the kernel before it waits, as `read_some` does.)
  template <class MutableBuffers> std::size_t read_exact(const MutableBuffers& buffers, boost::system::error_code& ec) {
    begin(call_name("coop::net::tcp_stream::read_exact", "coop::net::unix_stream::read_exact"), ec);
    return ec ? 0 : boost::asio::read(*this, buffers, ec);
  }
  template <class MutableBuffers> std::size_t read_exact(const MutableBuffers& buffers) {
    boost::system::error_code ec;
    std::size_t n = read_exact(buffers, ec);
    throw_on_error(ec, "read_exact");
    return n;
  }

  /// Reads into `buffer` (appending) until it contains `delim`; returns the
  /// length up to and including the delimiter. Bytes after it stay in
  /// `buffer` for the next call. Fails with `not_found` once `buffer` would
  /// grow past `max_size`. When `buffer` already holds the delimiter (the
  /// next of several pipelined lines), it returns at once, without a system
  /// call or a yield; in a fiber that counts against the direct-I/O budget
  /// like a read that found data. (`coop::net::buffered_reader` parses lines
  /// without moving the rest of the buffer each time.)
  std::size_t read_until(std::string& buffer, std::string_view delim, std::size_t max_size,
                         boost::system::error_code& ec);
  std::size_t read_until(std::string& buffer, std::string_view delim, boost::system::error_code& ec) {
    return read_until(buffer, delim, unlimited, ec);
  }
  std::size_t read_until(std::string& buffer, std::string_view delim, std::size_t max_size = unlimited) {
    boost::system::error_code ec;
    std::size_t n = read_until(buffer, delim, max_size, ec);
    throw_on_error(ec, "read_until");
    return n;
  }

  /// Writes some of `buffers`; returns the count.
  template <class ConstBuffers> std::size_t write_some(const ConstBuffers& buffers, boost::system::error_code& ec) {
    if (begin(call_name("coop::net::tcp_stream::write_some", "coop::net::unix_stream::write_some"), ec)) {
      if (ec) return 0;
      std::size_t n = socket_.write_some(buffers, ec); // non-blocking attempt first
      if (ec != boost::asio::error::would_block) return n;
      const detail::wait_info info{"write", this, socket_.native_handle()};
      return socket_.async_write_some(buffers, detail::yield_for(info, ec));
    }
    if (ec) return 0;
    if (!detail::has_blocking_deadline()) return socket_.write_some(buffers, ec);
    iovec iov[max_iov];
    return detail::send_with_deadline(socket_.native_handle(), iov, detail::to_iovec(buffers, iov, max_iov), ec);
  }
  template <class ConstBuffers> std::size_t write_some(const ConstBuffers& buffers) {
    boost::system::error_code ec;
    std::size_t n = write_some(buffers, ec);
    throw_on_error(ec, "write_some");
    return n;
  }

  /// Writes all of `buffers`. In a fiber, it first writes directly (no
  /// scheduler round trip when the socket has room) and waits only for the rest.
  template <class ConstBuffers> std::size_t write_all(const ConstBuffers& buffers, boost::system::error_code& ec) {
    if (!begin(call_name("coop::net::tcp_stream::write_all", "coop::net::unix_stream::write_all"), ec))
      return ec ? 0 : boost::asio::write(*this, buffers, ec);
    if (ec) return 0;
    std::size_t total = boost::asio::buffer_size(buffers);
    std::size_t n = socket_.write_some(buffers, ec);
    if (n == total && !ec) return n;
    if (ec && ec != boost::asio::error::would_block) return n;
    return n + write_rest(rest_after(buffers, n), ec);
  }
  template <class ConstBuffers> std::size_t write_all(const ConstBuffers& buffers) {
    boost::system::error_code ec;
    std::size_t n = write_all(buffers, ec);
    throw_on_error(ec, "write_all");
    return n;
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
    throw_on_error(ec, "shutdown_send");
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
    throw_on_error(ec, "close");
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
  static constexpr std::size_t unlimited = (std::numeric_limits<std::size_t>::max)();
  static constexpr std::size_t max_iov = 16;

  /// The name a usage error gives the call.
  static constexpr const char* call_name(const char* for_tcp, const char* for_unix) noexcept {
    return detail::is_tcp<Protocol> ? for_tcp : for_unix;
  }

  /// Returns the calling fiber's state in fiber mode, null in blocking mode;
  /// sets `ec` when an interruption is due (the call must then fail at once).
  detail::fiber_state* begin(const char* what, boost::system::error_code& ec);

  /// Whether a fiber's read tries the kernel before waiting. Waiting through
  /// Asio costs a round trip through the scheduler even when data is there
  /// already; trying first costs a failed system call when it is not. So a
  /// read tries first while that keeps finding data; once it finds none, it
  /// waits directly for the next 1, 2, 4 ... 16 reads before trying again.
  /// A fiber that has read this way `detail::direct_io_budget` times since
  /// it last waited yields, so a peer that never pauses cannot keep the
  /// other fibers of the thread from running.
  bool read_first() noexcept {
    if (read_skip_ == 0) return true;
    --read_skip_;
    return false;
  }
  /// After a read that tried first: true when it is over (data, end of
  /// stream or an error), false when it must wait.
  bool read_first_done(detail::fiber_state& fs, const boost::system::error_code& ec) noexcept {
    if (ec != boost::asio::error::would_block) {
      read_backoff_ = 0;
      detail::count_direct_io(fs);
      return true;
    }
    read_backoff_ = read_backoff_ == 0 ? 1 : (read_backoff_ >= 8 ? 16 : read_backoff_ * 2);
    read_skip_ = read_backoff_;
    return false;
  }

  template <class ConstBuffers>
  static std::vector<boost::asio::const_buffer> rest_after(const ConstBuffers& buffers, std::size_t skip) {
    std::vector<boost::asio::const_buffer> rest;
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
      boost::asio::const_buffer b(*it);
      if (skip >= b.size()) {
        skip -= b.size();
        continue;
      }
      rest.push_back(b + skip);
      skip = 0;
    }
    return rest;
  }
  std::size_t write_rest(const std::vector<boost::asio::const_buffer>& rest, boost::system::error_code& ec);

  std::shared_ptr<void> keep_io_; ///< destroyed after socket_ (detail::keep_io_alive)
  socket_type socket_;
  std::uint8_t read_skip_ = 0;    ///< reads left that wait without trying first
  std::uint8_t read_backoff_ = 0; ///< the last such run's length
};

// Compiled once, in the library (lib/src/tcp_stream.cpp).
extern template class basic_stream<boost::asio::ip::tcp>;
extern template class basic_stream<boost::asio::local::stream_protocol>;

} // namespace coop::net
