#define BOOST_TEST_MODULE coop_regression_channel
// Regression tests: channel operations of a cancelled fiber report cancellation (harness: regression.hpp).
#include "regression.hpp"

// --- Bug 6: channel operations of a cancelled fiber report cancellation ----------

REGRESSION_CASE(channel_ops_in_cancelled_fiber_report_cancelled) {
  coop::channel<int> empty(1);
  coop::channel<int> full(1);
  full.push(1);
  bool parked = false;
  boost::system::error_code pop_ec, push_ec, parked_push_ec;
  coop::channel_status push_status = coop::channel_status::success;
  coop::channel_status parked_push_status = coop::channel_status::success;
  int item = 2;
  auto t = coop::spawn([&] {
    wait_for_cancel(parked);
    empty.pop(pop_ec);
    push_status = full.push(std::move(item), push_ec);
  });
  yield_until(parked);
  t.cancel();
  t.join();
  // A push that is already parked when the cancel arrives.
  bool pushing = false;
  int item2 = 3;
  auto u = coop::spawn([&] {
    pushing = true;
    parked_push_status = full.push(std::move(item2), parked_push_ec);
  });
  yield_until(pushing);
  u.cancel();
  u.join();

  BOOST_TEST((pop_ec == coop::errc::cancelled), "pop: " << pop_ec.message());
  BOOST_TEST((push_ec == coop::errc::cancelled), "push: " << push_ec.message());
  BOOST_TEST((push_status != coop::channel_status::timeout), "push in a cancelled fiber reported status `timeout`");
  BOOST_TEST((parked_push_ec == coop::errc::cancelled), "parked push: " << parked_push_ec.message());
  BOOST_TEST((parked_push_status != coop::channel_status::timeout),
             "push parked when cancelled reported status `timeout`");
  BOOST_TEST(item == 2); // a failed push leaves the item with the caller
  BOOST_TEST(full.size() == 1u);
}

// --- Bug 6, status enumerator -------------------------------------------------
// The status of a push that fails by cancellation is channel_status::cancelled.
REGRESSION_CASE(channel_push_in_cancelled_fiber_reports_status_cancelled) {
  coop::channel<int> full(1);
  full.push(1);
  bool parked = false;
  boost::system::error_code ec;
  coop::channel_status status = coop::channel_status::success;
  auto t = coop::spawn([&] {
    wait_for_cancel(parked);
    int item = 2;
    status = full.push(std::move(item), ec);
  });
  yield_until(parked);
  t.cancel();
  t.join();
  BOOST_TEST((ec == coop::errc::cancelled), ec.message());
  BOOST_TEST((status == coop::channel_status::cancelled));
}
