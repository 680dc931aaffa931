#define BOOST_TEST_MODULE coop_task_extras
#include "support.hpp"

#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

// ---- spawn_later ----

COOP_TEST_CASE(spawn_later_runs_the_function_after_the_delay) {
  auto t0 = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point ran_at{};
  auto t = coop::spawn_later(30ms, [&] {
    ran_at = std::chrono::steady_clock::now();
    return 5;
  });
  BOOST_TEST(!t.done());
  BOOST_TEST(t.get() == 5);
  BOOST_TEST((ran_at - t0 >= 30ms));
}

COOP_TEST_CASE(spawn_later_does_not_block_the_spawning_fiber) {
  bool ran = false;
  auto t = coop::spawn_later(20ms, [&] { ran = true; });
  coop::this_fiber::yield();
  BOOST_TEST(!ran); // still waiting
  t.join();
  BOOST_TEST(ran);
}

COOP_TEST_CASE(spawn_later_cancelled_before_it_starts_never_runs) {
  bool ran = false;
  // Cancelled while sleeping.
  auto sleeping = coop::spawn_later(10s, [&] { ran = true; });
  coop::this_fiber::yield(); // it starts sleeping
  sleeping.cancel();
  auto took = test_support::elapsed([&] { BOOST_CHECK_THROW(sleeping.get(), coop::cancelled); });
  BOOST_TEST((took < 10s));
  // Cancelled before its fiber was ever scheduled.
  auto unborn = coop::spawn_later(1ms, [&] { ran = true; });
  unborn.cancel();
  BOOST_CHECK_THROW(unborn.get(), coop::cancelled);
  coop::sleep_for(5ms);
  BOOST_TEST(!ran);
}

COOP_TEST_CASE(spawn_later_with_no_delay_runs_like_spawn) {
  auto t = coop::spawn_later(0ms, [] { return std::string("now"); });
  BOOST_TEST(t.get() == "now");
  auto neg = coop::spawn_later(-5ms, [] { return 1; });
  BOOST_TEST(neg.get() == 1);
}

COOP_TEST_CASE(spawn_later_rethrows_the_function_exception) {
  auto t = coop::spawn_later(1ms, []() -> int { throw std::runtime_error("late"); });
  BOOST_CHECK_THROW(t.get(), std::runtime_error);
}

COOP_MT_TEST_CASE(spawn_later_cancelled_from_another_runtime_thread) {
  std::atomic<bool> ran{false};
  std::optional<coop::task<void>> later;
  std::atomic<bool> created{false};
  auto owner = rt.spawn_on(1 % rt.size(), [&] {
    later.emplace(coop::spawn_later(10s, [&] { ran = true; }));
    created = true;
  });
  owner.get();
  BOOST_TEST(created.load());
  later->cancel();
  BOOST_CHECK_THROW(later->get(), coop::cancelled);
  BOOST_TEST(!ran.load());
}

COOP_TEST_CASE(task_group_spawn_later_members_cancelled_before_start_never_run) {
  int early = 0, late = 0;
  coop::task_group g;
  g.spawn_later(1ms, [&] { ++early; });
  g.spawn_later(10s, [&] { ++late; });
  BOOST_TEST(g.size() == 2u);
  test_support::yield_until([&] { return early == 1; });
  BOOST_TEST(g.size() == 1u);
  g.cancel();
  g.join();
  BOOST_TEST(late == 0);
  BOOST_TEST(g.empty());
}

// ---- this_fiber::set_name / name ----

COOP_TEST_CASE(fiber_names_are_per_fiber) {
  BOOST_TEST(coop::this_fiber::name().empty());
  coop::this_fiber::set_name("main");
  auto child = coop::spawn([] {
    std::string before = coop::this_fiber::name(); // not inherited
    coop::this_fiber::set_name("conn 42");
    coop::this_fiber::yield();
    return before + "|" + coop::this_fiber::name();
  });
  coop::this_fiber::yield();
  BOOST_TEST(coop::this_fiber::name() == "main"); // the child's name is its own
  BOOST_TEST(child.get() == "|conn 42");
  coop::this_fiber::set_name("");
  BOOST_TEST(coop::this_fiber::name().empty());
}

COOP_MT_TEST_CASE(fiber_names_on_every_runtime_thread) {
  std::vector<coop::task<bool>> fibers;
  for (int i = 0; i < 8; ++i)
    fibers.push_back(rt.spawn_on(i % rt.size(), [i] {
      std::string mine = "fiber " + std::to_string(i);
      coop::this_fiber::set_name(mine);
      for (int k = 0; k < 20; ++k) {
        coop::sleep_for(std::chrono::microseconds(100 * (i + 1)));
        if (coop::this_fiber::name() != mine) return false;
      }
      return true;
    }));
  for (auto& f : fibers)
    BOOST_TEST(f.get());
}

BOOST_AUTO_TEST_CASE(a_plain_thread_has_a_name_of_its_own) {
  std::string seen_in_other;
  coop::this_fiber::set_name("main thread");
  std::thread other([&] {
    seen_in_other = coop::this_fiber::name();
    coop::this_fiber::set_name("worker");
  });
  other.join();
  BOOST_TEST(seen_in_other.empty());
  BOOST_TEST(coop::this_fiber::name() == "main thread");
  coop::this_fiber::set_name("");
}

// ---- fiber_local ----

namespace {
/// Counts live instances, to check that every value is destroyed once.
struct counted {
  static inline std::atomic<int> live{0};
  int value = 0;
  counted() { ++live; }
  counted(const counted&) = delete;
  ~counted() { --live; }
};
} // namespace

COOP_TEST_CASE(fiber_local_gives_each_fiber_its_own_default_value) {
  coop::fiber_local<int> x;
  x.get() = 1;
  auto a = coop::spawn([&] {
    int first = x.get(); // default-constructed here
    x.get() = 10;
    coop::this_fiber::yield();
    return first * 1000 + x.get();
  });
  auto b = coop::spawn([&] {
    x.get() = 20;
    coop::this_fiber::yield();
    return x.get();
  });
  BOOST_TEST(a.get() == 10);
  BOOST_TEST(b.get() == 20);
  BOOST_TEST(x.get() == 1);
}

COOP_TEST_CASE(fiber_local_values_are_destroyed_when_their_fiber_ends) {
  coop::fiber_local<counted> x;
  int before = counted::live;
  auto t = coop::spawn([&] {
    x.get().value = 3;
    coop::sleep_for(1ms);
  });
  test_support::yield_until([&] { return counted::live == before + 1; });
  t.join(); // the value is gone before join returns
  BOOST_TEST(counted::live == before);
}

COOP_TEST_CASE(fiber_local_destroyed_before_its_fibers_leaves_their_values_to_them) {
  int before = counted::live;
  auto x = std::make_unique<coop::fiber_local<counted>>();
  bool go_on = false;
  auto t = coop::spawn([&, raw = x.get()] {
    raw->get().value = 7;
    test_support::yield_until([&] { return go_on; });
    // raw is dangling now; the value lives on, unreachable, until the fiber ends.
  });
  test_support::yield_until([&] { return counted::live == before + 1; });
  x.reset();
  coop::fiber_local<counted> y; // a new one never sees the old value
  BOOST_TEST(y.get().value == 0);
  go_on = true;
  t.join();
  BOOST_TEST(counted::live == before + 1); // only y's value (this fiber's) remains
}

COOP_TEST_CASE(fiber_local_values_of_cancelled_and_failing_fibers_are_destroyed) {
  coop::fiber_local<counted> x;
  int before = counted::live;
  auto cancelled = coop::spawn([&] {
    x.get();
    coop::sleep_for(10s);
  });
  auto failing = coop::spawn([&] {
    x.get();
    throw std::runtime_error("x");
  });
  test_support::yield_until([&] { return failing.done(); });
  BOOST_TEST(counted::live == before + 1); // the failed fiber's value is gone, the sleeper's is not
  cancelled.cancel();
  cancelled.join();
  BOOST_CHECK_THROW(failing.get(), std::runtime_error);
  BOOST_TEST(counted::live == before);
}

COOP_MT_TEST_CASE(fiber_local_across_runtime_threads) {
  static coop::fiber_local<int> counter; // shared by every fiber of every thread
  std::vector<coop::task<bool>> fibers;
  for (int i = 0; i < 16; ++i)
    fibers.push_back(rt.spawn_on(i % rt.size(), [i] {
      for (int k = 0; k < 100; ++k) {
        counter.get() += i;
        coop::this_fiber::yield();
      }
      return counter.get() == 100 * i;
    }));
  for (auto& f : fibers)
    BOOST_TEST(f.get());
}

BOOST_AUTO_TEST_CASE(fiber_local_on_a_plain_thread_is_per_thread) {
  coop::fiber_local<counted> x;
  int before = counted::live;
  x.get().value = 1;
  int in_other = -1;
  std::thread other([&] {
    in_other = x.get().value; // its own value
    x.get().value = 2;
  });
  other.join();
  BOOST_TEST(in_other == 0);
  BOOST_TEST(x.get().value == 1);
  BOOST_TEST(counted::live == before + 1); // the other thread's value died with it
}

// ---- task_group::wait_size_below ----

COOP_TEST_CASE(wait_size_below_returns_when_a_member_leaves) {
  coop::task_group g;
  coop::channel<int> release(0);
  for (int i = 0; i < 3; ++i)
    g.spawn([&] { (void)release.pop(); });
  g.wait_size_below(4); // room already: returns at once
  bool returned = false;
  auto waiter = coop::spawn([&] {
    g.wait_size_below(3);
    returned = true;
  });
  coop::sleep_for(5ms);
  BOOST_TEST(!returned);
  release.push(1);
  waiter.join();
  BOOST_TEST(returned);
  BOOST_TEST(g.size() == 2u);
  release.close();
  g.join();
}

COOP_TEST_CASE(wait_size_below_times_out_and_is_cancellable) {
  coop::task_group g;
  coop::channel<int> release(0);
  g.spawn([&] { (void)release.pop(); });
  {
    coop::timeout t(20ms);
    BOOST_CHECK_THROW(g.wait_size_below(1), coop::timeout_error);
  }
  auto waiter = coop::spawn([&] { g.wait_size_below(1); });
  coop::this_fiber::yield();
  waiter.cancel();
  BOOST_CHECK_THROW(waiter.get(), coop::cancelled);
  boost::system::error_code ec;
  coop::timeout t(0ms);
  g.wait_size_below(5, ec); // fails at entry even with room
  BOOST_TEST((ec == coop::errc::timed_out));
  BOOST_CHECK_THROW(g.wait_size_below(0), coop::usage_error);
  release.close();
}

// ---- serve_options::max_connections ----

namespace {
void ping(coop::net::tcp_stream& s, char c) {
  s.write_all(boost::asio::buffer(&c, 1));
  char back = 0;
  s.read_exact(boost::asio::buffer(&back, 1));
  BOOST_TEST(back == c);
}
} // namespace

COOP_TEST_CASE(serve_stops_accepting_at_max_connections_and_resumes_below) {
  coop::timeout bound(10s); // a broken limit fails the test instead of hanging it
  coop::net::tcp_listener l(test_support::loopback());
  auto port = l.local_endpoint().port();
  coop::task_group connections;
  int accepted = 0;
  auto server = coop::spawn([&] {
    coop::net::serve(
        l, connections,
        [&](coop::net::tcp_stream c) {
          ++accepted;
          std::array<char, 1> b;
          boost::system::error_code ec;
          for (;;) {
            c.read_exact(boost::asio::buffer(b), ec);
            if (ec) return;
            c.write_all(boost::asio::buffer(b), ec);
            if (ec) return;
          }
        },
        coop::net::serve_options{.max_connections = 2});
    return true; // serve returns normally once cancelled, even while full
  });
  auto a = coop::net::connect("127.0.0.1", port);
  auto b = coop::net::connect("127.0.0.1", port);
  ping(a, 'a');
  ping(b, 'b');
  auto c = coop::net::connect("127.0.0.1", port); // the kernel completes it into the backlog
  c.write_all(boost::asio::buffer("c", 1));
  {
    coop::timeout t(100ms);
    char back = 0;
    BOOST_CHECK_THROW(c.read_exact(boost::asio::buffer(&back, 1)), coop::timeout_error);
  }
  BOOST_TEST(accepted == 2);
  BOOST_TEST(connections.size() == 2u);
  a.close(); // its handler ends: serve accepts the third
  char back = 0;
  c.read_exact(boost::asio::buffer(&back, 1));
  BOOST_TEST(back == 'c');
  BOOST_TEST(accepted == 3);
  ping(b, 'B');
  server.cancel(); // full again (b and c): serve waits for room, and stops
  BOOST_TEST(server.get());
  b.close();
  c.close();
  connections.join();
}
