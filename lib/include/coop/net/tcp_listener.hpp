// coop/net/tcp_listener.hpp — a listening TCP socket whose accept blocks only the calling fiber.
#pragma once

#include <coop/net/basic_listener.hpp>
#include <coop/net/tcp_stream.hpp>

namespace coop::net {

/// A bound, listening TCP socket; `accept()` returns a `tcp_stream`. See
/// `basic_listener` (coop/net/basic_listener.hpp) and `listen_options`.
///
/// Example:
/// @code
///   coop::net::tcp_listener listener({boost::asio::ip::make_address("127.0.0.1"), 0});
///   auto port = listener.local_endpoint().port();
/// @endcode
using tcp_listener = basic_listener<tcp>;

} // namespace coop::net
