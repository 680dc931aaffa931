// coop/net/tcp_listener.hpp — a listening TCP socket whose accept blocks only the calling fiber.
#pragma once

#include <coop/net/tcp_stream.hpp>

#include <boost/asio/ip/tcp.hpp>

namespace coop::net {

/// How a listener is set up.
struct listen_options {
  bool reuse_address = true;
  /// SO_REUSEPORT: several listeners (one per runtime thread) share the port
  /// and the kernel spreads incoming connections over them.
  bool reuse_port = false;
  int backlog = 4096;   ///< the kernel caps it at net.core.somaxconn
  bool no_delay = true; ///< TCP_NODELAY on accepted streams
};

/// A bound, listening TCP socket. Port 0 picks a free port; ask
/// `local_endpoint()` which. `accept()` suspends only the calling fiber.
///
/// Thread-safety: belongs to the runtime thread that created it; one fiber
/// accepts at a time. Owns its socket; destruction closes it.
///
/// Example:
/// @code
///   coop::net::tcp_listener listener({boost::asio::ip::make_address("127.0.0.1"), 0});
///   for (;;) coop::spawn([c = listener.accept()]() mutable { handle(c); }).detach();
/// @endcode
class tcp_listener {
public:
  /// Binds and listens. Throws `boost::system::system_error` (address in
  /// use...), or `usage_error` outside a runtime or blocking scope.
  explicit tcp_listener(const tcp::endpoint& endpoint, const listen_options& options = {});
  tcp_listener(tcp_listener&&) noexcept = default;
  tcp_listener& operator=(tcp_listener&&) noexcept = default;

  /// Waits for the next connection.
  tcp_stream accept(boost::system::error_code& ec);
  tcp_stream accept();

  tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
  /// Stops listening; a fiber blocked in accept fails with `operation_aborted`.
  void close() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  }
  bool is_open() const noexcept { return acceptor_.is_open(); }
  tcp::acceptor& acceptor() noexcept { return acceptor_; }

private:
  tcp::acceptor acceptor_;
  bool no_delay_;
};

} // namespace coop::net
