// basic_stream's compiled parts, for both of its protocols (tcp_stream and unix_stream).
#include <coop/net/basic_stream.hpp>

namespace coop::net {

template <class Protocol>
basic_stream<Protocol>::basic_stream(socket_type socket) noexcept
    : keep_io_(detail::keep_io_alive(socket.get_executor())), socket_(std::move(socket)) {
  if (socket_.is_open() && !detail::is_blocking_io(socket_.get_executor())) {
    // What the I/O loop does with MSG_DONTWAIT, Asio's own calls on
    // `socket()` do too: they report would_block instead of blocking the
    // thread. (Asio's async operations are unaffected.)
    boost::system::error_code ignored;
    socket_.non_blocking(true, ignored);
  }
}

template class basic_stream<boost::asio::ip::tcp>;
template class basic_stream<boost::asio::local::stream_protocol>;

} // namespace coop::net
