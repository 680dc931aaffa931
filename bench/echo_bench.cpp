// bench/echo_bench.cpp — echo servers to compare system calls and CPU per request:
// coop fibers against two baselines measured in the same run (a raw epoll loop
// and Asio callbacks), plus a coop client that drives them.
//
//   echo_bench server coop|epoll|asio     prints its port, serves until SIGINT/SIGTERM
//   echo_bench client PORT CONNECTIONS REQUESTS SIZE
#include <coop/coop.hpp>

#include <boost/asio/signal_set.hpp>

#include <arpa/inet.h>
#include <csignal>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr std::size_t buffer_size = 4096;

int coop_server() {
  return coop::run([] {
    coop::net::tcp_listener listener({asio::ip::make_address("127.0.0.1"), 0});
    std::cout << listener.local_endpoint().port() << std::endl;
    auto acceptor = coop::spawn([&] {
      for (;;)
        coop::spawn([c = listener.accept()]() mutable {
          std::array<char, buffer_size> buf;
          boost::system::error_code ec;
          for (;;) {
            std::size_t n = c.read_some(asio::buffer(buf), ec);
            if (ec) return;
            c.write_all(asio::buffer(buf.data(), n), ec);
            if (ec) return;
          }
        }).detach();
    });
    coop::wait_for_signal({SIGINT, SIGTERM});
    acceptor.cancel();
    acceptor.join(); // it uses the listener: let it finish first
    return 0;
  });
}

// Asio with completion handlers: the reactor everybody knows.
class asio_session : public std::enable_shared_from_this<asio_session> {
public:
  explicit asio_session(tcp::socket s) : socket_(std::move(s)) {}
  void read() {
    socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](auto ec, std::size_t n) {
      if (!ec) self->write(n);
    });
  }

private:
  void write(std::size_t n) {
    asio::async_write(socket_, asio::buffer(buf_.data(), n), [self = shared_from_this()](auto ec, std::size_t) {
      if (!ec) self->read();
    });
  }
  tcp::socket socket_;
  std::array<char, buffer_size> buf_;
};

void asio_accept(tcp::acceptor& a) {
  a.async_accept([&a](boost::system::error_code ec, tcp::socket s) {
    if (ec) return;
    s.set_option(tcp::no_delay(true));
    std::make_shared<asio_session>(std::move(s))->read();
    asio_accept(a);
  });
}

int asio_server() {
  asio::io_context io(1);
  tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  std::cout << a.local_endpoint().port() << std::endl;
  asio_accept(a);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](auto, int) { io.stop(); });
  io.run();
  return 0;
}

// A hand-written level-triggered epoll loop: one read per readiness event,
// one write (clients here never fill the send buffer).
int epoll_server() {
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 1024) != 0) return 1;
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::cout << ntohs(addr.sin_port) << std::endl;

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  int sfd = ::signalfd(-1, &mask, SFD_NONBLOCK);
  int ep = ::epoll_create1(0);
  for (int fd : {lfd, sfd}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  std::array<epoll_event, 256> events;
  std::array<char, buffer_size> buf;
  for (bool stop = false; !stop;) {
    int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == sfd) {
        stop = true;
        break;
      }
      if (fd == lfd) {
        int c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
        if (c < 0) continue;
        int one = 1;
        ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        epoll_event cev{};
        cev.events = EPOLLIN;
        cev.data.fd = c;
        ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        continue;
      }
      ssize_t r = ::read(fd, buf.data(), buf.size());
      if (r <= 0) {
        ::close(fd);
        continue;
      }
      for (ssize_t off = 0; off < r;) {
        ssize_t w = ::write(fd, buf.data() + off, static_cast<std::size_t>(r - off));
        if (w <= 0) break;
        off += w;
      }
    }
  }
  return 0;
}

int client(std::uint16_t port, int connections, long requests, std::size_t size) {
  return coop::run([&] {
    std::atomic<long> failures{0};
    std::vector<coop::task<void>> tasks;
    long per = requests / connections;
    for (int i = 0; i < connections; ++i)
      tasks.push_back(coop::spawn([&] {
        boost::system::error_code ec;
        auto s = coop::net::connect("127.0.0.1", port);
        std::string msg(size, 'x'), back(size, '\0');
        for (long r = 0; r < per; ++r) {
          s.write_all(asio::buffer(msg), ec);
          if (!ec) s.read_exact(asio::buffer(back), ec);
          if (ec || back != msg) {
            ++failures;
            return;
          }
        }
      }));
    coop::join_all(tasks);
    std::cout << "requests " << per * connections << " failures " << failures.load() << std::endl;
    return failures.load() == 0 ? 0 : 1;
  });
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 2 && args[0] == "server") {
    if (args[1] == "coop") return coop_server();
    if (args[1] == "epoll") return epoll_server();
    if (args[1] == "asio") return asio_server();
  }
  if (args.size() == 5 && args[0] == "client")
    return client(static_cast<std::uint16_t>(std::stoi(args[1])), std::stoi(args[2]), std::stol(args[3]),
                  std::stoul(args[4]));
  std::cerr << "usage: echo_bench server coop|epoll|asio | echo_bench client PORT CONNECTIONS REQUESTS SIZE\n";
  return 2;
}
