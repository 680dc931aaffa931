// test/hooks/libc_test.cpp — coop::hooks at the level of the libc calls
// themselves, on socket pairs: select, ppoll, the sleeps, dup and close,
// as a C library would make them from a fiber.
#define BOOST_TEST_MODULE coop_hooks_libc
#include "support.hpp"

#include "hooks_support.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <string>

using namespace std::chrono_literals;

namespace {

using hooks_support::hooks_off;

/// A connected pair of Unix stream sockets, closed (through the hooked
/// close) at the end of the scope unless already closed.
struct socket_pair {
  int fd[2] = {-1, -1};
  socket_pair() { BOOST_TEST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fd) == 0); }
  ~socket_pair() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
};

} // namespace

COOP_MT_TEST_CASE(select_parks_the_fiber_until_a_descriptor_is_ready) {
  if (hooks_off()) return;
  socket_pair p;
  std::atomic<bool> selecting{false};
  test_support::turn_counter others; // the thread keeps running other fibers
  auto writer = rt.spawn_on(rt.size() - 1, [&] {
    test_support::yield_until([&] { return selecting.load(); });
    coop::sleep_for(20ms);
    BOOST_TEST(::write(p.fd[1], "x", 1) == 1);
  });
  fd_set r;
  FD_ZERO(&r);
  FD_SET(p.fd[0], &r);
  timeval tv{5, 0};
  selecting = true;
  const int n = ::select(p.fd[0] + 1, &r, nullptr, nullptr, &tv);
  writer.get();
  BOOST_TEST(n == 1);
  BOOST_TEST(FD_ISSET(p.fd[0], &r));
  BOOST_TEST(tv.tv_sec < 5); // the time not slept, as Linux leaves it
  BOOST_TEST(others.turns() > 0);
}

COOP_TEST_CASE(ppoll_and_poll_time_out_without_blocking_the_thread) {
  if (hooks_off()) return;
  socket_pair p;
  test_support::turn_counter others;
  pollfd fds[2] = {{p.fd[0], POLLIN, 0}, {p.fd[1], POLLIN, 0}}; // two descriptors: one park on both
  const timespec t{0, 50'000'000};
  int n = -1;
  const auto took = test_support::elapsed([&] { n = ::ppoll(fds, 2, &t, nullptr); });
  BOOST_TEST(n == 0);
  BOOST_TEST(took >= 50ms);
  const long turns = others.turns();
  BOOST_TEST(turns > 0);
  BOOST_TEST(::poll(fds, 1, 30) == 0);
  BOOST_TEST(others.turns() > turns);
}

COOP_TEST_CASE(the_sleeps_park_and_report_interruptions_as_errno) {
  if (hooks_off()) return;
  test_support::turn_counter others;
  BOOST_TEST(::usleep(20'000) == 0);
  BOOST_TEST(others.turns() > 0);
  const timespec ms30{0, 30'000'000};
  BOOST_TEST(::clock_nanosleep(CLOCK_MONOTONIC, 0, &ms30, nullptr) == 0);
  {
    coop::timeout t(10ms);
    BOOST_TEST(::clock_nanosleep(CLOCK_MONOTONIC, 0, &ms30, nullptr) == ETIMEDOUT); // the error itself, not errno
    BOOST_CHECK_THROW(coop::sleep_for(0ms), coop::timeout_error);
  }
  std::atomic<bool> sleeping{false};
  auto sleeper = coop::spawn([&] {
    sleeping = true;
    const timespec long_one{10, 0};
    const int r = ::nanosleep(&long_one, nullptr);
    return r == -1 ? errno : 0;
  });
  test_support::yield_until([&] { return sleeping.load(); });
  coop::this_fiber::yield();
  sleeper.cancel();
  BOOST_TEST(sleeper.get() == ECANCELED);
}

COOP_TEST_CASE(closing_a_descriptor_wakes_the_fiber_that_waits_on_it) {
  if (hooks_off()) return;
  socket_pair p;
  std::atomic<bool> reading{false};
  auto reader = coop::spawn([&] {
    char c;
    reading = true;
    const ssize_t r = ::read(p.fd[0], &c, 1);
    return r == -1 ? errno : 0;
  });
  test_support::yield_until([&] { return reading.load(); });
  coop::this_fiber::yield();
  const auto took = test_support::elapsed([&] {
    ::close(p.fd[0]);
    p.fd[0] = -1;
    BOOST_TEST(reader.get() == EBADF);
  });
  BOOST_TEST(took < 50ms * hooks_support::slowdown);
}

COOP_TEST_CASE(a_duplicate_keeps_the_callers_view_of_o_nonblock) {
  if (hooks_off()) return;
  socket_pair p;
  BOOST_TEST(::write(p.fd[1], "ab", 2) == 2);
  char c;
  BOOST_TEST(::read(p.fd[0], &c, 1) == 1); // the hooks make it non-blocking underneath
  const int d = ::dup(p.fd[0]);
  BOOST_TEST_REQUIRE(d >= 0);
  BOOST_TEST((::fcntl(d, F_GETFL) & O_NONBLOCK) == 0); // as the caller left it
  BOOST_TEST(::read(d, &c, 1) == 1);
  BOOST_TEST(c == 'b');
  ::close(d);
}

COOP_TEST_CASE(with_coop_hooks_0_a_sleep_blocks_the_thread) {
  if (!hooks_off()) return; // (the run with COOP_HOOKS=0)
  test_support::turn_counter others;
  coop::this_fiber::yield();
  const long before = others.turns();
  ::usleep(20'000);
  BOOST_TEST(others.turns() == before); // nothing else ran: libc's usleep
}
