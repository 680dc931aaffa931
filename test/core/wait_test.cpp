#define BOOST_TEST_MODULE coop_wait
// The interruption rules of docs/runtime.md, across runtime threads and on
// plain threads: every wait goes through one park path, so a timeout, a
// cancel and a shield mean the same thing for every blocking call.
#include "support.hpp"

#include <boost/asio/read.hpp>

#include <array>
#include <atomic>
#include <optional>
#include <thread>
#include <vector>

namespace {

/// Spins (yielding) until `flag` is set by a fiber of another thread.
void await_flag(const std::atomic<bool>& flag) {
  test_support::yield_until([&] { return flag.load(); });
}

} // namespace

// --- Across runtime threads -------------------------------------------------------

COOP_MT_TEST_CASE(cancel_from_another_thread_interrupts_a_channel_pop) {
  coop::channel<int> ch(0);
  std::atomic<bool> started{false};
  auto popper = rt.spawn_on(rt.size() - 1, [&] {
    started = true;
    return ch.pop();
  });
  await_flag(started);
  popper.cancel();
  BOOST_CHECK_THROW(popper.get(), coop::cancelled);
  // The cancelled pop left no waiter behind: a push finds nobody.
  BOOST_TEST((ch.try_push(1) == coop::channel_status::full));
}

COOP_MT_TEST_CASE(a_shield_protects_a_cross_thread_pop_from_cancel) {
  coop::channel<int> items(0), parked(1);
  auto consumer = rt.spawn_on(rt.size() - 1, [&] {
    std::optional<int> got;
    {
      coop::shield s;
      parked.push(1);
      got = items.pop(); // the cancel below must not end this wait
    }
    boost::system::error_code ec;
    coop::this_fiber::yield(ec); // the first blocking call after the shield
    return std::make_pair(got, ec);
  });
  parked.pop();
  consumer.cancel();
  items.push(42); // delivered although the consumer was cancelled meanwhile
  auto [got, ec] = consumer.get();
  BOOST_TEST(*got == 42);
  BOOST_TEST((ec == coop::errc::cancelled));
}

COOP_MT_TEST_CASE(join_across_threads_honours_timeout_and_cancel) {
  coop::channel<int> release(0);
  auto worker = rt.spawn_on(rt.size() - 1, [&] { return release.pop().value_or(-1); });
  {
    coop::timeout t(10ms);
    BOOST_CHECK_THROW(worker.join(), coop::timeout_error);
  }
  BOOST_TEST(!worker.join_for(5ms)); // its own deadline: false, no exception
  std::atomic<bool> waiting{false};
  auto joiner = rt.spawn_on(rt.size() - 1, [&] {
    waiting = true;
    worker.join();
  });
  await_flag(waiting);
  joiner.cancel();
  BOOST_CHECK_THROW(joiner.get(), coop::cancelled);
  release.push(7);
  BOOST_TEST(worker.get() == 7);
}

COOP_MT_TEST_CASE(select_across_threads_with_a_timer_case) {
  coop::channel<int> a(0), b(0);
  std::optional<int> x, y;
  auto r = coop::select(coop::recv(a, x), coop::recv(b, y), coop::after(5ms));
  BOOST_TEST(r.index == 2u); // nobody sent: the timer case completed
  auto producer = rt.spawn_on(rt.size() - 1, [&] { b.push(9); });
  r = coop::select(coop::recv(a, x), coop::recv(b, y), coop::after(10s));
  BOOST_TEST(r.index == 1u);
  BOOST_TEST(*y == 9);
  producer.join();
}

COOP_MT_TEST_CASE(cancelling_a_fiber_reaches_every_task_group_it_owns_to_any_depth) {
  std::atomic<int> parked{0}, ended{0};
  auto outer = rt.spawn_on(rt.size() - 1, [&] {
    coop::task_group level1;
    for (int i = 0; i < 2; ++i)
      level1.spawn([&] {
        coop::task_group level2;
        for (int j = 0; j < 2; ++j)
          level2.spawn([&] {
            ++parked;
            try {
              coop::sleep_for(10s);
            } catch (const coop::cancelled&) {
              ++ended;
              throw;
            }
          });
        level2.join();
      });
    level1.join();
  });
  test_support::yield_until([&] { return parked.load() == 4; });
  outer.cancel();
  BOOST_CHECK_THROW(outer.get(), coop::cancelled);
  BOOST_TEST(ended.load() == 4);
}

// --- Plain threads ----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(plain_thread_channel_and_join_waits_honour_timeouts) {
  coop::runtime rt(1);
  coop::channel<int> ch(0);
  auto never = rt.spawn_on(0, [&] { ch.pop(); }); // ends when the channel closes
  std::thread plain([&] {
    {
      coop::timeout t(10ms);
      BOOST_CHECK_THROW(never.join(), coop::timeout_error);
    }
    {
      coop::channel<int> full(1);
      full.push(0);
      coop::timeout t(10ms);
      int item = 1;
      boost::system::error_code ec;
      BOOST_TEST((full.push(std::move(item), ec) == coop::channel_status::timeout));
      BOOST_TEST((ec == coop::errc::timed_out));
    }
    coop::channel<int> empty(1);
    int out = 0;
    BOOST_TEST((empty.pop_for(out, 5ms) == coop::channel_status::timeout));
    coop::timeout expired(1ms);
    boost::system::error_code ec;
    coop::sleep_for(5ms, ec);
    BOOST_TEST((ec == coop::errc::timed_out));
  });
  plain.join();
  ch.close();
  never.join();
}

BOOST_AUTO_TEST_CASE(a_plain_thread_waits_for_a_task_of_a_runtime) {
  coop::runtime rt(2);
  auto t = rt.spawn_on(1, [] {
    coop::sleep_for(5ms);
    return 5;
  });
  BOOST_TEST(t.get() == 5);
}

// --- Own deadlines versus outer timeouts --------------------------------------------

COOP_TEST_CASE(a_call_own_deadline_is_a_status_an_outer_timeout_an_exception) {
  coop::channel<int> ch(1);
  int out = 0;
  BOOST_TEST((ch.pop_for(out, 2ms) == coop::channel_status::timeout));
  coop::timeout outer(5ms);
  BOOST_CHECK_THROW(ch.pop_for(out, 10s), coop::timeout_error);
  auto sleeper = coop::spawn([] { coop::sleep_for(10s); });
  BOOST_CHECK_THROW((void)sleeper.join_for(10s), coop::timeout_error);
  sleeper.cancel();
}

COOP_TEST_CASE(a_timeout_created_inside_a_shield_still_applies) {
  auto t = coop::spawn([] {
    coop::shield s;
    coop::timeout inner(5ms);
    coop::sleep_for(10s);
  });
  coop::this_fiber::yield(); // it starts and parks in the sleep
  t.cancel();                // deferred by the shield, but the inner timeout fires
  BOOST_CHECK_THROW(t.get(), coop::timeout_error);
}

COOP_TEST_CASE(task_group_join_or_cancel_for_drains_in_a_cancelled_fiber) {
  bool finished = false;
  auto server = coop::spawn([&] {
    coop::task_group g;
    g.spawn([&] {
      coop::shield s; // a request in progress finishes
      coop::sleep_for(20ms);
      finished = true;
    });
    try {
      coop::sleep_for(10s);
    } catch (const coop::cancelled&) {
      return g.join_or_cancel_for(5s); // clean-up: waits although this fiber is cancelled
    }
    return false;
  });
  coop::this_fiber::yield();
  server.cancel();
  BOOST_TEST(server.get());
  BOOST_TEST(finished);
}

// --- select: closed channels, disabled cases --------------------------------------------

COOP_TEST_CASE(select_disables_a_case_with_a_null_channel) {
  coop::channel<int> a(4), b(4);
  for (int i = 0; i < 3; ++i)
    a.push(i);
  b.push(10);
  b.push(11);
  a.close();
  b.close();
  // A closed channel's case is always ready (Go's rule); the loop switches it
  // off with a null pointer instead of spinning on it.
  coop::channel<int>*pa = &a, *pb = &b;
  std::optional<int> x, y;
  int received = 0, loops = 0;
  while ((pa || pb) && ++loops < 100) {
    x.reset();
    y.reset();
    auto r = coop::select(coop::recv(pa, x), coop::recv(pb, y));
    if (r.status == coop::channel_status::closed)
      (r.index == 0 ? pa : pb) = nullptr;
    else
      ++received;
  }
  BOOST_TEST(received == 5);
  BOOST_TEST(loops == 7); // five items, two closes
  // With every channel case disabled, only the timer can complete.
  auto r = coop::select(coop::recv(pa, x), coop::after(2ms));
  BOOST_TEST(r.index == 1u);
}

COOP_TEST_CASE(select_error_code_comes_last) {
  coop::channel<int> a(0);
  std::optional<int> x;
  boost::system::error_code ec;
  coop::timeout t(2ms);
  auto r = coop::select(coop::recv(a, x), ec);
  BOOST_TEST(!r);
  BOOST_TEST((ec == coop::errc::timed_out));
}

// --- Composed operations --------------------------------------------------------------

COOP_TEST_CASE(composed_operations_on_the_stream_report_coop_errors) {
  coop::net::tcp_listener l(test_support::loopback());
  auto client = coop::spawn([port = l.local_endpoint().port()] { return coop::net::connect("127.0.0.1", port); });
  auto server = l.accept();
  auto c = client.get();
  std::array<char, 8> buf;
  {
    coop::timeout t(5ms);
    BOOST_CHECK_THROW(boost::asio::async_read(server, boost::asio::buffer(buf), coop::yield), coop::timeout_error);
  }
  auto reader = coop::spawn([&] { boost::asio::async_read(server, boost::asio::buffer(buf), coop::yield); });
  coop::this_fiber::yield();
  reader.cancel();
  BOOST_CHECK_THROW(reader.get(), coop::cancelled);
  // The stream still works after both interruptions.
  c.write_all(boost::asio::buffer("12345678", 8));
  BOOST_TEST(boost::asio::async_read(server, boost::asio::buffer(buf), coop::yield) == 8u);
}
