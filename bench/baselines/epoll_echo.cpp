// bench/baselines/epoll_echo.cpp — B1: the floor. A hand-written,
// single-threaded, level-triggered epoll loop: per readiness event one read()
// and the write()s that send it back. No library, no allocation per request.
//
//   echo_baseline_epoll --port N
#include "baseline.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>

namespace {

/// Writes all of `n` bytes; the socket is non-blocking, so on a full send
/// buffer it waits for room with poll() (clients here never let that happen
/// for long). False when the peer is gone.
bool write_all(int fd, const char* data, ssize_t n) {
  for (ssize_t off = 0; off < n;) {
    ssize_t w = ::write(fd, data + off, static_cast<std::size_t>(n - off));
    if (w > 0) {
      off += w;
    } else if (w < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, -1);
    } else {
      return false;
    }
  }
  return true;
}

} // namespace

int main(int argc, char** argv) {
  std::uint16_t port = baseline::parse_port(argc, argv, "echo_baseline_epoll");
  ::signal(SIGPIPE, SIG_IGN);

  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, SOMAXCONN) != 0) {
    std::cerr << "echo_baseline_epoll: cannot listen on port " << port << std::endl;
    return 1;
  }
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);

  // SIGINT and SIGTERM arrive as readable data on a descriptor in the loop.
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
  baseline::announce(ntohs(addr.sin_port));

  std::array<epoll_event, 256> events;
  std::array<char, baseline::buffer_size> buf;
  for (;;) {
    int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == sfd) return 0;
      if (fd == lfd) {
        int c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
        if (c < 0) continue; // gone already, or out of descriptors: the next event retries
        ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        epoll_event cev{};
        cev.events = EPOLLIN;
        cev.data.fd = c;
        ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        continue;
      }
      ssize_t r = ::read(fd, buf.data(), buf.size());
      if (r < 0 && errno == EAGAIN) continue;
      if (r <= 0 || !write_all(fd, buf.data(), r)) ::close(fd); // close() also leaves the epoll set
    }
  }
}
