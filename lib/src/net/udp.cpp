#include <coop/net/udp.hpp>

namespace coop::net {

udp_socket::udp_socket(const udp::endpoint& local) : socket_(detail::io_for_new_object("coop::net::udp_socket")) {
  keep_io_ = detail::keep_io_alive(socket_.get_executor());
  socket_.open(local.protocol());
  socket_.bind(local);
  if (!detail::is_blocking_io(socket_.get_executor())) {
    // What the I/O loop does with MSG_DONTWAIT, Asio's own calls on
    // `socket()` do too: they report would_block instead of blocking the
    // thread. (Asio's async operations are unaffected.)
    socket_.non_blocking(true);
  }
}

} // namespace coop::net
