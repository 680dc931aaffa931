#include <coop/net/tcp_listener.hpp>

#include <boost/asio/socket_base.hpp>

#include <sys/socket.h>

namespace coop::net {

tcp_listener::tcp_listener(const tcp::endpoint& endpoint, const listen_options& options)
    : acceptor_(detail::io_for_new_object("coop::net::tcp_listener")), no_delay_(options.no_delay) {
  acceptor_.open(endpoint.protocol());
  if (options.reuse_address) acceptor_.set_option(tcp::acceptor::reuse_address(true));
  if (options.reuse_port) {
    using reuse_port = boost::asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
    acceptor_.set_option(reuse_port(true));
  }
  acceptor_.bind(endpoint);
  acceptor_.listen(options.backlog);
}

tcp_stream tcp_listener::accept(boost::system::error_code& ec) {
  detail::io_mode mode = detail::mode_for(acceptor_.get_executor(), "coop::net::tcp_listener::accept");
  tcp::socket s(acceptor_.get_executor());
  const detail::wait_info info{"accept", this, acceptor_.native_handle()};
  if (mode.fiber) {
    if (!mode.fiber->checkpoint(ec)) acceptor_.async_accept(s, detail::yield_for(info, ec));
  } else if (!detail::current_wait_context().checkpoint(ec)) {
    // Blocking mode: with a timeout, wait in poll() first; accept then
    // returns at once (one acceptor at a time).
    if (!detail::has_blocking_deadline() || detail::wait_ready(acceptor_.native_handle(), false, ec))
      acceptor_.accept(s, ec);
  }
  if (!ec && no_delay_) {
    boost::system::error_code ignored; // a peer that already left is the caller's to find out
    s.set_option(tcp::no_delay(true), ignored);
  }
  return tcp_stream(std::move(s));
}

tcp_stream tcp_listener::accept() {
  boost::system::error_code ec;
  tcp_stream s = accept(ec);
  throw_on_error(ec, "accept");
  return s;
}

} // namespace coop::net
