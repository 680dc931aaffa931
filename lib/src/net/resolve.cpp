#include <coop/net/resolve.hpp>

#include "net/resolve.hpp"
#include <coop/channel.hpp>

#include <boost/asio/ip/address.hpp>

#include <charconv>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace coop::net {
namespace {

using endpoints = std::vector<tcp::endpoint>;

endpoints to_vector(const tcp::resolver::results_type& results) {
  endpoints v;
  v.reserve(results.size());
  for (const auto& r : results)
    v.push_back(r.endpoint());
  return v;
}

std::optional<std::uint16_t> parse_port(std::string_view s) {
  std::uint16_t port = 0;
  auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), port);
  if (s.empty() || err != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return port;
}

/// Asio's resolver runs getaddrinfo on a thread of its own and cannot abort
/// it. So the result travels through a channel that the completion handler
/// shares: a timeout or cancellation ends the wait at once, and a late result
/// lands in the channel and is dropped with it. (Cancelling the resolver
/// keeps lookups still queued behind a slow one from running at all.)
endpoints resolve_off_thread(boost::asio::io_context& io, const std::string& host, const std::string& service,
                             boost::system::error_code& ec) {
  using outcome = std::pair<boost::system::error_code, endpoints>;
  auto result = std::make_shared<coop::channel<outcome>>(1);
  auto resolver = std::make_shared<tcp::resolver>(io);
  resolver->async_resolve(host, service,
                          [result, resolver](const boost::system::error_code& e, tcp::resolver::results_type r) {
                            result->try_push(outcome{e, to_vector(r)});
                          });
  auto got = result->pop(ec);
  if (ec) {
    resolver->cancel();
    return {};
  }
  ec = got->first;
  return std::move(got->second);
}

} // namespace
} // namespace coop::net

namespace coop::detail {

std::vector<boost::asio::ip::tcp::endpoint> resolve(std::string_view host, std::string_view service, const char* what,
                                                    boost::system::error_code& ec) {
  using namespace coop::net;
  boost::asio::io_context& io = io_for_new_object(what);
  const bool fiber = begin_call(io.get_executor(), what, ec);
  if (ec) return {};
  if (auto port = parse_port(service)) {
    boost::system::error_code not_numeric;
    auto address = boost::asio::ip::make_address(std::string(host), not_numeric);
    if (!not_numeric) return {tcp::endpoint(address, *port)};
  }
  if (fiber) return resolve_off_thread(io, std::string(host), std::string(service), ec);
  // A plain thread: getaddrinfo runs here, unbounded (it cannot be interrupted).
  tcp::resolver resolver(io);
  auto results = resolver.resolve(std::string(host), std::string(service), ec);
  return ec ? endpoints{} : to_vector(results);
}

} // namespace coop::detail

namespace coop::net {

endpoints resolve(std::string_view host, std::string_view service, boost::system::error_code& ec) {
  return coop::detail::resolve(host, service, "coop::net::resolve", ec);
}

endpoints resolve(std::string_view host, std::uint16_t port, boost::system::error_code& ec) {
  return coop::detail::resolve(host, std::to_string(port), "coop::net::resolve", ec);
}

endpoints resolve(std::string_view host, std::string_view service) {
  boost::system::error_code ec;
  endpoints r = resolve(host, service, ec);
  throw_on_error(ec, "resolve");
  return r;
}

endpoints resolve(std::string_view host, std::uint16_t port) {
  boost::system::error_code ec;
  endpoints r = resolve(host, port, ec);
  throw_on_error(ec, "resolve");
  return r;
}

} // namespace coop::net
