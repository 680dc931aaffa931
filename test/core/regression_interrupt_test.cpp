#define BOOST_TEST_MODULE coop_regression_interrupt
// Regression tests: interruptions — a shield protects a wait in progress, a call that fails at once still yields,
// timeouts destroyed out of order, composed Asio and Beast reads honour a timeout (harness: regression.hpp).
#include "regression.hpp"

// --- Bug 1: a shield protects a wait already in progress ----------------------------

REGRESSION_CASE(shield_protects_a_sleep_in_progress_from_cancel) {
  std::string in_shield = "not run";
  std::chrono::milliseconds slept{};
  std::string after_shield = "not run";
  bool parked = false;
  auto t = coop::spawn([&] {
    {
      coop::shield s;
      parked = true;
      auto t0 = std::chrono::steady_clock::now();
      in_shield = outcome_of([] { coop::sleep_for(60ms); });
      slept = ms_since(t0);
    }
    after_shield = outcome_of([] { coop::sleep_for(1ms); });
  });
  yield_until(parked); // the fiber ran until it parked in the sleep
  t.cancel();
  t.join();
  BOOST_TEST(in_shield == "returned", "shielded sleep_for(60ms) ended with: " << in_shield);
  BOOST_TEST(slept.count() >= 59, "shielded sleep lasted only " << slept.count() << " ms");
  BOOST_TEST(after_shield == "cancelled", "first blocking call after the shield: " << after_shield);
}

REGRESSION_CASE(shield_protects_a_read_some_in_progress_from_cancel) {
  auto p = connected_pair();
  std::string in_shield = "not run";
  std::size_t got = 0;
  std::string after_shield = "not run";
  bool parked = false;
  auto t = coop::spawn([&] {
    {
      coop::shield s;
      parked = true;
      std::array<char, 16> buf;
      in_shield = outcome_of([&] { got = p.server.read_some(boost::asio::buffer(buf)); });
    }
    after_shield = outcome_of([] { coop::sleep_for(1ms); });
  });
  yield_until(parked); // the fiber ran until it parked in the read
  t.cancel();
  for (int i = 0; i < 10; ++i) // the cancel has come: the read goes on waiting
    coop::this_fiber::yield();
  BOOST_TEST(in_shield == "not run", "the shielded read ended at the cancel with: " << in_shield);
  p.client.write_all(boost::asio::buffer("hello", 5));
  t.join();
  BOOST_TEST(in_shield == "returned", "shielded read_some ended with: " << in_shield);
  BOOST_TEST(got == 5u);
  BOOST_TEST(after_shield == "cancelled", "first blocking call after the shield: " << after_shield);
}

REGRESSION_CASE(shield_protects_a_channel_pop_in_progress_from_cancel) {
  coop::channel<int> ch(1);
  std::string in_shield = "not run";
  std::optional<int> got;
  std::string after_shield = "not run";
  bool parked = false;
  auto t = coop::spawn([&] {
    {
      coop::shield s;
      parked = true;
      in_shield = outcome_of([&] { got = ch.pop(); });
    }
    after_shield = outcome_of([] { coop::sleep_for(1ms); });
  });
  yield_until(parked); // the fiber ran until it parked in the pop
  t.cancel();
  for (int i = 0; i < 10; ++i) // the cancel has come: the pop goes on waiting
    coop::this_fiber::yield();
  BOOST_TEST(in_shield == "not run", "the shielded pop ended at the cancel with: " << in_shield);
  ch.push(7);
  t.join();
  BOOST_TEST(in_shield == "returned", "shielded pop ended with: " << in_shield);
  BOOST_TEST((got && *got == 7), "the item pushed after the cancel did not arrive");
  BOOST_TEST(after_shield == "cancelled", "first blocking call after the shield: " << after_shield);
}

REGRESSION_CASE(shield_protects_a_sleep_in_progress_from_an_outer_timeout) {
  coop::timeout outer(10ms); // created OUTSIDE the shield
  std::string in_shield;
  std::chrono::milliseconds slept{};
  {
    coop::shield s;
    auto t0 = std::chrono::steady_clock::now();
    in_shield = outcome_of([] { coop::sleep_for(60ms); });
    slept = ms_since(t0);
  }
  std::string after_shield = outcome_of([] { coop::sleep_for(1ms); });
  BOOST_TEST(in_shield == "returned", "shielded sleep_for(60ms) ended with: " << in_shield);
  BOOST_TEST(slept.count() >= 59, "shielded sleep lasted only " << slept.count() << " ms");
  BOOST_TEST(after_shield == "timeout_error", "first blocking call after the shield: " << after_shield);
}

// --- Bug 4: a call that fails at once (interruption due) still yields -------------

REGRESSION_CASE(failed_read_some_after_timeout_yields) {
  auto p = connected_pair();
  bool other_ran = false;
  auto other = coop::spawn([&] { other_ran = true; }); // ready; runs when we yield
  int ran_at = -1;
  {
    coop::timeout t(1ms);
    while (!t.expired()) {
    } // busy: nothing blocks, so nothing yields
    std::array<char, 16> buf;
    for (int i = 0; i < 1000; ++i) {
      boost::system::error_code ec;
      p.server.read_some(boost::asio::buffer(buf), ec);
      BOOST_REQUIRE((ec == coop::errc::timed_out));
      if (other_ran) {
        ran_at = i;
        break;
      }
    }
  }
  BOOST_TEST(ran_at >= 0, "another ready fiber never ran during 1000 failed read_some calls");
  other.join();
}

REGRESSION_CASE(failed_read_some_after_cancel_yields) {
  auto p = connected_pair();
  bool parked = false;
  bool other_ran = false;
  int ran_at = -1;
  bool all_cancelled = true;
  auto t = coop::spawn([&] {
    wait_for_cancel(parked);
    auto other = coop::spawn([&] { other_ran = true; }); // ready; runs when we yield
    other.detach();
    std::array<char, 16> buf;
    for (int i = 0; i < 1000; ++i) {
      boost::system::error_code ec;
      p.server.read_some(boost::asio::buffer(buf), ec);
      all_cancelled = all_cancelled && ec == coop::errc::cancelled;
      if (other_ran) {
        ran_at = i;
        break;
      }
    }
  });
  yield_until(parked);
  t.cancel();
  t.join();
  BOOST_TEST(all_cancelled);
  BOOST_TEST(ran_at >= 0, "another ready fiber never ran during 1000 failed read_some calls");
}

// Timeouts destroyed out of order leave no scope behind (the first one used
// to stay on the fiber's list and fire later).
REGRESSION_CASE(timeouts_destroyed_out_of_order) {
  std::optional<coop::timeout> a, b;
  a.emplace(10ms);
  b.emplace(1s);
  a.reset();
  b.reset();
  // No timeout is left: blocking calls must work, also past a's old deadline.
  BOOST_TEST(outcome_of([] { coop::sleep_for(30ms); }) == "returned");
  BOOST_TEST(outcome_of([] { coop::sleep_for(1ms); }) == "returned");
  // Later timeouts still work.
  auto t0 = std::chrono::steady_clock::now();
  BOOST_TEST(outcome_of([] {
               coop::timeout c(10ms);
               coop::sleep_for(1s);
             }) == "timeout_error");
  BOOST_TEST(ms_since(t0).count() < 500);
  BOOST_TEST(outcome_of([] { coop::sleep_for(1ms); }) == "returned");
}

// A coop::timeout interrupts a composed Asio operation and a Beast read
// (both pass today: they guard against a regression, they do not show a bug).
namespace {
/// Runs `read(stream)` in a fiber under coop::timeout(20ms) with a silent peer.
/// If it has not ended after 1 s, closes the peer to release it.
template <class Read> void expect_composed_read_times_out(Read read) {
  auto p = connected_pair();
  std::string how = "not run";
  auto reader = coop::spawn([&] {
    how = outcome_of([&] {
      coop::timeout t(20ms);
      read(p.server);
    });
  });
  std::string waited = outcome_of([&] {
    coop::timeout bound(1s);
    reader.join();
  });
  bool released = waited != "returned";
  if (released) p.client.close();
  reader.join();
  BOOST_TEST(!released, "the read ignored its timeout; it ended only when the peer closed, with: " << how);
  BOOST_TEST(how == "timeout_error", "the read ended with: " << how);
}
} // namespace

REGRESSION_CASE(timeout_interrupts_asio_async_read) {
  expect_composed_read_times_out([](coop::net::tcp_stream& s) {
    std::array<char, 16> buf;
    boost::asio::async_read(s.socket(), boost::asio::buffer(buf), coop::yield);
  });
}

REGRESSION_CASE(timeout_interrupts_beast_http_async_read) {
  expect_composed_read_times_out([](coop::net::tcp_stream& s) {
    boost::beast::flat_buffer buffer;
    boost::beast::http::request<boost::beast::http::string_body> request;
    boost::beast::http::async_read(s.socket(), buffer, request, coop::yield);
  });
}
