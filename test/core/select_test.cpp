#define BOOST_TEST_MODULE coop_select
#include "support.hpp"

#include <atomic>
#include <vector>

COOP_TEST_CASE(select_takes_whichever_channel_has_an_item) {
  coop::channel<int> a(1), b(1);
  std::optional<int> x, y;
  b.push(2);
  auto r = coop::select(coop::recv(a, x), coop::recv(b, y));
  BOOST_TEST(r.index == 1u);
  BOOST_TEST((r.status == coop::channel_status::success));
  BOOST_TEST(*y == 2);
  BOOST_TEST(!x);
  BOOST_TEST(b.size() == 0u);
}

COOP_TEST_CASE(select_parks_until_a_case_completes_and_does_only_that_one) {
  coop::channel<int> a(0), b(0);
  std::optional<int> x, y;
  auto sender = coop::spawn([&] { b.push(7); }); // runs once select has parked (same thread)
  auto r = coop::select(coop::recv(a, x), coop::recv(b, y));
  BOOST_TEST(r.index == 1u);
  BOOST_TEST(*y == 7);
  sender.join();
  // The losing case left nothing behind: a push to `a` finds no receiver.
  BOOST_TEST((a.try_push(1) == coop::channel_status::full));
}

COOP_TEST_CASE(select_send_and_receive_cases_together) {
  coop::channel<int> out(0), in(0);
  int item = 5;
  std::optional<int> got;
  auto taker = coop::spawn([&] { return *out.pop(); });
  auto r = coop::select(coop::send(out, item), coop::recv(in, got));
  BOOST_TEST(r.index == 0u);
  BOOST_TEST(taker.get() == 5);
  BOOST_TEST(!got);
}

COOP_TEST_CASE(a_losing_send_case_keeps_its_item) {
  coop::channel<std::string> full(1), ready(1);
  full.push("occupied");
  ready.push("x");
  std::string mine = "mine";
  std::optional<std::string> got;
  auto r = coop::select(coop::send(full, mine), coop::recv(ready, got));
  BOOST_TEST(r.index == 1u);
  BOOST_TEST(mine == "mine");
}

COOP_TEST_CASE(select_reports_a_closed_channel) {
  coop::channel<int> a(1), b(1);
  std::optional<int> x, y;
  auto closer = coop::spawn([&] { a.close(); }); // runs once select has parked
  auto r = coop::select(coop::recv(a, x), coop::recv(b, y));
  BOOST_TEST(r.index == 0u);
  BOOST_TEST((r.status == coop::channel_status::closed));
  closer.join();
}

COOP_TEST_CASE(select_times_out_and_is_cancellable) {
  coop::channel<int> a(1), b(1);
  std::optional<int> x, y;
  {
    coop::timeout t(10ms);
    BOOST_CHECK_THROW(coop::select(coop::recv(a, x), coop::recv(b, y)), coop::timeout_error);
  }
  auto waiter = coop::spawn([&] { coop::select(coop::recv(a, x), coop::recv(b, y)); });
  coop::this_fiber::yield(); // same thread: the other fiber runs up to its wait
  waiter.cancel();
  BOOST_CHECK_THROW(waiter.get(), coop::cancelled);
  // Interrupted selects left no waiters: items pushed now stay in the channels.
  a.push(1);
  b.push(2);
  BOOST_TEST(a.size() == 1u);
  BOOST_TEST(b.size() == 1u);
}

COOP_TEST_CASE(try_select_never_waits) {
  coop::channel<int> a(1);
  std::optional<int> x;
  BOOST_TEST(!coop::try_select(coop::recv(a, x)));
  a.push(3);
  auto r = coop::try_select(coop::recv(a, x));
  BOOST_TEST(r.has_value());
  BOOST_TEST(*x == 3);
}

COOP_TEST_CASE(no_case_starves) {
  coop::channel<int> a(100), b(100);
  for (int i = 0; i < 100; ++i) {
    a.push(i);
    b.push(i);
  }
  int from_a = 0, from_b = 0;
  for (int i = 0; i < 100; ++i) {
    std::optional<int> x, y;
    auto r = coop::select(coop::recv(a, x), coop::recv(b, y));
    (r.index == 0 ? from_a : from_b)++;
  }
  BOOST_TEST(from_a > 25);
  BOOST_TEST(from_b > 25);
}

BOOST_AUTO_TEST_CASE(selects_across_runtime_threads_lose_and_duplicate_nothing) {
  for (unsigned threads : runtime_sizes) {
    coop::runtime rt(threads);
    coop::channel<int> a(0), b(4); // a rendezvous and a buffered channel
    constexpr int per_producer = 1500;
    std::atomic<long long> sum{0};
    std::atomic<int> count{0};
    std::vector<coop::task<void>> producers, consumers;
    for (unsigned p = 0; p < threads * 2; ++p)
      producers.push_back(rt.spawn_on(p % threads, [&, p] {
        for (int i = 1; i <= per_producer; ++i) {
          if (p % 2) {
            // A selecting sender: whichever channel takes it first.
            int item = i;
            coop::select(coop::send(a, item), coop::send(b, item));
          } else {
            a.push(i);
          }
        }
      }));
    for (unsigned c = 0; c < threads * 2; ++c)
      consumers.push_back(rt.spawn_on((c + 1) % threads, [&] {
        for (;;) {
          std::optional<int> x, y;
          auto r = coop::select(coop::recv(a, x), coop::recv(b, y));
          if (r.status == coop::channel_status::closed) return;
          sum += r.index == 0 ? *x : *y;
          ++count;
        }
      }));
    coop::join_all(producers);
    a.close();
    b.close();
    coop::join_all(consumers);
    // Closing one channel ends a consumer even if the other still holds items: drain them.
    for (auto ch : {&a, &b})
      rt.spawn_on(0, [&, ch] {
          while (auto v = ch->try_pop()) {
            sum += *v;
            ++count;
          }
        }).get();
    const long long producers_n = threads * 2;
    BOOST_TEST(count.load() == producers_n * per_producer);
    BOOST_TEST(sum.load() == producers_n * per_producer * (per_producer + 1) / 2);
  }
}
