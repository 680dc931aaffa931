// coop/detail/resolve.hpp — coop::net::resolve with the caller's name, for
// the calls built on it (connect), so a usage error names what was called.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <string_view>
#include <vector>

namespace coop::detail {

std::vector<boost::asio::ip::tcp::endpoint> resolve(std::string_view host, std::string_view service, const char* what,
                                                    boost::system::error_code& ec);

} // namespace coop::detail
