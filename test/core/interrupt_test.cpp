#define BOOST_TEST_MODULE coop_interrupt
// Timeouts and cancellation of every kind of blocking call.
#include "support.hpp"

#include <array>

namespace {

using test_support::connected_pair;

using test_support::expect_cancel;
using test_support::expect_timeout;

} // namespace

COOP_TEST_CASE(timeout_interrupts_sleep) {
  expect_timeout([] { coop::sleep_for(10s); });
}
COOP_TEST_CASE(cancel_interrupts_sleep) {
  expect_cancel([] { coop::sleep_for(10s); });
}

COOP_TEST_CASE(timeout_and_cancel_interrupt_read_some) {
  auto p = connected_pair();
  std::array<char, 16> buf;
  expect_timeout([&] { p.server.read_some(boost::asio::buffer(buf)); });
  expect_cancel([&] { p.server.read_some(boost::asio::buffer(buf)); });
  // The stream stays usable after an interrupted read.
  p.client.write_all(boost::asio::buffer("hi", 2));
  BOOST_TEST(p.server.read_some(boost::asio::buffer(buf)) == 2u);
}

COOP_TEST_CASE(timeout_and_cancel_interrupt_read_exact_and_read_until) {
  auto p = connected_pair();
  std::array<char, 16> buf;
  std::string line;
  expect_timeout([&] { p.server.read_exact(boost::asio::buffer(buf)); });
  expect_cancel([&] { p.server.read_exact(boost::asio::buffer(buf)); });
  expect_timeout([&] { p.server.read_until(line, "\n"); });
  expect_cancel([&] { p.server.read_until(line, "\n"); });
}

COOP_TEST_CASE(timeout_and_cancel_interrupt_write_all_to_a_peer_that_does_not_read) {
  auto p = connected_pair();
  std::string big(64 << 20, 'x'); // more than the socket buffers hold
  expect_timeout([&] { p.client.write_all(boost::asio::buffer(big)); });
  auto q = connected_pair();
  expect_cancel([&] { q.client.write_all(boost::asio::buffer(big)); });
}

COOP_TEST_CASE(timeout_and_cancel_interrupt_accept) {
  coop::net::tcp_listener l(test_support::loopback());
  expect_timeout([&] { l.accept(); });
  expect_cancel([&] { l.accept(); });
}

COOP_TEST_CASE(timeout_and_cancel_interrupt_channel_pop_and_push) {
  coop::channel<int> empty(1);
  expect_timeout([&] { empty.pop(); });
  expect_cancel([&] { empty.pop(); });
  coop::channel<int> full(1);
  full.push(1);
  expect_timeout([&] { full.push(2); });
  expect_cancel([&] { full.push(2); });
  coop::channel<int> rendezvous(0);
  expect_timeout([&] { rendezvous.push(3); });
  // Nothing was lost or duplicated by the failed pushes.
  BOOST_TEST(full.size() == 1u);
  BOOST_TEST(*full.try_pop() == 1);
  BOOST_TEST(!full.try_pop());
}

COOP_TEST_CASE(timeout_and_cancel_interrupt_join) {
  auto sleeper = coop::spawn([] { coop::sleep_for(200ms); });
  expect_timeout([&] { sleeper.join(); });
  expect_cancel([&] { sleeper.join(); });
  sleeper.cancel();
  sleeper.join();
}

COOP_TEST_CASE(timeout_and_cancel_interrupt_yield) {
  expect_timeout([] {
    for (;;)
      coop::this_fiber::yield();
  });
  expect_cancel([] {
    for (;;)
      coop::this_fiber::yield();
  });
}

COOP_TEST_CASE(error_code_forms_report_instead_of_throwing) {
  coop::net::tcp_listener l(test_support::loopback());
  boost::system::error_code ec;
  {
    coop::timeout t(10ms);
    l.accept(ec);
  }
  BOOST_TEST((ec == coop::errc::timed_out));
  coop::channel<int> full(0);
  {
    coop::timeout t(5ms);
    int item = 1;
    BOOST_TEST((full.push(std::move(item), ec) == coop::channel_status::timeout));
    BOOST_TEST((ec == coop::errc::timed_out));
    BOOST_TEST(!full.pop(ec));
    BOOST_TEST((ec == coop::errc::timed_out));
  }
  auto t = coop::spawn([&] {
    boost::system::error_code e;
    coop::sleep_for(10s, e);
    return e;
  });
  coop::this_fiber::yield();
  t.cancel();
  BOOST_TEST((t.get() == coop::errc::cancelled));
}

COOP_TEST_CASE(timeout_expired_while_running_fails_the_next_blocking_call) {
  coop::timeout t(5ms);
  auto until = std::chrono::steady_clock::now() + 20ms;
  while (std::chrono::steady_clock::now() < until) {
  } // busy: nothing to interrupt
  BOOST_TEST(t.expired());
  BOOST_CHECK_THROW(coop::this_fiber::yield(), coop::timeout_error);
}

COOP_TEST_CASE(leaving_the_scope_disarms_the_timeout) {
  {
    coop::timeout t(500ms); // generous: a slow machine must not fire it early
    coop::sleep_for(1ms);
  }
  coop::sleep_for(600ms); // would throw if the timeout were still armed
  coop::timeout t(5ms);
  t.cancel();
  coop::sleep_for(20ms);
  BOOST_TEST(!t.expired());
}

COOP_TEST_CASE(nested_timeouts_the_earliest_wins) {
  coop::timeout outer(20ms);
  bool inner_fired = false;
  try {
    coop::timeout inner(1s);
    coop::sleep_for(10s);
  } catch (const coop::timeout_error&) {
    inner_fired = true;
  }
  BOOST_TEST(inner_fired);
  BOOST_TEST(outer.expired());
}

COOP_TEST_CASE(cancel_is_sticky_until_the_fiber_exits) {
  int failures = 0;
  auto t = coop::spawn([&] {
    for (int i = 0; i < 3; ++i) {
      try {
        coop::sleep_for(10s);
      } catch (const coop::cancelled&) {
        ++failures;
      }
    }
  });
  coop::this_fiber::yield(); // same thread: the other fiber runs up to its wait
  t.cancel();
  t.join();
  BOOST_TEST(failures == 3);
}

COOP_TEST_CASE(cancel_before_start_never_runs_the_function) {
  bool ran = false;
  auto t = coop::spawn([&] { ran = true; });
  t.cancel();
  BOOST_CHECK_THROW(t.get(), coop::cancelled);
  BOOST_TEST(!ran);
}

COOP_TEST_CASE(shield_defers_cancellation_for_clean_up) {
  bool cleaned_up = false;
  auto t = coop::spawn([&] {
    try {
      coop::sleep_for(10s);
    } catch (const coop::cancelled&) {
      coop::shield s;
      coop::sleep_for(5ms); // clean-up that blocks
      cleaned_up = true;
      throw;
    }
  });
  coop::this_fiber::yield(); // same thread: the other fiber runs up to its wait
  t.cancel();
  BOOST_CHECK_THROW(t.get(), coop::cancelled);
  BOOST_TEST(cleaned_up);
}

COOP_TEST_CASE(a_closed_socket_wakes_its_reader_with_an_error) {
  auto p = connected_pair();
  auto reader = coop::spawn([&] {
    std::array<char, 8> buf;
    boost::system::error_code ec;
    p.server.read_some(boost::asio::buffer(buf), ec);
    return ec;
  });
  coop::this_fiber::yield(); // same thread: the other fiber runs up to its wait
  p.server.close();
  BOOST_TEST((reader.get() == boost::asio::error::operation_aborted));
}
