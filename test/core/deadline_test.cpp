#define BOOST_TEST_MODULE coop_deadline
// Every public `_for` call with `duration::max()`: the deadline saturates
// (no deadline) instead of overflowing into the past, which would make the
// call return at once. Each case completes the wait from another fiber (or
// interrupts it with a short coop::timeout) and checks that the call waited
// for that. And which scope a `timeout_error` names.
#include "support.hpp"

#include <unistd.h>

#include <chrono>
#include <limits>
#include <optional>

namespace {

using hours = std::chrono::hours;
using ns = std::chrono::nanoseconds;
constexpr auto forever = hours::max();

/// Yields a few times: lets the waiting fiber reach its wait first.
void let_others_run() {
  for (int i = 0; i < 3; ++i)
    coop::this_fiber::yield();
}

} // namespace

COOP_TEST_CASE(sleep_for_max_sleeps_until_interrupted) {
  BOOST_CHECK_THROW(
      {
        coop::timeout t(20ms);
        coop::sleep_for(forever);
      },
      coop::timeout_error);
  boost::system::error_code ec;
  {
    coop::timeout t(20ms);
    coop::sleep_for(ns::max(), ec);
  }
  BOOST_TEST((ec == coop::errc::timed_out));
}

COOP_TEST_CASE(timeout_of_max_never_fires) {
  coop::timeout t(forever);
  coop::sleep_for(1ms); // throws when the deadline overflowed into the past
  BOOST_TEST(!t.expired());
}

COOP_TEST_CASE(timeout_error_names_the_scope_that_fired) {
  try {
    coop::timeout t(30ms);
    coop::sleep_for(forever);
    BOOST_FAIL("the sleep returned");
  } catch (const coop::timeout_error& e) {
    BOOST_TEST(e.duration() == std::chrono::nanoseconds(30ms));
    BOOST_TEST(e.innermost());
    BOOST_TEST(std::string(e.what()).find("coop::timeout of 30 ms (the innermost scope)") != std::string::npos,
               e.what());
  }
  try {
    coop::timeout outer(30ms);
    coop::timeout inner(10s);
    coop::sleep_for(forever);
    BOOST_FAIL("the sleep returned");
  } catch (const coop::timeout_error& e) {
    BOOST_TEST(e.duration() == std::chrono::nanoseconds(30ms));
    BOOST_TEST(!e.innermost());
    BOOST_TEST(std::string(e.what()).find("(an outer scope)") != std::string::npos, e.what());
  }
}

COOP_TEST_CASE(task_join_for_max_waits_for_the_task) {
  bool go = false;
  auto t = coop::spawn([&] {
    while (!go)
      coop::this_fiber::yield();
  });
  auto setter = coop::spawn([&] {
    let_others_run();
    go = true;
  });
  BOOST_TEST(t.join_for(forever));
  BOOST_TEST(go);
}

COOP_TEST_CASE(task_group_join_or_cancel_for_max_waits_for_the_members) {
  coop::task_group g;
  bool finished = false;
  g.spawn([&] {
    let_others_run();
    finished = true;
  });
  BOOST_TEST(g.join_or_cancel_for(forever));
  BOOST_TEST(finished); // not cancelled at a deadline in the past
}

COOP_TEST_CASE(pool_join_for_max_waits_for_the_members) {
  coop::pool p(2);
  bool finished = false;
  p.spawn([&] {
     let_others_run();
     finished = true;
   }).detach();
  BOOST_TEST(p.join_for(forever));
  BOOST_TEST(finished);
}

COOP_TEST_CASE(channel_push_for_and_pop_for_max_wait_for_the_peer) {
  coop::channel<int> ch; // unbuffered: a push waits for a pop
  auto consumer = coop::spawn([&] {
    let_others_run();
    int v = 0;
    BOOST_TEST((ch.pop_for(v, forever) == coop::channel_status::success));
    return v;
  });
  BOOST_TEST((ch.push_for(7, forever) == coop::channel_status::success));
  BOOST_TEST(consumer.get() == 7);
  auto producer = coop::spawn([&] {
    let_others_run();
    ch.push(8);
  });
  int v = 0;
  BOOST_TEST((ch.pop_for(v, ns::max()) == coop::channel_status::success));
  BOOST_TEST(v == 8);
}

COOP_TEST_CASE(event_wait_for_max_waits_for_set) {
  coop::event e;
  auto setter = coop::spawn([&] {
    let_others_run();
    e.set();
  });
  BOOST_TEST(e.wait_for(forever));
  boost::system::error_code ec;
  BOOST_TEST(e.wait_for(ns::max(), ec));
  BOOST_TEST(!ec);
}

COOP_TEST_CASE(semaphore_acquire_for_max_waits_for_release) {
  coop::semaphore s(0);
  auto releaser = coop::spawn([&] {
    let_others_run();
    s.release();
  });
  BOOST_TEST(s.acquire_for(forever));
}

COOP_TEST_CASE(mutex_try_lock_for_max_waits_for_unlock) {
  coop::mutex m;
  bool locked = false;
  auto holder = coop::spawn([&] {
    m.lock();
    locked = true;
    let_others_run();
    m.unlock();
  });
  while (!locked)
    coop::this_fiber::yield();
  BOOST_TEST(m.try_lock_for(forever));
  m.unlock();
}

COOP_TEST_CASE(wait_group_wait_for_max_waits_for_done) {
  coop::wait_group wg;
  wg.add();
  auto worker = coop::spawn([&] {
    let_others_run();
    wg.done();
  });
  BOOST_TEST(wg.wait_for(forever));
}

COOP_TEST_CASE(async_result_wait_for_and_get_for_max_wait_for_the_value) {
  coop::async_result<int> r;
  auto setter = coop::spawn([&] {
    let_others_run();
    r.set(5);
  });
  BOOST_TEST(r.wait_for(forever));
  const int* v = r.get_for(ns::max());
  BOOST_TEST_REQUIRE(v);
  BOOST_TEST(*v == 5);
  coop::async_result<void> done;
  auto setter2 = coop::spawn([&] {
    let_others_run();
    done.set();
  });
  BOOST_TEST(done.get_for(forever));
}

COOP_TEST_CASE(wait_readable_for_and_wait_writable_for_max_wait_for_the_descriptor) {
  int fds[2];
  BOOST_TEST_REQUIRE(::pipe(fds) == 0);
  auto writer = coop::spawn([&] {
    let_others_run();
    BOOST_TEST(::write(fds[1], "x", 1) == 1);
  });
  BOOST_TEST(coop::wait_readable_for(fds[0], forever));
  BOOST_TEST(coop::wait_writable_for(fds[1], ns::max()));
  writer.join();
  coop::forget_fd(fds[0]);
  coop::forget_fd(fds[1]);
  ::close(fds[0]);
  ::close(fds[1]);
}

COOP_TEST_CASE(select_after_max_never_fires) {
  coop::channel<int> ch;
  auto producer = coop::spawn([&] {
    let_others_run();
    ch.push(3);
  });
  std::optional<int> v;
  auto r = coop::select(coop::recv(ch, v), coop::after(forever));
  BOOST_TEST(r.index == 0u);
  BOOST_TEST(v.value_or(0) == 3);
}

COOP_TEST_CASE(spawn_later_max_never_starts) {
  bool ran = false;
  auto later = coop::spawn_later(forever, [&] { ran = true; });
  coop::task_group g;
  g.spawn_later(ns::max(), [&] { ran = true; });
  coop::sleep_for(5ms);
  BOOST_TEST(!ran);
  later.cancel();
  g.cancel();
  g.join();
  BOOST_TEST(!ran);
}

COOP_TEST_CASE(tcp_server_stop_max_waits_for_the_connections) {
  coop::net::tcp_server server(coop::net::tcp_listener(test_support::loopback()));
  auto serving = coop::spawn([&] {
    server.serve([](coop::net::tcp_stream s) {
      char c;
      boost::system::error_code ec;
      s.read_some(boost::asio::buffer(&c, 1), ec); // until the client closes
    });
  });
  auto client = coop::net::connect(server.local_endpoint());
  while (server.connections().size() == 0)
    coop::this_fiber::yield();
  auto closer = coop::spawn([&] {
    let_others_run();
    client.close();
  });
  BOOST_TEST(server.stop(forever) == 0u); // nobody cancelled: the drain did not end at once
  serving.join();
}
