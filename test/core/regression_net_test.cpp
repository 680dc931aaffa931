#define BOOST_TEST_MODULE coop_regression_net
// Regression tests: the accept loop — accept and serve with an interruption already due, a cancelled server drains the
// request in progress (harness: regression.hpp).
#include "regression.hpp"

// --- Bug 3: accept(ec) and serve do not throw for an interruption already due -------

REGRESSION_CASE(accept_ec_with_expired_timeout_reports_timed_out) {
  coop::net::tcp_listener l(test_support::loopback());
  coop::timeout t(1ms);
  boost::system::error_code ec;
  coop::sleep_for(20ms, ec); // the timeout expires here
  BOOST_REQUIRE(t.expired());
  std::string how = outcome_of([&] { l.accept(ec); });
  BOOST_TEST(how == "returned", "accept(ec) threw instead of reporting: " << how);
  BOOST_TEST((ec == coop::errc::timed_out), "ec = " << ec.message());
}

REGRESSION_CASE(accept_ec_in_cancelled_fiber_reports_cancelled) {
  coop::net::tcp_listener l(test_support::loopback());
  bool parked = false;
  std::string how;
  boost::system::error_code ec;
  auto t = coop::spawn([&] {
    wait_for_cancel(parked);
    how = outcome_of([&] { l.accept(ec); });
  });
  yield_until(parked);
  t.cancel();
  t.join();
  BOOST_TEST(how == "returned", "accept(ec) threw instead of reporting: " << how);
  BOOST_TEST((ec == coop::errc::cancelled), "ec = " << ec.message());
}

REGRESSION_CASE(serve_in_cancelled_fiber_returns_normally) {
  coop::net::tcp_listener l(test_support::loopback());
  coop::task_group connections;
  bool parked = false;
  std::string how;
  auto t = coop::spawn([&] {
    wait_for_cancel(parked);
    how = outcome_of([&] { coop::net::serve(l, connections, [](coop::net::tcp_stream) {}); });
  });
  yield_until(parked);
  t.cancel();
  t.join();
  BOOST_TEST(how == "returned", "serve in a cancelled fiber ended with: " << how);
}

// --- Bug 5: drain after serve in a cancelled fiber --------------------------------

REGRESSION_CASE(cancelled_server_drains_the_request_in_progress) {
  coop::net::tcp_listener listener(test_support::loopback());
  auto port = listener.local_endpoint().port();
  coop::channel<int> request_seen(1);
  // The pattern of serve.hpp's comment, in a fiber that gets cancelled.
  auto server = coop::spawn([&] {
    coop::task_group connections;
    coop::net::serve(listener, connections, [&](coop::net::tcp_stream c) {
      std::string line;
      c.read_until(line, "\n");
      request_seen.try_push(1);
      coop::sleep_for(100ms); // a slow answer
      c.write_all(boost::asio::buffer(std::string("reply\n")));
    });
    return connections.join_or_cancel_for(2s);
  });
  auto client = coop::net::connect("127.0.0.1", port);
  client.write_all(boost::asio::buffer(std::string("request\n")));
  {
    coop::timeout bound(3s);
    request_seen.pop(); // the handler is now busy with the request
  }
  server.cancel();
  std::string reply;
  boost::system::error_code ec;
  {
    coop::timeout bound(3s);
    client.read_until(reply, "\n", ec);
  }
  BOOST_TEST(!ec, "client read ended with " << ec.message() << " instead of the reply");
  BOOST_TEST(reply == "reply\n");
  bool drained = false;
  std::string how = outcome_of([&] { drained = server.get(); });
  BOOST_TEST(how == "returned", "the server fiber (serve, then join_or_cancel_for(2s)) ended with: " << how);
  BOOST_TEST(drained, "join_or_cancel_for did not report that every connection ended in time");
}
