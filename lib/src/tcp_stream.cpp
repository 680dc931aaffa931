#include <coop/net/tcp_stream.hpp>

namespace coop::net {

tcp_stream::tcp_stream(tcp::socket socket) noexcept : socket_(std::move(socket)) {
  if (socket_.is_open() && !detail::is_blocking_io(socket_.get_executor())) {
    // Lets write_some try the kernel first and report would_block instead of
    // blocking the thread; Asio's async operations are unaffected.
    boost::system::error_code ignored;
    socket_.non_blocking(true, ignored);
  }
}

bool tcp_stream::begin(const char* what, boost::system::error_code& ec) {
  detail::io_mode mode = detail::mode_for(socket_.get_executor(), what);
  detail::wait_context& wc = mode.fiber ? *mode.fiber : detail::current_wait_context();
  wc.checkpoint(ec);
  return mode.fiber != nullptr;
}

std::size_t tcp_stream::read_until(std::string& buffer, std::string_view delim, std::size_t max_size,
                                   boost::system::error_code& ec) {
  auto dyn = boost::asio::dynamic_buffer(buffer, max_size);
  const detail::wait_info info{"read", this, socket_.native_handle()};
  if (begin("coop::net::tcp_stream::read_until", ec))
    return ec ? 0 : boost::asio::async_read_until(socket_, dyn, delim, detail::yield_for(info, ec));
  return ec ? 0 : boost::asio::read_until(*this, dyn, delim, ec);
}

std::size_t tcp_stream::write_rest(const std::vector<boost::asio::const_buffer>& rest, boost::system::error_code& ec) {
  const detail::wait_info info{"write", this, socket_.native_handle()};
  return boost::asio::async_write(socket_, rest, detail::yield_for(info, ec));
}

} // namespace coop::net
