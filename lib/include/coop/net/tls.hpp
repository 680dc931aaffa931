// coop/net/tls.hpp — TLS over a coop TCP stream (OpenSSL through Boost.Asio's ssl::stream).
#pragma once

#include <coop/detail/io_mode.hpp>
#include <coop/detail/stream_algorithms.hpp>
#include <coop/error.hpp>
#include <coop/net/tcp_stream.hpp>
#include <coop/yield.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace coop::detail {
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
/// After an interrupted handshake, write or shutdown, the TLS session is in
/// an unknown state (part of a record may have been sent): only close the
/// stream. An interrupted read loses nothing and may be retried.
///
/// It is also an Asio AsyncReadStream/AsyncWriteStream: composed operations
/// run over it with `coop::yield` (`boost::asio::async_read(s, buf,
/// coop::yield)`, Beast's `http::async_read(s, buffer, req, coop::yield)`).
/// `ssl()` and `next_layer()` give the Asio objects for what coop does not wrap.
///
/// Thread-safety: one fiber at a time may read and one may write (TLS is
/// full duplex in Asio's ssl::stream); the stream belongs to the runtime
/// thread that created its TCP socket. Owns the socket and the OpenSSL
/// session; destruction closes the socket without close_notify. OpenSSL's
/// record buffers are released while the connection idles
/// (`SSL_MODE_RELEASE_BUFFERS`); what stays is Asio's per-stream buffers and
/// BIO pair (about 70 KB, see docs/tls.md). The
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
  using ssl_stream_type = ssl::stream<tcp::socket>;
  using next_layer_type = tcp::socket;
  using executor_type = tcp::socket::executor_type;

  /// Wraps a connected TCP stream (taking its socket) in a new TLS session of
  /// `ctx`; no handshake yet (`tls_connect` and `tls_accept` do it).
  tls_stream(tcp_stream tcp, ssl::context& ctx);
  tls_stream(tls_stream&&) = default;
  tls_stream& operator=(tls_stream&&) = default;

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

  /// Reads at least one byte (unless `buffers` is empty); returns the count.
  /// (Asio's TLS engine, as one operation through `coop::yield`: the engine
  /// keeps a concurrent reader and writer from sharing its record buffers.)
  template <class MutableBuffers> std::size_t read_some(const MutableBuffers& buffers, boost::system::error_code& ec) {
    const coop::detail::wait_info info{"tls read", this, fd()};
    begin("coop::net::tls_stream::read_some");
    return ssl_.async_read_some(buffers, coop::detail::yield_for(info, ec));
  }

  /// Writes some of `buffers` (at most one TLS record); returns the count.
  template <class ConstBuffers> std::size_t write_some(const ConstBuffers& buffers, boost::system::error_code& ec) {
    const coop::detail::wait_info info{"tls write", this, fd()};
    begin("coop::net::tls_stream::write_some");
    return ssl_.async_write_some(buffers, coop::detail::yield_for(info, ec));
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

  /// Asio's AsyncReadStream/AsyncWriteStream (forwarded to the ssl::stream),
  /// for composed operations with `coop::yield`.
  template <class MutableBuffers, class Token> decltype(auto) async_read_some(const MutableBuffers& b, Token&& token) {
    return ssl_.async_read_some(b, std::forward<Token>(token));
  }
  template <class ConstBuffers, class Token> decltype(auto) async_write_some(const ConstBuffers& b, Token&& token) {
    return ssl_.async_write_some(b, std::forward<Token>(token));
  }
  executor_type get_executor() noexcept { return ssl_.get_executor(); }

  /// Closes the TCP socket without close_notify; a fiber blocked on the
  /// stream fails with `operation_aborted`.
  void close(boost::system::error_code& ec) { next_layer().close(ec); }
  void close() {
    boost::system::error_code ec;
    close(ec);
    coop::detail::throw_call_error(ec, type_name(), "close");
  }
  bool is_open() const noexcept { return ssl_.next_layer().is_open(); }

  tcp::endpoint remote_endpoint() const { return ssl_.next_layer().remote_endpoint(); }
  tcp::endpoint remote_endpoint(boost::system::error_code& ec) const { return ssl_.next_layer().remote_endpoint(ec); }
  tcp::endpoint local_endpoint() const { return ssl_.next_layer().local_endpoint(); }
  tcp::endpoint local_endpoint(boost::system::error_code& ec) const { return ssl_.next_layer().local_endpoint(ec); }

  /// The TCP socket under the TLS session (options, raw access).
  tcp::socket& next_layer() noexcept { return ssl_.next_layer(); }
  /// The Asio TLS stream; `ssl().native_handle()` is the OpenSSL `SSL*`.
  ssl_stream_type& ssl() noexcept { return ssl_; }

private:
  /// Throws `usage_error` unless called from a fiber of the stream's own
  /// runtime thread. (The entry check is the coop::yield token's.)
  void begin(const char* what);
  int fd() noexcept { return next_layer().native_handle(); }

  ssl_stream_type ssl_;
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
  /// context (0: no limit). Each holds a TLS session with its buffers (about
  /// 90 KB) and costs CPU; a connection whose first bytes arrive while all
  /// slots are taken waits, parked and within `handshake_timeout`, for one
  /// to end. A connection that has not sent anything takes no slot.
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
