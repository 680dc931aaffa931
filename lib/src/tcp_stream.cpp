#include <coop/net/tcp_stream.hpp>

namespace coop::net {

bool tcp_stream::begin(const char* what, boost::system::error_code& ec) {
  detail::io_mode mode = detail::mode_for(socket_.get_executor(), what);
  ec.clear();
  if (mode.fiber) {
    ec = mode.fiber->pending_interrupt();
    if (!ec && !non_blocking_) {
      // Lets write_some try the kernel first and report would_block instead
      // of blocking the thread; Asio's async operations are unaffected.
      socket_.non_blocking(true, ec);
      non_blocking_ = !ec;
    }
    return true;
  }
  // Blocking mode. Under a coop::timeout the socket is non-blocking and each
  // call waits in poll() with the deadline; otherwise the kernel call blocks.
  auto deadline = detail::blocking_deadline();
  if (deadline && std::chrono::steady_clock::now() >= *deadline) {
    ec = make_error_code(errc::timed_out);
    return false;
  }
  deadline_ = deadline.has_value();
  if (non_blocking_ != deadline_) {
    socket_.non_blocking(deadline_, ec);
    non_blocking_ = deadline_ && !ec;
  }
  return false;
}

std::size_t tcp_stream::read_until(std::string& buffer, std::string_view delim, boost::system::error_code& ec,
                                   std::size_t max_size) {
  auto dyn = boost::asio::dynamic_buffer(buffer, max_size);
  if (begin("coop::net::tcp_stream::read_until", ec))
    return ec ? 0 : boost::asio::async_read_until(socket_, dyn, delim, coop::yield[ec]);
  return ec ? 0 : boost::asio::read_until(*this, dyn, delim, ec);
}

std::size_t tcp_stream::write_rest(const std::vector<boost::asio::const_buffer>& rest, boost::system::error_code& ec) {
  return boost::asio::async_write(socket_, rest, coop::yield[ec]);
}

} // namespace coop::net
