// basic_stream's compiled parts, for both of its protocols (tcp_stream and unix_stream).
#include <coop/net/basic_stream.hpp>

#include <algorithm>

namespace coop::net {

template <class Protocol>
basic_stream<Protocol>::basic_stream(socket_type socket) noexcept
    : keep_io_(detail::keep_io_alive(socket.get_executor())), socket_(std::move(socket)) {
  if (socket_.is_open() && !detail::is_blocking_io(socket_.get_executor())) {
    // Lets write_some try the kernel first and report would_block instead of
    // blocking the thread; Asio's async operations are unaffected.
    boost::system::error_code ignored;
    socket_.non_blocking(true, ignored);
  }
}

template <class Protocol>
detail::fiber_state* basic_stream<Protocol>::begin(const char* what, boost::system::error_code& ec) {
  return detail::begin_call(socket_.get_executor(), what, ec);
}

template <class Protocol>
std::size_t basic_stream<Protocol>::read_until(std::string& buffer, std::string_view delim, std::size_t max_size,
                                               boost::system::error_code& ec) {
  // A delimiter already in `buffer` (a pipelined request) returns at once,
  // without a system call or a trip through the scheduler; it counts against
  // the fiber's direct-I/O budget like a read that found data. Otherwise
  // read_some appends (trying the kernel first, as it always does) until the
  // delimiter arrives.
  detail::fiber_state* fs =
      begin(call_name("coop::net::tcp_stream::read_until", "coop::net::unix_stream::read_until"), ec);
  if (ec) return 0;
  std::size_t from = 0; // where the delimiter may start, at the earliest
  for (bool has_read = false;; has_read = true) {
    if (std::size_t at = std::string_view(buffer).find(delim, from); at != std::string_view::npos) {
      if (fs && !has_read) detail::count_direct_io(*fs);
      return at + delim.size();
    }
    const std::size_t size = buffer.size();
    if (size >= max_size) {
      ec = boost::asio::error::not_found;
      return 0;
    }
    from = size >= delim.size() ? size - delim.size() + 1 : 0;
    // As Asio's read_until: the string's spare capacity, 512 bytes at least,
    // 64 KiB at most, never past max_size.
    const std::size_t room = (std::min)((std::max)(buffer.capacity() - size, std::size_t{512}),
                                        (std::min)(std::size_t{65536}, max_size - size));
    buffer.resize(size + room);
    std::size_t n = read_some(boost::asio::buffer(buffer.data() + size, room), ec);
    buffer.resize(size + n);
    if (ec) return 0;
  }
}

template <class Protocol>
std::size_t basic_stream<Protocol>::write_rest(const std::vector<boost::asio::const_buffer>& rest,
                                               boost::system::error_code& ec) {
  const detail::wait_info info{"write", this, socket_.native_handle()};
  return boost::asio::async_write(socket_, rest, detail::yield_for(info, ec));
}

template class basic_stream<boost::asio::ip::tcp>;
template class basic_stream<boost::asio::local::stream_protocol>;

} // namespace coop::net
