#define BOOST_TEST_MODULE coop_fd
// coop::wait_readable / wait_writable / forget_fd (coop/fd.hpp) on
// descriptors coop never opened: pipes, socket pairs, a TCP socket; in
// fibers (timeout, cancel, shield, forget_fd from another fiber or thread,
// 1/2/4 runtime threads, thousands of waiters) and on plain threads.
#include "support.hpp"

#include <coop/fd.hpp>

#include <boost/asio/error.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

/// A pipe whose ends close (after forget_fd) when it goes.
struct pipe_fds {
  int read_end = -1, write_end = -1;
  pipe_fds() {
    int fds[2];
    BOOST_REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
    read_end = fds[0];
    write_end = fds[1];
  }
  ~pipe_fds() {
    for (int fd : {read_end, write_end}) {
      coop::forget_fd(fd);
      ::close(fd);
    }
  }
  pipe_fds(const pipe_fds&) = delete;
  pipe_fds& operator=(const pipe_fds&) = delete;
  // No Boost.Test macro here: fibers of other runtime threads call these,
  // and Boost.Test is not thread-safe. A failure shows as a wrong character.
  void put(char c = 'x') const {
    if (::write(write_end, &c, 1) != 1) std::abort();
  }
  char take() const {
    char c = 0;
    return ::read(read_end, &c, 1) == 1 ? c : '\0';
  }
  /// Fills the pipe until a write would block.
  void fill() const {
    std::vector<char> chunk(65536, 'f');
    while (::write(write_end, chunk.data(), chunk.size()) > 0) {
    }
  }
  void drain() const {
    std::vector<char> chunk(65536);
    while (::read(read_end, chunk.data(), chunk.size()) > 0) {
    }
  }
};

/// Whether `fd` is registered with any epoll instance of this process
/// (/proc/self/fdinfo of each eventpoll descriptor lists a "tfd:" line per
/// registered descriptor).
bool registered_with_epoll(int fd) {
  bool found = false;
  DIR* dir = ::opendir("/proc/self/fd");
  BOOST_REQUIRE(dir);
  while (dirent* d = ::readdir(dir)) {
    std::string name = d->d_name;
    if (name == "." || name == "..") continue;
    char target[256] = {};
    std::string link = "/proc/self/fd/" + name;
    if (::readlink(link.c_str(), target, sizeof target - 1) <= 0) continue;
    if (std::string(target) != "anon_inode:[eventpoll]") continue;
    std::ifstream info("/proc/self/fdinfo/" + name);
    for (std::string line; std::getline(info, line);)
      if (line.rfind("tfd:", 0) == 0 && std::stoi(line.substr(4)) == fd) found = true;
  }
  ::closedir(dir);
  return found;
}

/// Raises the soft limit on open files as far as allowed; returns it.
rlim_t raise_open_files() {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);
  ::getrlimit(RLIMIT_NOFILE, &r);
  return r.rlim_cur;
}

} // namespace

using namespace std::chrono_literals;

// A pipe: the reader parks until another fiber writes; a full pipe parks the
// writer until another fiber drains it.
COOP_TEST_CASE(a_fiber_waits_until_a_pipe_is_readable_or_writable) {
  pipe_fds p;
  bool woke = false;
  auto reader = coop::spawn([&] {
    coop::wait_readable(p.read_end);
    woke = true;
    BOOST_TEST(p.take() == 'a');
  });
  for (int i = 0; i < 20; ++i)
    coop::this_fiber::yield(); // the reader is parked: nothing to read
  BOOST_TEST(!woke);
  p.put('a');
  reader.join();
  BOOST_TEST(woke);

  // Writable at once while there is room; parks once the pipe is full.
  coop::wait_writable(p.write_end);
  p.fill();
  bool wrote = false;
  auto writer = coop::spawn([&] {
    coop::wait_writable(p.write_end);
    wrote = true;
  });
  for (int i = 0; i < 20; ++i)
    coop::this_fiber::yield();
  BOOST_TEST(!wrote);
  p.drain();
  writer.join();
  BOOST_TEST(wrote);
}

// Readiness that is already there returns at once, every time (the
// registration reports edges; a level that was seen before must not be lost).
COOP_TEST_CASE(a_descriptor_that_is_ready_returns_at_once_every_time) {
  pipe_fds p;
  p.put();
  for (int i = 0; i < 3; ++i) {
    bool other_ran = false;
    auto other = coop::spawn([&] { other_ran = true; });
    coop::wait_readable(p.read_end);
    BOOST_TEST(!other_ran); // no wait, no switch
    other.join();
  }
  BOOST_TEST(p.take() == 'x');
}

// A socket pair and a TCP socket (descriptors opened with ::socket, as a C
// library would), and a coop socket's own descriptor (already registered
// with the thread's reactor by Asio).
COOP_TEST_CASE(sockets_of_any_origin) {
  int sv[2];
  BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
  auto reader = coop::spawn([&] {
    coop::wait_readable(sv[0]);
    char c;
    BOOST_TEST(::recv(sv[0], &c, 1, 0) == 1);
  });
  coop::this_fiber::yield();
  BOOST_TEST(::send(sv[1], "s", 1, 0) == 1);
  reader.join();
  for (int fd : sv) {
    coop::forget_fd(fd);
    ::close(fd);
  }

  auto [a, b] = test_support::connected_pair();
  bool checked = false;
  auto waiter = coop::spawn([&] {
    BOOST_TEST(!coop::wait_readable_for(a.socket().native_handle(), 10ms));
    checked = true;
    coop::wait_readable(a.socket().native_handle());
  });
  test_support::yield_until([&] { return checked; });
  b.write_all(boost::asio::buffer("t", 1));
  waiter.join();
  char c;
  BOOST_TEST(a.read_some(boost::asio::buffer(&c, 1)) == 1u);

  // A TCP socket a C library connected by itself.
  coop::net::tcp_listener listener(test_support::loopback());
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(listener.local_endpoint().port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int r = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  BOOST_REQUIRE((r == 0 || errno == EINPROGRESS));
  coop::wait_writable(fd); // the connect completed
  int err = -1;
  socklen_t len = sizeof err;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  BOOST_TEST(err == 0);
  auto served = listener.accept();
  auto echo = coop::spawn([&] { served.write_all(boost::asio::buffer("pong", 4)); });
  coop::wait_readable(fd);
  char buf[8];
  BOOST_TEST(::recv(fd, buf, sizeof buf, 0) == 4);
  echo.join();
  coop::forget_fd(fd);
  ::close(fd);
}

// The registration is made at the first wait and kept (no epoll_ctl per
// wait); forget_fd drops it.
COOP_TEST_CASE(the_registration_is_kept_until_forget_fd) {
  pipe_fds p;
  BOOST_TEST(!registered_with_epoll(p.read_end));
  BOOST_TEST(!coop::wait_readable_for(p.read_end, 1ms));
  BOOST_TEST(registered_with_epoll(p.read_end));
  p.put();
  coop::wait_readable(p.read_end);
  BOOST_TEST(registered_with_epoll(p.read_end));
  coop::forget_fd(p.read_end);
  BOOST_TEST(!registered_with_epoll(p.read_end));
  // A wait that finds the descriptor ready registers nothing; one that has
  // to wait after forget_fd registers it afresh.
  coop::wait_readable(p.read_end);
  BOOST_TEST(!registered_with_epoll(p.read_end));
  p.take();
  BOOST_TEST(!coop::wait_readable_for(p.read_end, 1ms));
  BOOST_TEST(registered_with_epoll(p.read_end));
}

COOP_TEST_CASE(timeout_cancel_and_shield) {
  pipe_fds p;
  test_support::expect_timeout([&] { coop::wait_readable(p.read_end); });
  test_support::expect_cancel([&] { coop::wait_readable(p.read_end); });
  {
    boost::system::error_code ec;
    coop::timeout scope(10ms);
    coop::wait_readable(p.read_end, ec);
    BOOST_CHECK(ec == coop::errc::timed_out);
  }
  // The call's own limit is no error.
  boost::system::error_code ec;
  auto waited = test_support::elapsed([&] { BOOST_TEST(!coop::wait_readable_for(p.read_end, 20ms, ec)); });
  BOOST_TEST(!ec);
  BOOST_TEST(waited >= 20ms);
  BOOST_TEST(!coop::wait_readable_until(p.read_end, std::chrono::steady_clock::now() - 1s));
  // duration::max() means no limit (no overflow): readable once written.
  auto unbounded = coop::spawn([&] { BOOST_TEST(coop::wait_readable_for(p.read_end, std::chrono::hours::max())); });
  coop::this_fiber::yield();
  p.put();
  unbounded.join();
  p.take();

  // A shielded wait goes on through a cancel, and the cancel comes after.
  bool woke = false;
  auto shielded = coop::spawn([&] {
    {
      coop::shield s;
      coop::wait_readable(p.read_end);
      woke = true;
    }
    coop::wait_readable(p.read_end); // still readable, but the cancel is due
  });
  coop::this_fiber::yield();
  shielded.cancel();
  for (int i = 0; i < 10; ++i)
    coop::this_fiber::yield();
  BOOST_TEST(!woke);
  p.put();
  BOOST_CHECK_THROW(shielded.get(), coop::cancelled);
  BOOST_TEST(woke);
}

// A fiber waiting on a descriptor that another fiber forgets (and closes)
// fails with bad_descriptor at once, never hangs; so does one on another
// runtime thread, and a wait on a descriptor that is not open.
BOOST_AUTO_TEST_CASE(forget_fd_wakes_waiters_with_bad_descriptor) {
  coop::runtime rt(2);
  rt.spawn_on(0, [&] {
      int fds[2];
      BOOST_REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
      std::atomic<int> waiting{0};
      boost::system::error_code same_thread, other_thread;
      auto here = coop::spawn([&] {
        ++waiting;
        coop::wait_readable(fds[0], same_thread);
      });
      auto there = rt.spawn_on(1, [&] {
        ++waiting;
        coop::wait_readable(fds[0], other_thread);
      });
      test_support::yield_until([&] { return waiting.load() == 2; });
      for (int i = 0; i < 10; ++i)
        coop::this_fiber::yield();
      std::this_thread::sleep_for(10ms); // the other thread's fiber parks
      auto took = test_support::elapsed([&] {
        coop::forget_fd(fds[0]);
        ::close(fds[0]);
        here.join();
        there.join();
      });
      BOOST_TEST(same_thread == boost::asio::error::bad_descriptor);
      BOOST_TEST(other_thread == boost::asio::error::bad_descriptor);
      BOOST_TEST(took < 5s);
      boost::system::error_code ec;
      coop::wait_readable(fds[0], ec); // closed now
      BOOST_TEST(ec == boost::asio::error::bad_descriptor);
      coop::wait_writable(-1, ec);
      BOOST_TEST(ec == boost::asio::error::bad_descriptor);
      BOOST_CHECK_THROW(coop::wait_readable(fds[0]), boost::system::system_error);
      coop::forget_fd(fds[1]);
      ::close(fds[1]);
    }).get();
}

// A number closed with forget_fd and reused for another descriptor is
// registered afresh on every thread that had it.
BOOST_AUTO_TEST_CASE(a_reused_descriptor_number_is_registered_afresh) {
  coop::runtime rt(2);
  rt.spawn_on(0, [&] {
      for (int round = 0; round < 3; ++round) {
        pipe_fds p;
        for (unsigned t = 0; t < 2; ++t) {
          auto w = rt.spawn_on(t, [&] {
            auto put = coop::spawn([&] { p.put(); });
            coop::wait_readable(p.read_end);
            put.join();
            p.take();
          });
          w.join();
        }
      } // forget_fd + close: the next round's pipe gets the same numbers
    }).get();
}

// On a plain thread: poll, bounded by a blocking scope's timeout.
BOOST_AUTO_TEST_CASE(a_plain_thread_waits_in_poll) {
  pipe_fds p;
  std::thread writer([&] {
    std::this_thread::sleep_for(20ms);
    p.put();
  });
  coop::wait_readable(p.read_end); // no scope needed
  writer.join();
  p.take();
  BOOST_TEST(!coop::wait_readable_for(p.read_end, 10ms));
  coop::blocking_scope scope;
  coop::timeout t(20ms);
  BOOST_CHECK_THROW(coop::wait_readable(p.read_end), coop::timeout_error);
  boost::system::error_code ec;
  BOOST_TEST(!coop::wait_readable_for(p.read_end, 1h, ec));
  BOOST_CHECK(ec == coop::errc::timed_out);
}

// 1, 2 and 4 runtime threads, each with fibers waiting on their own pipes,
// woken from the main fiber in a random order.
BOOST_AUTO_TEST_CASE(waiters_on_every_runtime_thread) {
  for (unsigned threads : runtime_sizes) {
    coop::runtime rt(threads);
    rt.spawn_on(0, [&] {
        constexpr int per_thread = 50;
        std::vector<std::unique_ptr<pipe_fds>> pipes;
        std::vector<coop::task<>> waiters;
        std::atomic<int> parked{0}, woken{0};
        for (unsigned t = 0; t < threads; ++t)
          for (int i = 0; i < per_thread; ++i) {
            pipes.push_back(std::make_unique<pipe_fds>());
            auto* p = pipes.back().get();
            waiters.push_back(rt.spawn_on(t, [p, &parked, &woken] {
              ++parked;
              coop::wait_readable(p->read_end);
              p->take();
              ++woken;
            }));
          }
        test_support::yield_until([&] { return parked.load() == int(pipes.size()); });
        std::vector<std::size_t> order(pipes.size());
        for (std::size_t i = 0; i < order.size(); ++i)
          order[i] = i;
        std::shuffle(order.begin(), order.end(), std::mt19937(threads));
        for (auto i : order)
          pipes[i]->put();
        coop::join_all(waiters);
        BOOST_TEST(woken.load() == int(pipes.size()));
      }).get();
  }
}

// 10,000 fibers, each waiting on its own pipe (as many as the open-file
// limit allows), woken in a random order. (No stall or delay reports: making
// 20,000 descriptors keeps the thread busy on purpose.)
static void ten_thousand_waiters_body();
BOOST_AUTO_TEST_CASE(ten_thousand_waiters_on_their_own_pipes) {
  coop::run_options opts;
  opts.stack_size = 64 * 1024; // 16 KiB overflowed under AddressSanitizer (Boost.Test's checks in each fiber)
  opts.stall_threshold = 0ms;
  opts.scheduling_delay_threshold = 0ms;
  coop::run([] { ten_thousand_waiters_body(); }, opts);
}
static void ten_thousand_waiters_body() {
  const rlim_t limit = raise_open_files();
  const int n = std::min<int>(many_fibers(10000), static_cast<int>((limit - 100) / 2));
  BOOST_TEST_MESSAGE("fibers waiting on their own pipe: " << n << " (open-file limit " << limit << ")");
  BOOST_REQUIRE(n >= 1000);
  std::vector<std::unique_ptr<pipe_fds>> pipes;
  std::vector<coop::task<>> waiters;
  int parked = 0, woken = 0;
  for (int i = 0; i < n; ++i) {
    pipes.push_back(std::make_unique<pipe_fds>());
    auto* p = pipes.back().get();
    waiters.push_back(coop::spawn([p, &parked, &woken] {
      ++parked;
      coop::wait_readable(p->read_end);
      p->take();
      ++woken;
    }));
  }
  test_support::yield_until([&] { return parked == n; });
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i)
    order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(42));
  for (int i : order)
    pipes[i]->put();
  coop::join_all(waiters);
  BOOST_TEST(woken == n);
}

// A regular file is always ready (epoll does not take it; poll says so).
COOP_TEST_CASE(a_regular_file_is_ready) {
  int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  BOOST_REQUIRE(fd >= 0);
  coop::wait_readable(fd);
  coop::forget_fd(fd);
  ::close(fd);
}
