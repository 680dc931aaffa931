// coop/net/basic_listener.hpp — a listening stream socket (TCP or Unix-domain)
// whose accept blocks only the calling fiber. `tcp_listener`
// (coop/net/tcp_listener.hpp) and `unix_listener` (coop/net/unix.hpp) name
// its two instantiations.
#pragma once

#include <coop/detail/socket_file.hpp>
#include <coop/net/basic_stream.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <string_view>

namespace coop::net {

/// How a listener is set up.
struct listen_options {
  bool reuse_address = true; ///< TCP only: SO_REUSEADDR
  /// TCP only: SO_REUSEPORT: several listeners (one per runtime thread) share
  /// the port and the kernel spreads incoming connections over them.
  bool reuse_port = false;
  int backlog = 4096;   ///< the kernel caps it at net.core.somaxconn
  bool no_delay = true; ///< TCP only: TCP_NODELAY on accepted streams
  /// Unix only: when the path already exists as a socket file that nobody
  /// listens on (left behind by a process that died), remove it and bind.
  /// Off by default: then an existing path of any kind makes the constructor
  /// fail with `address_in_use` and nothing is deleted. Even when on, a file
  /// that is not a socket, or a socket that a live listener answers on, is
  /// never removed.
  bool remove_stale_socket = false;
};

/// A bound, listening stream socket: `tcp_listener`
/// (`basic_listener<boost::asio::ip::tcp>`, built from an endpoint; port 0
/// picks a free port, ask `local_endpoint()` which) or `unix_listener`
/// (`basic_listener<boost::asio::local::stream_protocol>`, built from a
/// path). `accept()` suspends only the calling fiber; on a plain thread in a
/// `coop::blocking_scope` it blocks the thread (bounded by a `coop::timeout`).
///
/// Unix paths: a filesystem path creates a socket file there; the listener
/// removes that file when it is closed or destroyed, unless another file has
/// replaced it in the meantime. A path that starts with '\0' or '@' names a
/// socket in Linux's abstract namespace ('@' stands for the '\0'): no file,
/// nothing to remove, gone with the socket. Paths are limited to 107 bytes.
///
/// Thread-safety: belongs to the runtime thread that created it; one fiber
/// accepts at a time. Owns its socket (and its socket file); destruction
/// closes it.
///
/// Example:
/// @code
///   coop::net::tcp_listener listener({boost::asio::ip::make_address("127.0.0.1"), 0});
///   for (;;) coop::spawn([c = listener.accept()]() mutable { handle(c); }).detach();
///
///   coop::net::unix_listener local("/run/myapp.sock");
///   coop::net::unix_stream s = local.accept();
/// @endcode
template <class Protocol> class basic_listener {
public:
  using protocol_type = Protocol;
  using endpoint_type = typename Protocol::endpoint;
  using acceptor_type = typename Protocol::acceptor;
  using stream_type = basic_stream<Protocol>;

  /// TCP: binds and listens. Throws `boost::system::system_error` (address
  /// in use...), or `usage_error` outside a runtime or blocking scope.
  explicit basic_listener(const endpoint_type& endpoint,
                          const listen_options& options = {}) requires detail::is_tcp<Protocol>;
  /// Unix: binds `path` and listens. Throws `boost::system::system_error`
  /// (`address_in_use` when the path exists: see
  /// `listen_options::remove_stale_socket`; `name_too_long`...), or
  /// `usage_error` outside a runtime or blocking scope.
  explicit basic_listener(std::string_view path,
                          const listen_options& options = {}) requires detail::is_local_stream<Protocol>;
  basic_listener(basic_listener&&) noexcept = default;
  basic_listener& operator=(basic_listener&&) noexcept = default;

  /// Waits for the next connection.
  stream_type accept(boost::system::error_code& ec);
  stream_type accept();

  endpoint_type local_endpoint() const { return acceptor_.local_endpoint(); }
  /// Stops listening (and removes the Unix socket file this listener
  /// created); a fiber blocked in accept fails with `operation_aborted`.
  /// Throws `usage_error` when called from another thread than the owner's.
  void close() {
    detail::require_owner(acceptor_.get_executor(), detail::is_tcp<Protocol> ? "coop::net::tcp_listener::close"
                                                                             : "coop::net::unix_listener::close");
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    file_.remove();
  }
  bool is_open() const noexcept { return acceptor_.is_open(); }
  acceptor_type& acceptor() noexcept { return acceptor_; }

private:
  void listen(const endpoint_type& endpoint, const listen_options& options);

  detail::socket_file file_;      ///< Unix: the socket file bound here (removed after the socket closes)
  std::shared_ptr<void> keep_io_; ///< destroyed after acceptor_ (detail::keep_io_alive)
  acceptor_type acceptor_;
  protocol_type protocol_ = default_protocol(); ///< of the accepted sockets
  bool no_delay_;

  static protocol_type default_protocol() noexcept {
    if constexpr (detail::is_tcp<Protocol>)
      return boost::asio::ip::tcp::v4();
    else
      return protocol_type();
  }
};

// Compiled once, in the library (lib/src/net/tcp_listener.cpp).
extern template class basic_listener<boost::asio::ip::tcp>;
extern template class basic_listener<boost::asio::local::stream_protocol>;

} // namespace coop::net
