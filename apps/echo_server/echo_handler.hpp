// apps/echo_server/echo_handler.hpp — the echo connection handler, written once
// against coop's stream calls (read_some, write_all).
//
// echo_server runs this same function in a fiber (--mode fiber: every read and
// write yields the fiber) or on an OS thread of its own inside a
// coop::blocking_scope (--mode thread: every read and write blocks the thread
// in the kernel). Only where it runs differs; the source is this one. With
// --tls-cert/--tls-key (fiber mode) it runs over a coop::net::tls_stream
// instead of the tcp_stream: the same source again, only the stream differs.
#pragma once

#include <coop/coop.hpp>
#include <coop/net/tls.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <optional>

namespace echo {

/// Settings of one connection handler.
struct handler_options {
  /// A read or write that waits longer than this ends the connection; 0 means
  /// never. Enforced with `coop::timeout` in both modes (in a blocking_scope
  /// the stream then waits in poll() with the deadline).
  std::chrono::milliseconds idle_timeout{0};
};

/// Bytes read (and then written back) at a time, in two steps. A connection
/// starts with a small buffer; the first read that fills it moves the
/// connection to a large one for the rest of its life (`echo_bulk`). Both
/// live on the fiber's or thread's stack, so both modes pay the same way.
///
/// Why two: a parked fiber keeps resident exactly the stack pages it has
/// touched. With the large buffer in echo_connection's own frame, the calls
/// below it (read_some, the park, the switch) run 16 KiB under the fiber's
/// first frames, and every connection holds two pages: 8 KiB. With the small
/// one, an idle or chatty connection's whole stack stays in one 4 KiB page;
/// only connections that send in bulk pay for the second.
inline constexpr std::size_t first_buffer_size = 1024;
inline constexpr std::size_t echo_buffer_size = 16 * 1024;

/// Ends our sending side after the peer has ended its: a TCP half-close, or
/// TLS's close_notify (which answers the peer's, so it does not wait).
inline void end_sending(coop::net::tcp_stream& stream, boost::system::error_code& ec) {
  stream.shutdown_send(ec);
}
inline void end_sending(coop::net::tls_stream& stream, boost::system::error_code& ec) {
  stream.shutdown(ec);
}

/// Reads once into `buffer` and writes what came back. Returns the bytes
/// echoed; 0 when the connection ends here (`ec` then says why). Every read
/// and write waits at most `opts.idle_timeout`, when one is set.
template <class Stream>
std::size_t echo_once(Stream& stream, boost::asio::mutable_buffer buffer, const handler_options& opts,
                      boost::system::error_code& ec) {
  std::size_t n = 0;
  {
    std::optional<coop::timeout> idle;
    if (opts.idle_timeout.count() > 0) idle.emplace(opts.idle_timeout);
    n = stream.read_some(buffer, ec);
  }
  if (ec) return 0;
  std::optional<coop::timeout> idle;
  if (opts.idle_timeout.count() > 0) idle.emplace(opts.idle_timeout);
  stream.write_all(boost::asio::buffer(buffer.data(), n), ec);
  return ec ? 0 : n;
}

/// The rest of a connection that sends in bulk, with the large buffer. Never
/// inlined: its frame, and so the large buffer, is on the stack only once a
/// connection gets here (see first_buffer_size).
template <class Stream>
[[gnu::noinline]] void echo_bulk(Stream& stream, const handler_options& opts, boost::system::error_code& ec) {
  std::array<char, echo_buffer_size> buffer;
  while (echo_once(stream, boost::asio::buffer(buffer), opts, ec) > 0) {
  }
}

/// Echoes every byte `stream` receives until the peer closes its sending side,
/// then closes ours (everything received has been written back by then).
/// Returns why it stopped: `eof` for a clean end, otherwise the error (reset,
/// broken pipe, `coop::errc::timed_out` when idle, `coop::errc::cancelled`,
/// for TLS `ssl::error::stream_truncated` when the peer closed TCP without
/// close_notify). Never throws for I/O problems. The caller owns the stream
/// and closes it. `Stream` is `coop::net::tcp_stream` or `coop::net::tls_stream`.
template <class Stream> boost::system::error_code echo_connection(Stream& stream, const handler_options& opts = {}) {
  std::array<char, first_buffer_size> first;
  boost::system::error_code ec;
  for (;;) {
    std::size_t n = echo_once(stream, boost::asio::buffer(first), opts, ec);
    if (n == 0) break;
    if (n == first.size()) { // the peer sends more than the small buffer holds
      echo_bulk(stream, opts, ec);
      break;
    }
  }
  if (ec == boost::asio::error::eof) {
    std::optional<coop::timeout> idle;
    if (opts.idle_timeout.count() > 0) idle.emplace(opts.idle_timeout);
    boost::system::error_code ignored; // the peer may be gone already; nothing left to tell it
    end_sending(stream, ignored);
  }
  return ec;
}

} // namespace echo
