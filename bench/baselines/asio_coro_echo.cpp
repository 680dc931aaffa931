// bench/baselines/asio_coro_echo.cpp — B3: Asio with C++20 coroutines
// (co_spawn, use_awaitable): straight-line code per connection like coop's,
// but stackless, every suspension point marked with co_await. One io_context
// on one thread.
//
//   echo_baseline_asio_coro --port N
#include "baseline.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <csignal>

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;

namespace {

awaitable<void> echo(tcp::socket socket) {
  // The coroutine frame holds the buffer, as a fiber's stack holds coop's.
  std::array<char, baseline::buffer_size> buf;
  boost::system::error_code ec;
  auto token = asio::redirect_error(use_awaitable, ec);
  for (;;) {
    std::size_t n = co_await socket.async_read_some(asio::buffer(buf), token);
    if (ec) co_return;
    co_await asio::async_write(socket, asio::buffer(buf.data(), n), token);
    if (ec) co_return;
  }
}

awaitable<void> listen(tcp::acceptor& acceptor) {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket s = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) continue;
    s.set_option(tcp::no_delay(true));
    asio::co_spawn(acceptor.get_executor(), echo(std::move(s)), asio::detached);
  }
}

} // namespace

int main(int argc, char** argv) {
  std::uint16_t port = baseline::parse_port(argc, argv, "echo_baseline_asio_coro");
  ::signal(SIGPIPE, SIG_IGN);
  asio::io_context io(1);
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), port});
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code, int) { io.stop(); });
  asio::co_spawn(io, listen(acceptor), asio::detached);
  baseline::announce(acceptor.local_endpoint().port());
  io.run();
  return 0;
}
