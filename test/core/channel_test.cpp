#define BOOST_TEST_MODULE coop_channel
#include "support.hpp"

#include <atomic>
#include <thread>
#include <vector>

COOP_TEST_CASE(holds_exactly_the_capacity_asked_for) {
  for (std::size_t cap : {1u, 3u, 4u, 5u}) {
    coop::channel<int> ch(cap);
    for (std::size_t i = 0; i < cap; ++i)
      BOOST_TEST((ch.try_push(static_cast<int>(i)) == coop::channel_status::success));
    BOOST_TEST((ch.try_push(99) == coop::channel_status::full));
    BOOST_TEST(ch.size() == cap);
    for (std::size_t i = 0; i < cap; ++i)
      BOOST_TEST(*ch.try_pop() == static_cast<int>(i));
    BOOST_TEST(!ch.try_pop());
  }
}

COOP_TEST_CASE(capacity_zero_is_a_rendezvous) {
  coop::channel<int> ch(0);
  BOOST_TEST((ch.try_push(1) == coop::channel_status::full)); // nobody receiving
  bool pushed = false;
  auto sender = coop::spawn([&] {
    ch.push(7);
    pushed = true;
  });
  coop::this_fiber::yield(); // same thread: the other fiber runs up to its wait
  BOOST_TEST(!pushed);       // still waiting for a receiver
  BOOST_TEST(*ch.pop() == 7);
  sender.join();
  BOOST_TEST(pushed);
}

COOP_TEST_CASE(close_drains_then_reports_closed) {
  coop::channel<std::string> ch(4);
  ch.push("a");
  ch.push("b");
  ch.close();
  BOOST_TEST((ch.push("c") == coop::channel_status::closed));
  BOOST_TEST(*ch.pop() == "a");
  BOOST_TEST(*ch.pop() == "b");
  BOOST_TEST(!ch.pop());
  std::string out;
  BOOST_TEST((ch.try_pop(out) == coop::channel_status::closed));
}

COOP_TEST_CASE(close_wakes_waiting_receivers_and_senders) {
  coop::channel<int> ch(0);
  auto receiver = coop::spawn([&] { return ch.pop(); });
  coop::channel<int> full(1);
  full.push(1);
  auto sender = coop::spawn([&] { return full.push(2); });
  coop::this_fiber::yield(); // same thread: the other fiber runs up to its wait
  ch.close();
  full.close();
  BOOST_TEST(!receiver.get());
  BOOST_TEST((sender.get() == coop::channel_status::closed));
  BOOST_TEST(*full.pop() == 1); // what was inside is still delivered
}

COOP_TEST_CASE(range_for_ends_on_close) {
  coop::channel<int> ch(2);
  auto producer = coop::spawn([&] {
    for (int i = 1; i <= 5; ++i)
      ch.push(i);
    ch.close();
  });
  int sum = 0;
  for (int v : ch)
    sum += v;
  producer.join();
  BOOST_TEST(sum == 15);
}

COOP_TEST_CASE(timed_variants_report_timeout) {
  coop::channel<int> ch(1);
  int out = 0;
  BOOST_TEST((ch.pop_for(out, 5ms) == coop::channel_status::timeout));
  BOOST_TEST((ch.push_for(1, 5ms) == coop::channel_status::success));
  BOOST_TEST((ch.push_for(2, 5ms) == coop::channel_status::timeout));
  BOOST_TEST((ch.pop_for(out, 5ms) == coop::channel_status::success));
  BOOST_TEST(out == 1);
  auto deadline = std::chrono::steady_clock::now() + 5ms;
  BOOST_TEST((ch.pop_until(out, deadline) == coop::channel_status::timeout));
}

COOP_TEST_CASE(an_outer_timeout_is_not_mistaken_for_the_timed_call) {
  coop::channel<int> ch(1);
  int out = 0;
  coop::timeout outer(5ms);
  BOOST_CHECK_THROW(ch.pop_for(out, 10s), coop::timeout_error);
}

COOP_TEST_CASE(move_only_items) {
  coop::channel<std::unique_ptr<int>> ch(1);
  ch.push(std::make_unique<int>(5));
  auto p = ch.pop();
  BOOST_TEST(**p == 5);
}

COOP_TEST_CASE(fifo_order_with_waiting_senders) {
  coop::channel<int> ch(1);
  std::vector<coop::task<void>> senders;
  for (int i = 0; i < 5; ++i)
    senders.push_back(coop::spawn([&, i] { ch.push(i); }));
  coop::this_fiber::yield(); // same thread: the other fiber runs up to its wait
  for (int i = 0; i < 5; ++i)
    BOOST_TEST(*ch.pop() == i);
  coop::join_all(senders);
}

BOOST_AUTO_TEST_CASE(many_producers_and_consumers_across_runtime_threads) {
  for (unsigned threads : runtime_sizes) {
    for (std::size_t cap : {0u, 1u, 64u}) {
      coop::runtime rt(threads);
      coop::channel<int> ch(cap);
      constexpr int per_producer = 2000;
      const unsigned producers = threads * 2;
      std::atomic<long long> sum{0};
      std::atomic<int> count{0};
      std::vector<coop::task<void>> tasks;
      for (unsigned p = 0; p < producers; ++p)
        tasks.push_back(rt.spawn_on(p % threads, [&] {
          for (int i = 1; i <= per_producer; ++i)
            ch.push(i);
        }));
      std::vector<coop::task<void>> consumers;
      for (unsigned c = 0; c < threads * 2; ++c)
        consumers.push_back(rt.spawn_on((c + 1) % threads, [&] {
          for (int v : ch) {
            sum += v;
            ++count;
          }
        }));
      coop::join_all(tasks);
      ch.close();
      coop::join_all(consumers);
      BOOST_TEST(count.load() == static_cast<int>(producers) * per_producer);
      BOOST_TEST(sum.load() == static_cast<long long>(producers) * per_producer * (per_producer + 1) / 2);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_plain_thread_wakes_a_fiber_and_back) {
  coop::channel<int> to_fiber(0), to_thread(0);
  std::thread helper([&] {
    for (int i = 0; i < 100; ++i) {
      to_fiber.push(i);
      auto v = to_thread.pop();
      if (!v || *v != i + 1) return;
    }
    to_fiber.close();
  });
  int rounds = coop::run([&] {
    int n = 0;
    for (int v : to_fiber) {
      to_thread.push(v + 1);
      ++n;
    }
    return n;
  });
  helper.join();
  BOOST_TEST(rounds == 100);
}
