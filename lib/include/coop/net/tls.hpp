// coop/net/tls.hpp — TLS over a coop TCP stream (OpenSSL, on coop's I/O loop).
#pragma once

#include <coop/detail/io_loop.hpp>
#include <coop/detail/io_mode.hpp>
#include <coop/detail/stream_algorithms.hpp>
#include <coop/error.hpp>
#include <coop/net/tcp_stream.hpp>
#include <coop/yield.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream_base.hpp>

#include <openssl/ssl.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace coop::detail {
/// A stream's OpenSSL session and its output buffer (lib/src/net/tls.cpp).
class tls_session;
struct tls_session_deleter {
  void operator()(tls_session* s) const noexcept;
};

/// Counts the live TLS sessions of the process (one per `tls_stream`, moves
/// included). When a burst ends — the count falls to half of a peak of at
/// least 256 — it has glibc give the freed heap memory back to the system
/// (`malloc_trim`, a second later, on a thread of its own): the sessions'
/// buffers are freed in the middle of the heap, where glibc keeps them
/// resident otherwise. Thread-safe.
class tls_session_count {
public:
  tls_session_count() noexcept;
  tls_session_count(tls_session_count&& other) noexcept : counted_(std::exchange(other.counted_, false)) {}
  tls_session_count& operator=(tls_session_count&& other) noexcept;
  ~tls_session_count();

private:
  bool counted_ = true;
};
} // namespace coop::detail

namespace coop::net {

namespace ssl = boost::asio::ssl;

/// A TLS connection with blocking-style calls that suspend only the calling
/// fiber: `read_some`, `read_exact`, `read_until`, `write_some`, `write_all`,
/// `handshake`, `shutdown`. Each comes as a pair: one throws
/// `boost::system::system_error` (`coop::timeout_error`, `coop::cancelled`
/// when interrupted), one reports into an `error_code&` given last. Every
/// call, the handshake included, follows coop's interruption rules
/// (`coop::timeout`, `task::cancel()`, `coop::shield`; docs/runtime.md).
///
/// Each call runs coop's one I/O loop (`detail::drive_io`) over an OpenSSL
/// step: OpenSSL reads the socket itself (non-blocking, read-ahead) and
/// writes its records into the stream's own output buffer, which the loop
/// sends; when OpenSSL wants more input, or the kernel takes no more output,
/// the fiber parks on the socket's readiness.
///
/// Fibers only: a call on a plain thread (even inside a `coop::blocking_scope`)
/// throws `coop::usage_error`.
///
/// Ends of a connection:
/// - the peer's close_notify: a read fails with `boost::asio::error::eof`;
/// - the peer closed TCP without close_notify: a read fails with
///   `ssl::error::stream_truncated` (harmless when the application protocol
///   frames its own messages, as HTTP with Content-Length does);
/// - `shutdown()` sends our close_notify and waits for the peer's (at once if
///   it already came). A peer that just closes TCP makes it fail with
///   `ssl::error::stream_truncated`; bound the wait with a `coop::timeout`.
///
/// After an interrupted handshake, write or shutdown, do not rely on the
/// session: the bytes of an interrupted write may or may not reach the peer
/// (they are encrypted and queued, and go out with the stream's next call);
/// close the stream. An interrupted read loses nothing and may be retried.
///
/// It is also an Asio AsyncReadStream/AsyncWriteStream: composed operations
/// run over it with `coop::yield` (`boost::asio::async_read(s, buf,
/// coop::yield)`, Beast's `http::async_read(s, buffer, req, coop::yield)`).
/// `native_handle()` is the OpenSSL `SSL*`, `next_layer()` the TCP socket,
/// for what coop does not wrap.
///
/// Thread-safety: one fiber at a time may read and one may write (TLS is
/// full duplex: what a read makes OpenSSL send, such as the answer to a
/// peer's KeyUpdate, queues behind a parked writer's records and goes out in
/// order); the stream belongs to the runtime thread that created its TCP
/// socket. Owns the socket and the OpenSSL session; destruction closes the
/// socket without close_notify. While the connection idles it holds only the
/// OpenSSL session (`SSL_MODE_RELEASE_BUFFERS` frees the record buffers, and
/// the output buffer is freed once sent; see docs/tls.md). The
/// `ssl::context` it was made with must outlive it; a context may be shared
/// by streams of every runtime thread once it is configured.
///
/// Example:
/// @code
///   auto ctx = coop::net::tls_client_context();         // system CAs, verifies the peer
///   auto s = coop::net::tls_connect("example.com", 443, ctx);
///   s.write_all(boost::asio::buffer(std::string_view("HEAD / HTTP/1.0\r\n\r\n")));
///   std::string reply;
///   s.read_until(reply, "\r\n");
///   s.shutdown();
/// @endcode
class tls_stream : public coop::detail::stream_algorithms<tls_stream> {
public:
  using next_layer_type = tcp::socket;
  using executor_type = tcp::socket::executor_type;
  using native_handle_type = SSL*;

  /// Wraps a connected TCP stream (taking its socket) in a new TLS session of
  /// `ctx`; no handshake yet (`tls_connect` and `tls_accept` do it). Throws
  /// `system_error` when OpenSSL cannot make the session.
  tls_stream(tcp_stream tcp, ssl::context& ctx);
  tls_stream(tls_stream&&) noexcept = default;
  tls_stream& operator=(tls_stream&&) noexcept = default;
  ~tls_stream();

  /// What errors name.
  static constexpr const char* type_name() noexcept { return "coop::net::tls_stream"; }

  /// Performs the TLS handshake as client or server.
  void handshake(ssl::stream_base::handshake_type type, boost::system::error_code& ec);
  void handshake(ssl::stream_base::handshake_type type) {
    boost::system::error_code ec;
    handshake(type, ec);
    coop::detail::throw_call_error(ec, type_name(), "handshake");
  }

  // read_exact, read_until (a delimiter already in the caller's buffer
  // returns at once), write_all and the throwing forms of read_some and
  // write_some: detail::stream_algorithms, over the two calls below.
  using coop::detail::stream_algorithms<tls_stream>::read_some;
  using coop::detail::stream_algorithms<tls_stream>::write_some;

  /// Reads at least one byte into the first non-empty buffer of `buffers`
  /// (none: returns 0 at once); returns the count.
  template <class MutableBuffers> std::size_t read_some(const MutableBuffers& buffers, boost::system::error_code& ec) {
    const boost::asio::mutable_buffer b = first_buffer<boost::asio::mutable_buffer>(buffers);
    if (b.size() == 0) {
      ec = {};
      return 0;
    }
    return read(b.data(), b.size(), ec);
  }

  /// Writes some of `buffers` (up to 64 KiB, as TLS records); returns the
  /// count once their records are with the kernel.
  template <class ConstBuffers> std::size_t write_some(const ConstBuffers& buffers, boost::system::error_code& ec) {
    coop::detail::iovecs_for<ConstBuffers, 16> iov(buffers);
    if (iov.bytes == 0) {
      ec = {};
      return 0;
    }
    return write(iov.v, iov.count, ec);
  }

  /// Sends close_notify and waits for the peer's (returns at once if it has
  /// already arrived, i.e. a read reported `eof`). Fails with
  /// `ssl::error::stream_truncated` when the peer closes TCP instead of
  /// answering. The TCP socket stays open until `close()` or destruction.
  void shutdown(boost::system::error_code& ec);
  void shutdown() {
    boost::system::error_code ec;
    shutdown(ec);
    coop::detail::throw_call_error(ec, type_name(), "shutdown");
  }

  /// Asio's AsyncReadStream/AsyncWriteStream, for composed operations with
  /// `coop::yield` (any completion token works): the same OpenSSL steps as
  /// `read_some`/`write_some`, waiting with `async_wait` on the socket. Use
  /// them from the stream's runtime thread.
  template <class MutableBuffers, class Token> decltype(auto) async_read_some(const MutableBuffers& b, Token&& token) {
    const boost::asio::mutable_buffer first = first_buffer<boost::asio::mutable_buffer>(b);
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        async_op{this, first.data(), first.size(), false}, token, socket_);
  }
  template <class ConstBuffers, class Token> decltype(auto) async_write_some(const ConstBuffers& b, Token&& token) {
    const boost::asio::const_buffer first = first_buffer<boost::asio::const_buffer>(b);
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        async_op{this, const_cast<void*>(first.data()), (std::min)(first.size(), max_write), true}, token, socket_);
  }
  executor_type get_executor() noexcept { return socket_.get_executor(); }

  /// Closes the TCP socket without close_notify; a fiber blocked on the
  /// stream fails with `operation_aborted`.
  void close(boost::system::error_code& ec) { socket_.close(ec); }
  void close() {
    boost::system::error_code ec;
    close(ec);
    coop::detail::throw_call_error(ec, type_name(), "close");
  }
  bool is_open() const noexcept { return socket_.is_open(); }

  tcp::endpoint remote_endpoint() const { return socket_.remote_endpoint(); }
  tcp::endpoint remote_endpoint(boost::system::error_code& ec) const { return socket_.remote_endpoint(ec); }
  tcp::endpoint local_endpoint() const { return socket_.local_endpoint(); }
  tcp::endpoint local_endpoint(boost::system::error_code& ec) const { return socket_.local_endpoint(ec); }

  /// The TCP socket under the TLS session (options, raw access; reading or
  /// writing it directly corrupts the session).
  tcp::socket& next_layer() noexcept { return socket_; }
  /// The OpenSSL session (`SSL*`), e.g. for `SSL_get_servername` or
  /// settings before `handshake`.
  SSL* native_handle() const noexcept;

  /// The most one `write_some` encrypts (four full TLS records).
  static constexpr std::size_t max_write = 64 * 1024;

private:
  /// The first non-empty buffer of a sequence (an empty one if none).
  template <class Buffer, class Buffers> static Buffer first_buffer(const Buffers& buffers) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
      Buffer b(*it);
      if (b.size() != 0) return b;
    }
    return Buffer();
  }

  std::size_t read(void* data, std::size_t size, boost::system::error_code& ec);
  std::size_t write(const iovec* v, std::size_t count, boost::system::error_code& ec);

  /// One OpenSSL step of an asynchronous read or write (`size` bytes at
  /// `data`); what it needs next. `written` carries a write's progress.
  coop::detail::io_want async_step(bool is_write, void* data, std::size_t size, std::size_t& done, std::size_t& written,
                                   boost::system::error_code& ec);

  /// `async_read_some`/`async_write_some` as one composed operation: steps,
  /// waits for what a step needs with `async_wait`, and steps again. A
  /// result ready at the first step is delivered through the executor, never
  /// from inside the initiating call.
  struct async_op {
    tls_stream* self;
    void* data;
    std::size_t size;
    bool is_write;
    std::size_t written = 0; ///< a write's bytes already encrypted (then only its output is sent)
    bool waited = false;

    template <class Self> void operator()(Self& op, boost::system::error_code ec = {}) {
      std::size_t done = 0;
      if (!ec && size != 0) {
        switch (self->async_step(is_write, data, size, done, written, ec)) {
        case coop::detail::io_want::read:
          waited = true;
          return self->socket_.async_wait(tcp::socket::wait_read, std::move(op));
        case coop::detail::io_want::write:
          waited = true;
          return self->socket_.async_wait(tcp::socket::wait_write, std::move(op));
        case coop::detail::io_want::nothing:
          break;
        }
      }
      if (waited) return op.complete(ec, done);
      waited = true;
      boost::asio::post(self->socket_.get_executor(),
                        [op = std::move(op), ec, done]() mutable { op.complete(ec, done); });
    }
  };

  tcp::socket socket_;
  std::unique_ptr<coop::detail::tls_session, coop::detail::tls_session_deleter> session_;
  coop::detail::tls_session_count counted_;
};

/// Connects to `host:port` (`coop::net::connect`: resolves off-thread, tries
/// each address) and performs the client handshake. When `ctx` verifies
/// peers (`ssl::verify_peer`, as `tls_client_context()` does), the
/// certificate must match `host` (`ssl::host_name_verification`: DNS name or
/// IP address; this replaces a verify callback set on `ctx`). `host` is sent
/// as SNI unless it is an IP address. Throws `system_error` (connect
/// errors; handshake errors of `ssl::error` or OpenSSL's category, e.g.
/// certificate verify failed), `timeout_error`, `cancelled`; fibers only.
tls_stream tls_connect(std::string_view host, std::uint16_t port, ssl::context& ctx);
tls_stream tls_connect(std::string_view host, std::uint16_t port, ssl::context& ctx, boost::system::error_code& ec);
/// Connects to `endpoint` and performs the client handshake, using
/// `host_name` for SNI and certificate verification (as above).
tls_stream tls_connect(const tcp::endpoint& endpoint, std::string_view host_name, ssl::context& ctx);
tls_stream tls_connect(const tcp::endpoint& endpoint, std::string_view host_name, ssl::context& ctx,
                       boost::system::error_code& ec);

/// Performs the server handshake on an accepted connection (takes its
/// socket). It first waits for the client's first bytes (its ClientHello)
/// with nothing but the TCP socket: a client that connects and never sends
/// costs no TLS session and no OpenSSL buffers. With a context made by
/// `tls_server_context`, the context's `tls_server_options` then apply:
/// the whole call is bounded by `handshake_timeout` (it fails with
/// `coop::errc::timed_out`), and it waits for one of the context's
/// `max_handshakes` slots before the session is made. With any other
/// context, bound the call with a `coop::timeout`: a client that never
/// speaks TLS otherwise holds it forever. Fibers only.
tls_stream tls_accept(tcp_stream tcp, ssl::context& ctx);
tls_stream tls_accept(tcp_stream tcp, ssl::context& ctx, boost::system::error_code& ec);

/// A client context: TLS 1.2 or newer, verifies the server against the
/// system's trusted CAs (OpenSSL's default paths). Throws `system_error`.
ssl::context tls_client_context();
/// A client context that trusts only the CA certificates (PEM) in `ca_file`,
/// e.g. a self-signed server certificate. Throws `system_error` naming the file.
ssl::context tls_client_context(const std::string& ca_file);

/// What a server context allows the handshakes of `tls_accept`.
struct tls_server_options {
  /// The longest one `tls_accept` may take: waiting for the client's first
  /// bytes, for a handshake slot, and the handshake itself (0: no bound of
  /// its own; a `coop::timeout` around the call still applies).
  std::chrono::milliseconds handshake_timeout{10'000};
  /// Handshakes in progress at once, over every runtime thread using the
  /// context (0: no limit). Each holds a TLS session with its record
  /// buffers and handshake state (some tens of KB) and costs CPU; a
  /// connection whose first bytes arrive while all slots are taken waits,
  /// parked and within `handshake_timeout`, for one to end. A connection
  /// that has not sent anything takes no slot.
  std::size_t max_handshakes = 256;
};

/// A server context: TLS 1.2 or newer, the certificate chain (PEM, leaf
/// first) in `cert_chain_file` and its private key (PEM, unencrypted) in
/// `key_file`, and the handshake limits of `options` (kept with the
/// context; moving the context keeps them). Throws `system_error` naming
/// the file that cannot be used (missing, unreadable, not PEM, key not
/// matching the certificate).
ssl::context tls_server_context(const std::string& cert_chain_file, const std::string& key_file,
                                const tls_server_options& options = {});

} // namespace coop::net
