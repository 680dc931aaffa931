// bench/baselines/asio_callback_echo.cpp — B2: Asio with completion handlers,
// the reactor style most C++ network code is written in. One io_context on
// one thread; a session object per connection kept alive by its handlers.
//
//   echo_baseline_asio --port N
#include "baseline.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <csignal>
#include <memory>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

class session : public std::enable_shared_from_this<session> {
public:
  explicit session(tcp::socket s) : socket_(std::move(s)) {}

  void read() {
    socket_.async_read_some(asio::buffer(buf_),
                            [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                              if (!ec) self->write(n);
                            });
  }

private:
  void write(std::size_t n) {
    asio::async_write(socket_, asio::buffer(buf_.data(), n),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (!ec) self->read();
                      });
  }

  tcp::socket socket_;
  std::array<char, baseline::buffer_size> buf_;
};

void accept(tcp::acceptor& acceptor) {
  acceptor.async_accept([&acceptor](boost::system::error_code ec, tcp::socket s) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      s.set_option(tcp::no_delay(true));
      std::make_shared<session>(std::move(s))->read();
    }
    accept(acceptor);
  });
}

} // namespace

int main(int argc, char** argv) {
  std::uint16_t port = baseline::parse_port(argc, argv, "echo_baseline_asio");
  ::signal(SIGPIPE, SIG_IGN);
  asio::io_context io(1); // one thread: Asio may skip its locks
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), port});
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code, int) { io.stop(); });
  accept(acceptor);
  baseline::announce(acceptor.local_endpoint().port());
  io.run();
  return 0;
}
