// coop/net/tcp_stream.hpp — a connected TCP socket whose calls block only the calling fiber.
#pragma once

#include <coop/net/basic_stream.hpp>

#include <boost/asio/ip/tcp.hpp>

namespace coop::net {

/// A connected TCP stream: `read_some`, `read_exact`, `read_until`,
/// `write_some`, `write_all`, `shutdown_send`, `set_no_delay`... See
/// `basic_stream` (coop/net/basic_stream.hpp) for the calls and their rules.
using tcp_stream = basic_stream<tcp>;

} // namespace coop::net
