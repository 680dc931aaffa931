#include <coop/net/connect.hpp>
#include <coop/net/unix.hpp>

#include <coop/detail/resolve.hpp>
#include <coop/detail/socket_file.hpp>

#include <boost/asio/connect.hpp>

#include <string>
#include <utility>
#include <vector>

namespace coop::net {
namespace {

using local_stream = boost::asio::local::stream_protocol;

/// Blocking mode: connects the way the plain thread's timeouts allow.
template <class Socket, class Endpoint>
void connect_blocking(Socket& s, const Endpoint& endpoint, boost::system::error_code& ec) {
  if (!detail::has_blocking_deadline()) {
    s.connect(endpoint, ec);
    return;
  }
  if (s.is_open()) s.close(ec);
  s.open(endpoint.protocol(), ec);
  if (!ec) detail::connect_with_deadline(s.native_handle(), endpoint.data(), endpoint.size(), ec);
}

bool interrupted(const boost::system::error_code& ec) {
  return ec == errc::timed_out || ec == errc::cancelled;
}

/// Connects `s` to the first of `endpoints` that accepts, in either mode.
template <class Protocol>
void connect_any(typename Protocol::socket& s, const std::vector<typename Protocol::endpoint>& endpoints,
                 const char* what, boost::system::error_code& ec) {
  const detail::wait_info info{"connect"};
  if (detail::begin_call(s.get_executor(), what, ec)) {
    if (ec) return;
    if (endpoints.size() == 1)
      s.async_connect(endpoints.front(), detail::yield_for(info, ec));
    else
      boost::asio::async_connect(s, endpoints, detail::yield_for(info, ec));
    return;
  }
  if (ec) return;
  ec = boost::asio::error::host_not_found;
  for (const auto& endpoint : endpoints) {
    connect_blocking(s, endpoint, ec);
    if (!ec || interrupted(ec)) break;
  }
}

tcp_stream finish(tcp::socket s, boost::system::error_code& ec) {
  if (!ec) {
    boost::system::error_code ignored;
    s.set_option(tcp::no_delay(true), ignored);
  }
  return tcp_stream(std::move(s));
}

} // namespace

tcp_stream connect(const tcp::endpoint& endpoint, boost::system::error_code& ec) {
  tcp::socket s(detail::io_for_new_object("coop::net::connect"));
  connect_any<tcp>(s, {endpoint}, "coop::net::connect", ec);
  return finish(std::move(s), ec);
}

tcp_stream connect(std::string_view host, std::uint16_t port, boost::system::error_code& ec) {
  std::vector<tcp::endpoint> endpoints = detail::resolve(host, std::to_string(port), "coop::net::connect", ec);
  tcp::socket s(detail::io_for_new_object("coop::net::connect"));
  if (!ec) connect_any<tcp>(s, endpoints, "coop::net::connect", ec);
  return finish(std::move(s), ec);
}

tcp_stream connect(const tcp::endpoint& endpoint) {
  boost::system::error_code ec;
  tcp_stream s = connect(endpoint, ec);
  throw_on_error(ec, "connect");
  return s;
}

tcp_stream connect(std::string_view host, std::uint16_t port) {
  boost::system::error_code ec;
  tcp_stream s = connect(host, port, ec);
  throw_on_error(ec, "connect");
  return s;
}

unix_stream unix_connect(std::string_view path, boost::system::error_code& ec) {
  local_stream::socket s(detail::io_for_new_object("coop::net::unix_connect"));
  local_stream::endpoint endpoint = detail::local_endpoint_for(path, ec);
  if (!ec) connect_any<local_stream>(s, {endpoint}, "coop::net::unix_connect", ec);
  return unix_stream(std::move(s));
}

unix_stream unix_connect(std::string_view path) {
  boost::system::error_code ec;
  unix_stream s = unix_connect(path, ec);
  if (ec) throw_on_error(ec, ("coop::net::unix_connect: '" + detail::printable_path(path) + "'").c_str());
  return s;
}

} // namespace coop::net
