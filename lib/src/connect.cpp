#include <coop/net/connect.hpp>

#include <coop/channel.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>

#include <memory>
#include <string>
#include <utility>

namespace coop::net {
namespace {

/// Asio's resolver runs getaddrinfo on a thread of its own and cannot abort
/// it. So the result travels through a channel that the completion handler
/// shares: a timeout or cancellation ends the wait at once, and a late result
/// lands in the channel and is dropped with it.
tcp::resolver::results_type resolve_interruptibly(const tcp::socket::executor_type& ex, std::string_view host,
                                                  std::uint16_t port, boost::system::error_code& ec) {
  using outcome = std::pair<boost::system::error_code, tcp::resolver::results_type>;
  auto result = std::make_shared<coop::channel<outcome>>(1);
  auto resolver = std::make_shared<tcp::resolver>(ex);
  resolver->async_resolve(std::string(host), std::to_string(port),
                          [result, resolver](const boost::system::error_code& e, tcp::resolver::results_type r) {
                            result->try_push(outcome{e, std::move(r)});
                          });
  auto got = result->pop(ec);
  if (ec) return {};
  ec = got->first;
  return std::move(got->second);
}

/// Blocking mode: connects the way the plain thread's timeouts allow.
void connect_blocking(tcp::socket& s, const tcp::endpoint& endpoint, boost::system::error_code& ec) {
  if (!detail::has_blocking_deadline()) {
    s.connect(endpoint, ec);
    return;
  }
  if (s.is_open()) s.close(ec);
  s.open(endpoint.protocol(), ec);
  if (!ec) detail::connect_with_deadline(s.native_handle(), endpoint.data(), endpoint.size(), ec);
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
  detail::io_mode mode = detail::mode_for(s.get_executor(), "coop::net::connect");
  const detail::wait_info info{"connect"};
  if (mode.fiber) {
    if (!mode.fiber->checkpoint(ec)) s.async_connect(endpoint, detail::yield_for(info, ec));
  } else if (!detail::current_wait_context().checkpoint(ec)) {
    connect_blocking(s, endpoint, ec);
  }
  return finish(std::move(s), ec);
}

tcp_stream connect(std::string_view host, std::uint16_t port, boost::system::error_code& ec) {
  boost::system::error_code parse_ec;
  auto address = boost::asio::ip::make_address(std::string(host), parse_ec);
  if (!parse_ec) return connect(tcp::endpoint(address, port), ec);

  tcp::socket s(detail::io_for_new_object("coop::net::connect"));
  detail::io_mode mode = detail::mode_for(s.get_executor(), "coop::net::connect");
  tcp::resolver::results_type results;
  const detail::wait_info info{"connect"};
  if (mode.fiber) {
    results = resolve_interruptibly(s.get_executor(), host, port, ec);
    if (!ec) boost::asio::async_connect(s, results, detail::yield_for(info, ec));
  } else if (!detail::current_wait_context().checkpoint(ec)) {
    // getaddrinfo itself cannot be bounded on a plain thread; the connects can.
    tcp::resolver resolver(s.get_executor());
    results = resolver.resolve(std::string(host), std::to_string(port), ec);
    if (!ec) {
      ec = boost::asio::error::host_not_found;
      for (const auto& r : results) {
        connect_blocking(s, r.endpoint(), ec);
        if (!ec || ec == errc::timed_out) break;
      }
    }
  }
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

} // namespace coop::net
