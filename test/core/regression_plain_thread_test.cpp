#define BOOST_TEST_MODULE coop_regression_plain_thread
// Regression tests: coop::timeout bounds the blocking calls of a plain thread (harness: regression.hpp).
#include "regression.hpp"

// --- Bug 7: coop::timeout bounds blocking calls on a plain thread -----------------

namespace {
struct plain_result {
  std::string outcome;
  std::chrono::milliseconds took{};
  bool needed_unblocking = false;
};

/// Runs `op` on a new plain thread inside a blocking_scope under coop::timeout(50ms).
/// If it has not ended after 1.5 s, calls `unblock()` (here) to release it.
template <class Op, class Unblock> plain_result on_plain_thread_with_50ms_timeout(Op op, Unblock unblock) {
  plain_result r;
  std::promise<void> done;
  auto finished = done.get_future();
  std::thread th([&] {
    auto t0 = std::chrono::steady_clock::now();
    r.outcome = outcome_of([&] {
      coop::blocking_scope scope;
      coop::timeout t(50ms);
      op();
    });
    r.took = ms_since(t0);
    done.set_value();
  });
  if (finished.wait_for(1500ms) != std::future_status::ready) {
    r.needed_unblocking = true;
    unblock();
    if (finished.wait_for(std::chrono::seconds(6)) != std::future_status::ready)
      watchdog::give_up(current_case(), "plain thread still blocked after unblocking: hung (bug present)");
  }
  th.join();
  return r;
}

void check_plain_timeout(const plain_result& r) {
  BOOST_TEST(!r.needed_unblocking, "still blocked after 1.5 s (ended only when released from outside, with: "
                                       << r.outcome << ", after " << r.took.count() << " ms)");
  BOOST_TEST(r.outcome == "timeout_error", "ended with: " << r.outcome);
  BOOST_TEST(r.took.count() < 1000, "took " << r.took.count() << " ms");
}
} // namespace

REGRESSION_PLAIN_CASE(plain_thread_timeout_bounds_accept) {
  std::atomic<unsigned short> port{0};
  auto r = on_plain_thread_with_50ms_timeout(
      [&] {
        coop::net::tcp_listener l(test_support::loopback());
        port = l.local_endpoint().port();
        l.accept(); // nobody connects
      },
      [&] { // connect once to release the accept
        boost::asio::io_context io;
        boost::asio::ip::tcp::socket s(io);
        boost::system::error_code ec;
        s.connect({boost::asio::ip::make_address("127.0.0.1"), port.load()}, ec);
      });
  check_plain_timeout(r);
}

REGRESSION_PLAIN_CASE(plain_thread_timeout_bounds_connect_to_a_full_backlog) {
  // A loopback listener with backlog 0 that never accepts: once one
  // connection waits in its queue, Linux drops further SYNs, so a connect hangs.
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(io);
  acceptor.open(boost::asio::ip::tcp::v4());
  acceptor.bind(test_support::loopback());
  acceptor.listen(0);
  auto endpoint = acceptor.local_endpoint();
  boost::asio::ip::tcp::socket filler(io);
  filler.connect(endpoint);
  auto r = on_plain_thread_with_50ms_timeout([&] { coop::net::connect(endpoint); },
                                             [&] { acceptor.close(); }); // the next SYN gets a reset
  check_plain_timeout(r);
}

REGRESSION_PLAIN_CASE(plain_thread_timeout_bounds_channel_pop) {
  coop::channel<int> ch(1);
  auto r = on_plain_thread_with_50ms_timeout([&] { ch.pop(); }, [&] { ch.try_push(1); });
  check_plain_timeout(r);
}

REGRESSION_PLAIN_CASE(plain_thread_timeout_bounds_channel_push) {
  coop::channel<int> ch(1);
  ch.try_push(1);
  auto r = on_plain_thread_with_50ms_timeout([&] { ch.push(2); }, [&] { ch.try_pop(); });
  check_plain_timeout(r);
}
