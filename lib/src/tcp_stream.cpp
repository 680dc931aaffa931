// basic_stream's compiled parts, for both of its protocols (tcp_stream and unix_stream).
#include <coop/net/basic_stream.hpp>

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
  // One wait per call, even for a line already buffered: a reader that
  // hands each line to other fibers (a chat room) lets them run in between.
  auto dyn = boost::asio::dynamic_buffer(buffer, max_size);
  const detail::wait_info info{"read", this, socket_.native_handle()};
  if (begin(call_name("coop::net::tcp_stream::read_until", "coop::net::unix_stream::read_until"), ec))
    return ec ? 0 : boost::asio::async_read_until(socket_, dyn, delim, detail::yield_for(info, ec));
  return ec ? 0 : boost::asio::read_until(*this, dyn, delim, ec);
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
