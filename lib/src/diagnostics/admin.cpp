// lib/src/diagnostics/admin.cpp — the admin endpoint: HTTP/1.1 on Beast,
// served from a thread of its own so that it answers while every runtime
// thread is stuck (the moment a fiber dump is wanted most). One client at a
// time; each gets `exchange_limit` for its whole request and response, and a
// request header of up to `max_request` bytes, so a client that misbehaves
// delays the next one by at most that and never touches a runtime thread.
// The pages are made from the same snapshots as coop::dump_fibers and
// coop::metrics_snapshot (a few dozen fibers per hold of a thread's registry
// lock).
#include "diagnostics/admin.hpp"
#include "diagnostics/dump.hpp"
#include "diagnostics/where.hpp"
#include <coop/diagnostics.hpp>
#include <coop/metrics.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <variant>

namespace coop::detail {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;
using namespace std::chrono_literals;

constexpr auto exchange_limit = 2s;
constexpr std::size_t max_request = 8 * 1024;
constexpr std::size_t write_piece = 256 * 1024; ///< bytes of the answer written within one `exchange_limit`
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

/// How long /fibers waits for the parked fibers to say where they wait:
/// while answers come, up to `trace_limit`, and `trace_quiet` after the
/// last (a stuck runtime thread's fibers cannot answer).
constexpr auto trace_quiet = 500ms;
constexpr auto trace_limit = 10s;

/// Whether `args` is a query /fibers takes: "format=text" and "where=0",
/// in any order, joined by '&'.
bool fibers_query(std::string_view args) {
  while (!args.empty()) {
    const auto amp = args.find('&');
    const std::string_view arg = args.substr(0, amp);
    if (arg != "format=text" && arg != "where=0") return false;
    args = amp == std::string_view::npos ? std::string_view() : args.substr(amp + 1);
  }
  return true;
}

/// The response to one request line.
http::response<http::string_body> page(const http::request<http::empty_body>& req) {
  http::response<http::string_body> res;
  res.version(11);
  res.keep_alive(false);
  res.set(http::field::server, "coop admin");
  const std::string_view target(req.target().data(), req.target().size());
  const auto query = target.find('?');
  const std::string_view path = target.substr(0, query);
  const std::string_view args = query == std::string_view::npos ? std::string_view() : target.substr(query + 1);
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    res.result(http::status::method_not_allowed);
    res.set(http::field::allow, "GET, HEAD");
  } else if (path == "/metrics") {
    std::ostringstream text;
    write_prometheus(text);
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.body() = std::move(text).str();
  } else if (path == "/fibers" && fibers_query(args)) {
    const bool text = args.find("format=text") != std::string_view::npos;
    // Where each parked fiber waits, unless asked not to (where=0).
    const std::uint64_t where =
        args.find("where=0") != std::string_view::npos ? 0 : trace_parked_fibers(trace_quiet, trace_limit);
    res.set(http::field::content_type, text ? "text/plain; charset=utf-8" : "application/json");
    res.body() = dump_all(where, !text);
  } else {
    res.result(http::status::not_found);
    res.set(http::field::content_type, "text/plain");
    res.body() = "coop admin: GET /metrics, /fibers or /fibers?format=text\n";
  }
  res.prepare_payload();
  if (req.method() == http::verb::head) res.body().clear();
  return res;
}

/// Closes `socket` (the awaited read or write ends at once) unless
/// `limit`, set to `exchange_limit` from now, is cancelled or set again first.
template <class Socket> void arm(asio::steady_timer& limit, Socket& socket) {
  limit.expires_after(exchange_limit);
  limit.async_wait([&socket](const boost::system::error_code& ec) {
    if (!ec) socket.close();
  });
}

/// One client's request and our answer: reading the request gets
/// `exchange_limit`, and so does each `write_piece` of the answer (making the
/// page, which may take a while with many fibers, is ours and does not count).
template <class Socket> asio::awaitable<void> exchange(Socket socket) {
  asio::steady_timer limit(socket.get_executor());
  arm(limit, socket);
  boost::beast::flat_buffer buffer(max_request);
  http::request_parser<http::empty_body> parser;
  parser.header_limit(max_request);
  auto [read_ec, read_n] = co_await http::async_read(socket, buffer, parser, use_tuple);
  http::response<http::string_body> res;
  if (read_ec) {
    if (!socket.is_open() || read_ec == http::error::end_of_stream) co_return; // timed out, or nothing asked
    res.result(read_ec == http::error::header_limit ? http::status::request_header_fields_too_large
                                                    : http::status::bad_request);
    res.version(11);
    res.keep_alive(false);
    res.prepare_payload();
  } else {
    limit.cancel();
    res = page(parser.get());
  }
  (void)read_n;
  // The answer a piece at a time, each within `exchange_limit`: a dump of
  // 100,000 fibers is tens of MB, which a busy machine may take a while to
  // move, but a client that stops reading is cut off.
  std::ostringstream head;
  head << res.base();
  const std::string header = std::move(head).str();
  const std::string& body = res.body();
  for (std::size_t at = 0, end = header.size() + body.size(); at < end;) {
    const bool in_header = at < header.size();
    const std::string& part = in_header ? header : body;
    const std::size_t from = in_header ? at : at - header.size();
    const std::size_t n = std::min(part.size() - from, write_piece);
    arm(limit, socket);
    auto [ec, written] = co_await asio::async_write(socket, asio::buffer(part.data() + from, n), use_tuple);
    if (ec) co_return; // the client is gone or too slow: nothing to do
    at += written;
  }
  boost::system::error_code ignored;
  socket.shutdown(Socket::shutdown_send, ignored);
  limit.cancel();
}

template <class Acceptor> asio::awaitable<void> accept_loop(Acceptor& acceptor) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) { // out of descriptors, say: try again a moment later
      asio::steady_timer pause(acceptor.get_executor(), 100ms);
      co_await pause.async_wait(use_tuple);
      continue;
    }
    co_await exchange(std::move(socket));
  }
}

/// One served address: its thread, io_context and listening socket.
class endpoint {
public:
  /// Throws on a bad address or when it cannot be bound.
  explicit endpoint(const std::string& address) {
    if (address.find('/') != std::string::npos || address.find(':') == std::string::npos) {
      local::acceptor a(io_);
      a.open();
      ::unlink(address.c_str()); // a socket file left by an earlier run
      a.bind(local::endpoint(address));
      a.listen();
      path_ = address;
      bound_ = address;
      acceptor_.template emplace<local::acceptor>(std::move(a));
    } else {
      tcp::acceptor a(io_);
      const tcp::endpoint at = parse_tcp(address);
      a.open(at.protocol());
      a.set_option(tcp::acceptor::reuse_address(true));
      a.bind(at);
      a.listen();
      const tcp::endpoint local_end = a.local_endpoint();
      bound_ =
          local_end.address().is_v6() ? "[" + local_end.address().to_string() + "]" : local_end.address().to_string();
      bound_ += ":" + std::to_string(local_end.port());
      acceptor_.template emplace<tcp::acceptor>(std::move(a));
    }
    std::visit(
        [this](auto& a) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(a)>, std::monostate>)
            asio::co_spawn(io_, accept_loop(a), asio::detached);
        },
        acceptor_);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~endpoint() {
    io_.stop();
    thread_.join();
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  endpoint(const endpoint&) = delete;
  endpoint& operator=(const endpoint&) = delete;

  const std::string& bound() const noexcept { return bound_; }

private:
  /// "127.0.0.1:9100", "[::1]:9100", "localhost:9100": loopback only, since
  /// what the endpoint shows (fiber names, what they wait on) is the
  /// program's inside.
  static tcp::endpoint parse_tcp(const std::string& address) {
    const auto colon = address.rfind(':');
    std::string host = address.substr(0, colon);
    const std::string port = address.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host == "localhost") host = "127.0.0.1";
    std::size_t used = 0;
    unsigned long number = 0;
    try {
      number = std::stoul(port, &used);
    } catch (...) {
      used = 0;
    }
    if (port.empty() || used != port.size() || number > 65535)
      throw std::invalid_argument("the port of \"" + address + "\" is not a number from 0 to 65535");
    boost::system::error_code ec;
    const asio::ip::address a = asio::ip::make_address(host, ec);
    if (ec) throw std::invalid_argument("\"" + host + "\" is not an IP address (or localhost)");
    if (!a.is_loopback()) throw std::invalid_argument("\"" + host + "\" is not a loopback address");
    return {a, static_cast<unsigned short>(number)};
  }

  std::string bound_;
  std::string path_; ///< the Unix socket's file, removed at the end
  asio::io_context io_{1};
  std::variant<std::monostate, local::acceptor, tcp::acceptor> acceptor_;
  std::thread thread_;
};

std::mutex endpoints_mutex;
/// Served addresses, by the address asked for; an entry lives while a
/// runtime thread holds it.
std::map<std::string, std::weak_ptr<endpoint>>& endpoints() {
  static auto* m = new std::map<std::string, std::weak_ptr<endpoint>>; // threads may outlive static destructors
  return *m;
}

} // namespace

std::shared_ptr<void> hold_admin_endpoint(const std::string& address) {
  if (address.empty()) return nullptr;
  std::lock_guard lk(endpoints_mutex);
  std::weak_ptr<endpoint>& entry = endpoints()[address];
  if (auto served = entry.lock()) return served;
  try {
    auto served = std::make_shared<endpoint>(address);
    entry = served;
    return served;
  } catch (const std::exception& e) {
    endpoints().erase(address);
    std::cerr << "coop: admin endpoint " << address << ": " << e.what() << "; not served\n";
    return nullptr;
  }
}

} // namespace coop::detail

namespace coop {

std::vector<std::string> admin_addresses() {
  std::vector<std::string> out;
  std::lock_guard lk(detail::endpoints_mutex);
  for (const auto& [address, weak] : detail::endpoints())
    if (auto served = weak.lock()) out.push_back(served->bound());
  return out;
}

} // namespace coop
