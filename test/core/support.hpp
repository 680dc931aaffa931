// test/core/support.hpp — run test bodies inside a coop runtime, as users write code.
#pragma once

#include <coop/coop.hpp>

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <string>

#include <linux/sockios.h>
#include <sys/ioctl.h>

using namespace std::chrono_literals;

/// A test case whose body runs in a fiber of a fresh single-thread runtime.
#define COOP_TEST_CASE(name)                                                                                           \
  static void name##_body();                                                                                           \
  BOOST_AUTO_TEST_CASE(name) {                                                                                         \
    coop::run([] { name##_body(); });                                                                                  \
  }                                                                                                                    \
  static void name##_body()

/// How many fibers a test that makes thousands of them should make instead:
/// ThreadSanitizer (scripts/tsan) keeps a state of its own for every fiber
/// (Boost.Context's BOOST_USE_TSAN creates one per context) and slows down
/// with their number: with 10,000, core.task ran past its 120 s limit there.
inline constexpr int many_fibers(int n) {
#ifdef __SANITIZE_THREAD__
  return n < 1'000 ? n : 1'000;
#else
  return n;
#endif
}

/// Thread counts that multi-thread tests run with.
inline constexpr unsigned runtime_sizes[] = {1, 2, 4};

/// A test case whose body runs once on a runtime of each size in
/// `runtime_sizes` (as marl runs its scheduler tests over several worker
/// counts): the body runs in a fiber of thread 0 and gets the runtime, to
/// place fibers with `rt.spawn_on(i % rt.size(), ...)`. The runtime's
/// destructor checks that every fiber ended.
#define COOP_MT_TEST_CASE(name)                                                                                        \
  static void name##_body(coop::runtime& rt);                                                                          \
  BOOST_AUTO_TEST_CASE(name) {                                                                                         \
    for (unsigned threads : runtime_sizes) {                                                                           \
      BOOST_TEST_CONTEXT("runtime threads: " << threads) {                                                             \
        coop::runtime rt(threads);                                                                                     \
        rt.spawn_on(0, [&rt] { name##_body(rt); }).get();                                                              \
      }                                                                                                                \
    }                                                                                                                  \
  }                                                                                                                    \
  static void name##_body(coop::runtime& rt)

namespace test_support {

inline boost::asio::ip::tcp::endpoint loopback() {
  return {boost::asio::ip::make_address("127.0.0.1"), 0};
}

/// A connected pair of streams on the calling runtime thread.
struct stream_pair {
  coop::net::tcp_stream client;
  coop::net::tcp_stream server;
};

inline stream_pair connected_pair() {
  coop::net::tcp_listener l(loopback());
  auto port = l.local_endpoint().port();
  auto c = coop::spawn([port] { return coop::net::connect("127.0.0.1", port); });
  auto s = l.accept();
  return {c.get(), std::move(s)};
}

/// Lets the other fibers of this thread run until `cond()` holds (bounded:
/// fails the test after 10 s). Replaces sleeps as a way to order fibers.
template <class Cond> void yield_until(Cond cond) {
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > give_up) {
      BOOST_FAIL("yield_until: condition never held");
      return;
    }
    coop::this_fiber::yield();
  }
}

/// Bytes the kernel holds in `socket`'s send queue, not yet acknowledged by
/// the peer: more than 0 while a writer floods a peer that does not read.
template <class Socket> int unsent_bytes(Socket& socket) {
  int n = 0;
  ::ioctl(socket.native_handle(), SIOCOUTQ, &n);
  return n;
}

/// Another fiber of the calling thread that yields in a loop while this
/// object lives, counting its turns: how often the other fibers got to run.
class turn_counter {
public:
  turn_counter()
      : fiber_(coop::spawn([this] {
          while (running_) {
            ++turns_;
            coop::this_fiber::yield();
          }
        })) {
    coop::this_fiber::yield(); // it is running
  }
  ~turn_counter() {
    running_ = false;
    fiber_.join();
  }
  turn_counter(const turn_counter&) = delete;
  turn_counter& operator=(const turn_counter&) = delete;
  long turns() const { return turns_; }

private:
  bool running_ = true;
  long turns_ = 0;
  coop::task<> fiber_;
};

/// Parses 1,600 pipelined lines, all already in `buffer`, with
/// `stream.read_until`: each comes back at once, and the reader yields about
/// once per direct-I/O budget (16 calls) rather than once per call, yet often
/// enough that another fiber of the thread runs.
template <class Stream> void check_buffered_read_until_yields_rarely(Stream& stream, std::string& buffer) {
  constexpr int lines = 1600;
  for (int i = 0; i < lines; ++i)
    buffer += "PING\r\n";
  turn_counter ticker; // another fiber of this thread, counting its turns
  long before = ticker.turns();
  for (int i = 0; i < lines; ++i) {
    std::size_t n = stream.read_until(buffer, "\r\n");
    BOOST_TEST_REQUIRE(n == 6u);
    buffer.erase(0, n);
  }
  long during = ticker.turns() - before;
  BOOST_TEST(buffer.empty());
  BOOST_TEST(during <= lines / 4, "the reader yielded " << during << " times in " << lines << " buffered lines");
  BOOST_TEST(during >= lines / 32, "the other fiber ran " << during << " times during " << lines << " lines");
}

/// Runs `blocking` in a fiber under a 20 ms timeout; checks that it fails
/// with timed_out.
template <class F> void expect_timeout(F blocking) {
  auto t = coop::spawn([&] {
    coop::timeout scope(20ms);
    blocking();
  });
  BOOST_CHECK_THROW(t.get(), coop::timeout_error);
}

/// Runs `blocking` in a fiber and cancels it from this one while it waits
/// (not at its entry check); checks that it fails with cancelled and does
/// not go on.
template <class F> void expect_cancel(F blocking) {
  bool started = false, reached_after = false;
  auto t = coop::spawn([&] {
    started = true;
    blocking(); // parks before this fiber runs again (same thread)
    reached_after = true;
  });
  yield_until([&] { return started; });
  t.cancel();
  BOOST_CHECK_THROW(t.get(), coop::cancelled);
  BOOST_TEST(!reached_after);
}

/// Elapsed time of `fn`, for assertions about ordering (never about speed).
template <class F> std::chrono::steady_clock::duration elapsed(F&& fn) {
  auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::steady_clock::now() - t0;
}

} // namespace test_support
