// coop/net/unix.hpp — Unix-domain stream sockets: the same stream calls as
// tcp_stream, over a path instead of an address.
#pragma once

#include <coop/net/basic_listener.hpp>
#include <coop/net/basic_stream.hpp>

#include <boost/asio/local/stream_protocol.hpp>

#include <string_view>

namespace coop::net {

/// A connected Unix-domain stream socket: the calls, rules and
/// thread-safety of `basic_stream` (`read_some`, `read_exact`, `read_until`,
/// `write_all`, `shutdown_send`...), in a fiber and on a plain thread in a
/// `coop::blocking_scope`, exactly as for `tcp_stream`.
using unix_stream = basic_stream<boost::asio::local::stream_protocol>;

/// A listening Unix-domain socket bound to a path; `accept()` returns a
/// `unix_stream`. It removes the socket file it created when closed or
/// destroyed; an existing path makes it fail unless
/// `listen_options::remove_stale_socket` is set and the file is a socket
/// nobody listens on. A path starting with '\0' or '@' is a Linux abstract
/// name (no file). The `system_error` of a failed bind names the path. See
/// `basic_listener`.
///
/// Example:
/// @code
///   coop::net::unix_listener listener("/tmp/app.sock");
///   coop::spawn([] {
///     auto c = coop::net::unix_connect("/tmp/app.sock");
///     c.write_all(boost::asio::buffer("hi", 2));
///   }).detach();
///   coop::net::unix_stream s = listener.accept();
/// @endcode
using unix_listener = basic_listener<boost::asio::local::stream_protocol>;

/// Connects to the Unix-domain socket at `path` (a '\0' or '@' first
/// character names an abstract socket). Follows the rules of every blocking
/// call; on a plain thread it needs a `coop::blocking_scope`. Fails with
/// `no_such_file_or_directory` when nothing is there and
/// `connection_refused` when nobody listens on it; the throwing form's
/// `system_error::what()` names the path.
unix_stream unix_connect(std::string_view path);
unix_stream unix_connect(std::string_view path, boost::system::error_code& ec);

} // namespace coop::net
