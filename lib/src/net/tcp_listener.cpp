// basic_listener's compiled parts, for both of its protocols (tcp_listener and unix_listener).
#include <coop/net/basic_listener.hpp>

#include <boost/asio/socket_base.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <string>

namespace coop::net {
namespace {

using local_stream = boost::asio::local::stream_protocol;

template <class Protocol> constexpr const char* listener_name(const char* tcp_name, const char* unix_name) {
  return detail::is_tcp<Protocol> ? tcp_name : unix_name;
}

} // namespace

template <class Protocol>
basic_listener<Protocol>::basic_listener(const endpoint_type& endpoint,
                                         const listen_options& options) requires detail::is_tcp<Protocol>
    : acceptor_(detail::io_for_new_object("coop::net::tcp_listener")), no_delay_(options.no_delay) {
  keep_io_ = detail::keep_io_alive(acceptor_.get_executor());
  listen(endpoint, options);
}

template <class Protocol>
basic_listener<Protocol>::basic_listener(std::string_view path,
                                         const listen_options& options) requires detail::is_local_stream<Protocol>
    : acceptor_(detail::io_for_new_object("coop::net::unix_listener")), no_delay_(false) {
  keep_io_ = detail::keep_io_alive(acceptor_.get_executor());
  boost::system::error_code ec;
  endpoint_type endpoint = detail::local_endpoint_for(path, ec);
  if (ec)
    throw boost::system::system_error(ec, "coop::net::unix_listener: path '" + detail::printable_path(path) + "'");
  const bool has_file = !detail::is_abstract_path(path);
  if (has_file && options.remove_stale_socket) detail::remove_if_stale_socket(endpoint.path());
  try {
    listen(endpoint, options);
  } catch (const boost::system::system_error& e) {
    if (e.code() != boost::asio::error::address_in_use || !has_file) throw;
    throw boost::system::system_error(e.code(), "coop::net::unix_listener: '" + endpoint.path() +
                                                    "' exists (listen_options::remove_stale_socket replaces a "
                                                    "socket file that nobody listens on)");
  }
}

template <class Protocol>
void basic_listener<Protocol>::listen(const endpoint_type& endpoint, const listen_options& options) {
  acceptor_.open(endpoint.protocol());
  protocol_ = endpoint.protocol();
  acceptor_.non_blocking(true); // for the I/O loop, in both modes (accept has no MSG_DONTWAIT)
  if constexpr (detail::is_tcp<Protocol>) {
    if (options.reuse_address) acceptor_.set_option(boost::asio::socket_base::reuse_address(true));
    if (options.reuse_port) {
      using reuse_port = boost::asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
      acceptor_.set_option(reuse_port(true));
    }
    acceptor_.bind(endpoint);
    acceptor_.listen(options.backlog);
  } else {
    // Errors name the path: a program with several sockets tells which failed.
    boost::system::error_code ec;
    const std::string path = endpoint.path();
    acceptor_.bind(endpoint, ec);
    if (ec)
      throw boost::system::system_error(ec, "coop::net::unix_listener: bind '" + detail::printable_path(path) + "'");
    // From here on the file is ours (removed on close or destruction, also
    // when listen() below fails).
    if (!detail::is_abstract_path(path)) file_ = detail::socket_file(path);
    acceptor_.listen(options.backlog, ec);
    if (ec)
      throw boost::system::system_error(ec, "coop::net::unix_listener: listen '" + detail::printable_path(path) + "'");
  }
}

template <class Protocol>
typename basic_listener<Protocol>::stream_type basic_listener<Protocol>::accept(boost::system::error_code& ec) {
  const char* what = listener_name<Protocol>("coop::net::tcp_listener::accept", "coop::net::unix_listener::accept");
  const detail::io_call call = detail::begin_io(acceptor_.get_executor(), what, ec);
  typename Protocol::socket s(acceptor_.get_executor());
  if (ec) return stream_type(std::move(s));
  // The I/O loop: `accept4` (the listening socket is non-blocking); when no
  // connection is pending, wait until one is. A fiber takes a burst of
  // pending connections in one turn (up to `detail::accept_batch`, then it
  // yields). A connection that was reset while queued is skipped.
  const detail::io_handle h = detail::handle_of(acceptor_);
  const int type = SOCK_CLOEXEC | (call.fiber ? SOCK_NONBLOCK : 0);
  const std::size_t fd = detail::io_loop(
      call, h, detail::io_accept, this,
      [&](int) -> ssize_t {
        for (;;)
          if (int r = ::accept4(h.fd, nullptr, nullptr, type); r >= 0 || errno != ECONNABORTED) return r;
      },
      ec);
  if (ec) return stream_type(std::move(s));
  s.assign(protocol_, static_cast<int>(fd), ec);
  if (ec) {
    ::close(static_cast<int>(fd));
    return stream_type(std::move(s));
  }
  if constexpr (detail::is_tcp<Protocol>) {
    if (no_delay_) {
      boost::system::error_code ignored; // a peer that already left is the caller's to find out
      s.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
    }
  }
  return stream_type(std::move(s));
}

template <class Protocol> typename basic_listener<Protocol>::stream_type basic_listener<Protocol>::accept() {
  boost::system::error_code ec;
  stream_type s = accept(ec);
  detail::throw_call_error(ec, detail::is_tcp<Protocol> ? "coop::net::tcp_listener" : "coop::net::unix_listener",
                           "accept");
  return s;
}

template class basic_listener<boost::asio::ip::tcp>;
template class basic_listener<local_stream>;

} // namespace coop::net
