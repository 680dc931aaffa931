#include <coop/net/connect.hpp>
#include <coop/net/unix.hpp>

#include "net/resolve.hpp"
#include <coop/detail/socket_file.hpp>

#include <coop/detail/io_loop.hpp>

#include <sys/socket.h>

#include <cerrno>

#include <string>
#include <utility>
#include <vector>

namespace coop::net {
namespace {

using local_stream = boost::asio::local::stream_protocol;

bool interrupted(const boost::system::error_code& ec) {
  return ec == errc::timed_out || ec == errc::cancelled;
}

/// Connects `s` (opened afresh) to `endpoint` through the I/O loop:
/// `connect`; while it is in progress, wait until the socket is writable and
/// read the outcome (SO_ERROR). A plain thread without a timeout blocks in
/// the kernel's `connect` instead; with one, its socket is non-blocking for
/// the call.
template <class Socket, class Endpoint>
void connect_one(Socket& s, const Endpoint& endpoint, const detail::io_call& call, boost::system::error_code& ec) {
  if (s.is_open()) s.close(ec);
  s.open(endpoint.protocol(), ec);
  const bool switch_mode = !call.fiber && call.must_not_block();
  if (!ec && call.must_not_block()) s.non_blocking(true, ec);
  if (ec) return;
  const detail::io_handle h = detail::handle_of(s);
  bool started = false;
  detail::io_loop(
      call, h, detail::io_connect, &s,
      [&](int) -> ssize_t {
        if (!std::exchange(started, true)) {
          if (::connect(h.fd, endpoint.data(), static_cast<socklen_t>(endpoint.size())) == 0) return 0;
          if (errno == EINPROGRESS || errno == EINTR) errno = EAGAIN; // under way: wait, then ask how it went
          return -1;
        }
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(h.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -1;
        if (err == 0) return 0;
        errno = err;
        return -1;
      },
      ec);
  if (switch_mode) {
    boost::system::error_code ignored;
    s.non_blocking(false, ignored); // the stream blocks in the kernel again
  }
}

/// Connects `s` to the first of `endpoints` that accepts, in either mode.
template <class Protocol>
void connect_any(typename Protocol::socket& s, const std::vector<typename Protocol::endpoint>& endpoints,
                 const char* what, boost::system::error_code& ec) {
  const detail::io_call call = detail::begin_io(s.get_executor(), what, ec);
  if (ec) return;
  ec = boost::asio::error::host_not_found;
  for (const auto& endpoint : endpoints) {
    connect_one(s, endpoint, call, ec);
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
  detail::throw_call_error(ec, "coop::net", "connect");
  return s;
}

tcp_stream connect(std::string_view host, std::uint16_t port) {
  boost::system::error_code ec;
  tcp_stream s = connect(host, port, ec);
  detail::throw_call_error(ec, "coop::net", "connect");
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
