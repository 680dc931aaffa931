// coop/net/buffered_reader.hpp — a read buffer over any coop stream (Go's bufio.Reader).
#pragma once

#include <coop/detail/io_mode.hpp>
#include <coop/error.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/read.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace coop::net {

/// Reads a stream through a buffer of its own, as Go's `bufio.Reader` does:
/// lines and delimited records come back as views into the buffer, so
/// parsing pipelined requests costs one system call per bufferful instead of
/// one per request, and nothing is copied or moved per line.
///
/// `Stream` is anything with `read_some(buffers, error_code&)`:
/// `tcp_stream`, `unix_stream`, `tls_stream`. The reader keeps a reference:
/// the stream must outlive it. Write to the stream itself; once a reader is
/// in use, read only through it (it may hold bytes the stream has delivered).
///
/// Every read comes as a pair (throws `boost::system::system_error`,
/// `coop::timeout_error`, `coop::cancelled`; or reports into an
/// `error_code&` given last) and follows coop's interruption rules: it fails
/// at entry when an interruption is due, and a `coop::timeout` scope bounds
/// the stream reads it waits in. Bytes already received are never lost: after
/// any error (a timeout, end of stream in the middle of a line, a line too
/// long) they stay buffered, and the next call starts from them.
///
/// A call served from the buffer makes no system call and does not yield;
/// it counts against the fiber's direct-I/O budget like a read that found
/// data, so a peer that is always ahead still lets the thread's other
/// fibers run (once every `detail::direct_io_budget` calls).
///
/// Memory: the buffer starts at 4 KiB (or `max_line`, if smaller) when first
/// needed and grows, by doubling, up to `max_line` bytes and no further: a
/// delimited read longer than that fails with `boost::asio::error::not_found`
/// instead of buffering a peer's endless line.
///
/// Views returned by `read_line`, `read_until` and `peek` point into the
/// buffer and stay valid until the next call on the reader.
///
/// Thread-safety: one fiber (or plain thread) at a time reads through it,
/// on the stream's own thread. Movable; moving it keeps the reference to
/// the same stream.
///
/// Example:
/// @code
///   coop::net::buffered_reader in(stream);            // stream: a tcp_stream
///   for (;;) {
///     std::string_view line = in.read_line();           // "PING", without "\r\n"
///     stream.write_all(boost::asio::buffer("+PONG\r\n", 7));
///   }
/// @endcode
template <class Stream> class buffered_reader {
public:
  /// The longest line (delimiter included) a reader accepts unless told otherwise.
  static constexpr std::size_t default_max_line = 64 * 1024;
  /// The buffer's size when first allocated (capped at `max_line`).
  static constexpr std::size_t initial_capacity = 4096;

  /// Reads `stream` through a buffer of at most `max_line` bytes (at least 1).
  /// Allocates nothing until the first read.
  explicit buffered_reader(Stream& stream, std::size_t max_line = default_max_line) noexcept
      : stream_(&stream), max_line_((std::max)(max_line, std::size_t{1})) {}
  buffered_reader(buffered_reader&&) noexcept = default;
  buffered_reader& operator=(buffered_reader&&) noexcept = default;

  /// The next line, without its end: the bytes up to "\n", less the "\n" and
  /// a "\r" just before it (Go's `ReadLine`: "\r\n" and "\n" both end a line).
  /// Fails with `not_found` when no "\n" comes within `max_line()` bytes,
  /// and with `eof` when the stream ends first (a last line without "\n"
  /// stays buffered: `buffered()` bytes, e.g. for `read_some`).
  std::string_view read_line(boost::system::error_code& ec) {
    std::string_view line = read_until("\n", ec);
    if (ec) return {};
    line.remove_suffix(1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  }
  std::string_view read_line() {
    boost::system::error_code ec;
    std::string_view line = read_line(ec);
    throw_on_error(ec, "coop::net::buffered_reader::read_line");
    return line;
  }

  /// The bytes up to and including the next `delim` (Go's `ReadSlice`).
  /// Fails with `not_found` when the delimiter does not end within
  /// `max_line()` bytes, with `eof` when the stream ends first.
  std::string_view read_until(std::string_view delim, boost::system::error_code& ec) {
    detail::fiber_state* fs = detail::begin_buffered_read(ec);
    if (ec) return {};
    std::size_t from = 0; // where the delimiter may start, at the earliest
    for (bool has_read = false;; has_read = true) {
      const std::string_view data = unread();
      if (std::size_t at = data.find(delim, from); at != std::string_view::npos) {
        if (!has_read) detail::count_buffered_read(fs);
        advance(at + delim.size());
        return data.substr(0, at + delim.size());
      }
      if (data.size() >= max_line_) {
        ec = boost::asio::error::not_found;
        return {};
      }
      from = data.size() >= delim.size() ? data.size() - delim.size() + 1 : 0;
      if (!fill(data.size() + 1, ec)) return {};
    }
  }
  std::string_view read_until(std::string_view delim) {
    boost::system::error_code ec;
    std::string_view record = read_until(delim, ec);
    throw_on_error(ec, "coop::net::buffered_reader::read_until");
    return record;
  }

  /// The next `n` bytes, left in the buffer (the next read returns them
  /// again; `consume(n)` drops them). Waits until `n` bytes are buffered.
  /// Fails with `invalid_argument` when `n > max_line()` (they can never
  /// fit), with `eof` when the stream ends first.
  std::string_view peek(std::size_t n, boost::system::error_code& ec) {
    detail::fiber_state* fs = detail::begin_buffered_read(ec);
    if (ec) return {};
    if (n > max_line_) {
      ec = boost::asio::error::invalid_argument;
      return {};
    }
    bool has_read = false;
    for (; buffered() < n; has_read = true)
      if (!fill(n, ec)) return {};
    if (!has_read) detail::count_buffered_read(fs);
    return unread().substr(0, n);
  }
  std::string_view peek(std::size_t n) {
    boost::system::error_code ec;
    std::string_view bytes = peek(n, ec);
    throw_on_error(ec, "coop::net::buffered_reader::peek");
    return bytes;
  }

  /// Reads at least one byte into `buffers` (unless they are empty): from
  /// the buffer while it holds any, else with one read of the stream (straight
  /// into `buffers` when they are at least as large as the buffer).
  template <class MutableBuffers> std::size_t read_some(const MutableBuffers& buffers, boost::system::error_code& ec) {
    const std::size_t want = boost::asio::buffer_size(buffers);
    if (buffered() == 0 && want >= (std::max)(capacity_, initial_capacity)) return stream_->read_some(buffers, ec);
    detail::fiber_state* fs = detail::begin_buffered_read(ec);
    if (ec || want == 0) return 0;
    if (buffered() == 0) {
      if (!fill(1, ec)) return 0;
    } else {
      detail::count_buffered_read(fs);
    }
    const std::size_t n = boost::asio::buffer_copy(buffers, boost::asio::buffer(buf_.get() + begin_, buffered()));
    advance(n);
    return n;
  }
  template <class MutableBuffers> std::size_t read_some(const MutableBuffers& buffers) {
    boost::system::error_code ec;
    std::size_t n = read_some(buffers, ec);
    throw_on_error(ec, "coop::net::buffered_reader::read_some");
    return n;
  }

  /// Fills `buffers` completely (buffered bytes first); fails with `eof` if
  /// the stream ends first, having copied the bytes it returns the count of.
  template <class MutableBuffers> std::size_t read_exact(const MutableBuffers& buffers, boost::system::error_code& ec) {
    return boost::asio::read(*this, buffers, ec);
  }
  template <class MutableBuffers> std::size_t read_exact(const MutableBuffers& buffers) {
    boost::system::error_code ec;
    std::size_t n = read_exact(buffers, ec);
    throw_on_error(ec, "coop::net::buffered_reader::read_exact");
    return n;
  }

  /// Bytes received and not yet read.
  std::size_t buffered() const noexcept { return end_ - begin_; }
  /// Drops up to `n` buffered bytes (never reads); returns how many it dropped.
  std::size_t consume(std::size_t n) noexcept {
    n = (std::min)(n, buffered());
    advance(n);
    return n;
  }
  /// The longest line (delimiter included) and the largest `peek`.
  std::size_t max_line() const noexcept { return max_line_; }
  /// The stream it reads (write to it directly).
  Stream& stream() noexcept { return *stream_; }

private:
  std::string_view unread() const noexcept { return {buf_.get() + begin_, buffered()}; }

  void advance(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0; // empty: the next read fills from the start
  }

  /// Reads the stream once, after making room for `need` unread bytes in all
  /// (`buffered() < need <= max_line_`): moves what is unread to the front,
  /// grows the buffer if it is smaller than `need`. False with `ec` set when
  /// the read fails.
  bool fill(std::size_t need, boost::system::error_code& ec) {
    if (begin_ > 0) {
      std::memmove(buf_.get(), buf_.get() + begin_, buffered());
      end_ -= begin_;
      begin_ = 0;
    }
    if (capacity_ < need) {
      const std::size_t doubled = capacity_ == 0 ? initial_capacity : capacity_ * 2;
      const std::size_t capacity = (std::min)((std::max)(doubled, need), max_line_);
      auto bigger = std::make_unique_for_overwrite<char[]>(capacity);
      if (end_ > 0) std::memcpy(bigger.get(), buf_.get(), end_);
      buf_ = std::move(bigger);
      capacity_ = capacity;
    }
    end_ += stream_->read_some(boost::asio::buffer(buf_.get() + end_, capacity_ - end_), ec);
    return !ec;
  }

  Stream* stream_;
  std::size_t max_line_;
  std::unique_ptr<char[]> buf_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0; ///< first unread byte
  std::size_t end_ = 0;   ///< one past the last received byte
};

} // namespace coop::net
