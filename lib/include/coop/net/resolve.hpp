// coop/net/resolve.hpp — name resolution that never blocks the runtime thread.
#pragma once

#include <coop/net/basic_stream.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <string_view>
#include <vector>

namespace coop::net {

/// Resolves `host` (a name or a numeric address) and `port` to the endpoints
/// to try, in getaddrinfo's order. A numeric address (IPv4 or IPv6) is
/// returned as is, without calling getaddrinfo.
///
/// In a fiber, getaddrinfo runs off the runtime thread (on Asio's resolver
/// thread), so the thread's other fibers keep running, and the call follows
/// the rules of every blocking call: a `coop::timeout` or `task.cancel()`
/// ends the wait at once, even though getaddrinfo itself cannot be aborted
/// (its late result is dropped). On a plain thread in a
/// `coop::blocking_scope`, getaddrinfo runs on the calling thread and is NOT
/// bounded by a timeout (only the entry check applies).
///
/// Fails with `host_not_found` (and the other `boost::asio::error` resolver
/// codes), `timeout_error` / `errc::timed_out`, `cancelled` / `errc::cancelled`.
/// For UDP, convert: `udp::endpoint(ep.address(), ep.port())`.
///
/// Thread-safety: any number of fibers and threads may resolve at once.
///
/// Example:
/// @code
///   for (const auto& ep : coop::net::resolve("localhost", 80)) std::cout << ep << '\n';
/// @endcode
std::vector<tcp::endpoint> resolve(std::string_view host, std::uint16_t port);
std::vector<tcp::endpoint> resolve(std::string_view host, std::uint16_t port, boost::system::error_code& ec);
/// The same with a service name ("http") or a decimal port ("8080").
std::vector<tcp::endpoint> resolve(std::string_view host, std::string_view service);
std::vector<tcp::endpoint> resolve(std::string_view host, std::string_view service, boost::system::error_code& ec);

} // namespace coop::net
