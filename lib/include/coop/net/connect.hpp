// coop/net/connect.hpp — opening TCP connections from a fiber.
#pragma once

#include <coop/net/tcp_stream.hpp>

#include <cstdint>
#include <string_view>

namespace coop::net {

/// Connects to `host:port`, trying each address the name resolves to.
/// Name resolution runs off the runtime thread (Asio's resolver thread), so
/// it never blocks other fibers, and a timeout or cancellation ends the wait
/// at once even though getaddrinfo itself cannot be aborted (its late result
/// is dropped). A numeric address skips it. The stream has
/// TCP_NODELAY set. Throws `boost::system::system_error` (connection
/// refused, host not found...), `timeout_error`, `cancelled`.
tcp_stream connect(std::string_view host, std::uint16_t port);
tcp_stream connect(std::string_view host, std::uint16_t port, boost::system::error_code& ec);
/// Connects to one endpoint.
tcp_stream connect(const tcp::endpoint& endpoint);
tcp_stream connect(const tcp::endpoint& endpoint, boost::system::error_code& ec);

} // namespace coop::net
