// coop/detail/stream_algorithms.hpp — read_exact, read_until and write_all,
// written once over a stream's read_some and write_some.
#pragma once

#include <coop/detail/io_mode.hpp>
#include <coop/error.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/error_code.hpp>

#include <algorithm>
#include <cstddef>
#include <limits>
#include <string>
#include <string_view>

namespace coop::detail {

/// The algorithms every coop stream offers, over the two primitives of
/// `Stream` (CRTP): `read_some(buffers, ec)` and `write_some(buffers, ec)`,
/// and `Stream::type_name()`, the name its errors carry. Each comes as a
/// pair: one reports into an `error_code&`, one throws
/// `boost::system::system_error` (`coop::timeout_error`, `coop::cancelled`
/// when interrupted).
template <class Stream> class stream_algorithms {
public:
  static constexpr std::size_t unlimited = (std::numeric_limits<std::size_t>::max)();

  /// Fills `buffers` completely; fails with `eof` if the peer closes first.
  template <class MutableBuffers> std::size_t read_exact(const MutableBuffers& buffers, boost::system::error_code& ec) {
    return boost::asio::read(self(), buffers, ec);
  }
  template <class MutableBuffers> std::size_t read_exact(const MutableBuffers& buffers) {
    boost::system::error_code ec;
    std::size_t n = read_exact(buffers, ec);
    throw_call_error(ec, Stream::type_name(), "read_exact");
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
                         boost::system::error_code& ec) {
    fiber_state* fs = begin_buffered_read(ec);
    if (ec) return 0;
    std::size_t from = 0; // where the delimiter may start, at the earliest
    for (bool has_read = false;; has_read = true) {
      if (std::size_t at = std::string_view(buffer).find(delim, from); at != std::string_view::npos) {
        if (!has_read) count_buffered_read(fs);
        return at + delim.size();
      }
      const std::size_t size = buffer.size();
      if (size >= max_size) {
        ec = boost::asio::error::not_found;
        return 0;
      }
      from = size >= delim.size() ? size - delim.size() + 1 : 0;
      // As Asio's read_until: the string's spare capacity, 512 bytes at
      // least, 64 KiB at most, never past max_size.
      const std::size_t room = (std::min)((std::max)(buffer.capacity() - size, std::size_t{512}),
                                          (std::min)(std::size_t{65536}, max_size - size));
      buffer.resize(size + room);
      std::size_t n = self().read_some(boost::asio::buffer(buffer.data() + size, room), ec);
      buffer.resize(size + n);
      if (ec) return 0;
    }
  }
  std::size_t read_until(std::string& buffer, std::string_view delim, boost::system::error_code& ec) {
    return read_until(buffer, delim, unlimited, ec);
  }
  std::size_t read_until(std::string& buffer, std::string_view delim, std::size_t max_size = unlimited) {
    boost::system::error_code ec;
    std::size_t n = read_until(buffer, delim, max_size, ec);
    throw_call_error(ec, Stream::type_name(), "read_until");
    return n;
  }

  /// Writes all of `buffers`.
  template <class ConstBuffers> std::size_t write_all(const ConstBuffers& buffers, boost::system::error_code& ec) {
    return boost::asio::write(self(), buffers, ec);
  }
  template <class ConstBuffers> std::size_t write_all(const ConstBuffers& buffers) {
    boost::system::error_code ec;
    std::size_t n = write_all(buffers, ec);
    throw_call_error(ec, Stream::type_name(), "write_all");
    return n;
  }

  /// The throwing forms of the primitives.
  template <class MutableBuffers> std::size_t read_some(const MutableBuffers& buffers) {
    boost::system::error_code ec;
    std::size_t n = self().read_some(buffers, ec);
    throw_call_error(ec, Stream::type_name(), "read_some");
    return n;
  }
  template <class ConstBuffers> std::size_t write_some(const ConstBuffers& buffers) {
    boost::system::error_code ec;
    std::size_t n = self().write_some(buffers, ec);
    throw_call_error(ec, Stream::type_name(), "write_some");
    return n;
  }

private:
  Stream& self() noexcept { return static_cast<Stream&>(*this); }
};

} // namespace coop::detail
