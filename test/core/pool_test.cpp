#define BOOST_TEST_MODULE coop_pool
// coop::pool: bounded spawning, map in input order, imap_unordered as
// results complete, error propagation, cancellation, the thread rule.
#include "support.hpp"

#include <algorithm>
#include <atomic>
#include <list>
#include <ranges>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

/// Counts calls running at once and the most seen.
struct concurrency {
  int now = 0;
  int max = 0;
  void enter() { max = std::max(max, ++now); }
  void leave() { --now; }
};

} // namespace

static_assert(std::ranges::input_range<decltype(std::declval<coop::pool&>().imap_unordered(
                  std::declval<std::vector<int>&>(), [](int x) { return x; }))>);

// --- spawn ----------------------------------------------------------------------------

COOP_TEST_CASE(spawn_waits_for_a_free_slot) {
  coop::pool p(2);
  coop::event release;
  auto a = p.spawn([&] {
    release.wait();
    return 1;
  });
  auto b = p.spawn([&] {
    release.wait();
    return 2;
  });
  BOOST_TEST(p.size() == 2u);
  BOOST_TEST(p.free_count() == 0u);
  {
    coop::timeout t(10ms);
    BOOST_CHECK_THROW((void)p.spawn([] {}), coop::timeout_error); // full: the wait is interrupted
  }
  boost::system::error_code ec;
  {
    coop::timeout t(5ms);
    auto none = p.spawn([] {}, ec);
    BOOST_TEST(!none.valid()); // nothing started
  }
  BOOST_TEST((ec == coop::errc::timed_out));
  BOOST_TEST(p.size() == 2u);
  bool third_ran = false;
  auto releaser = coop::spawn([&] { release.set(); });
  auto c = p.spawn([&] { third_ran = true; }); // waits until a or b ends
  c.get();
  BOOST_TEST(third_ran);
  BOOST_TEST(a.get() + b.get() == 3);
  releaser.join();
  p.join();
  BOOST_TEST(p.empty());
  BOOST_TEST(p.free_count() == 2u);
}

COOP_TEST_CASE(spawn_waiting_for_a_slot_is_cancelled_from_another_fiber) {
  coop::pool p(1);
  coop::event never;
  auto member = p.spawn([&] { never.wait(); });
  bool started = false;
  auto spawner = coop::spawn([&] { p.spawn([&] { started = true; }).detach(); });
  coop::this_fiber::yield(); // the spawner waits for the slot
  spawner.cancel();
  BOOST_CHECK_THROW(spawner.get(), coop::cancelled);
  p.cancel();
  BOOST_CHECK_THROW(member.get(), coop::cancelled);
  p.join();
  BOOST_TEST(!started);
  BOOST_TEST(p.free_count() == 1u); // the cancelled spawn took no slot
}

COOP_TEST_CASE(at_most_capacity_members_run_at_once) {
  coop::pool p(3);
  concurrency c;
  int done = 0;
  for (int i = 0; i < 20; ++i)
    p.spawn([&] {
       c.enter();
       coop::this_fiber::yield();
       coop::this_fiber::yield();
       c.leave();
       ++done;
     }).detach();
  p.join();
  BOOST_TEST(done == 20);
  BOOST_TEST(c.max == 3);
}

COOP_TEST_CASE(join_honours_timeout_cancel_and_its_own_deadline) {
  coop::pool p(2);
  coop::event release;
  p.spawn([&] { release.wait(); }).detach();
  BOOST_TEST(!p.join_for(2ms)); // its own deadline: false
  {
    coop::timeout t(5ms);
    BOOST_CHECK_THROW(p.join(), coop::timeout_error);
  }
  auto joiner = coop::spawn([&] { p.join(); });
  coop::this_fiber::yield();
  joiner.cancel();
  BOOST_CHECK_THROW(joiner.get(), coop::cancelled);
  release.set();
  BOOST_TEST(p.join_for(10s));
}

COOP_TEST_CASE(cancel_and_the_destructor_end_every_member) {
  int ended = 0;
  {
    coop::pool p(4);
    coop::event never;
    for (int i = 0; i < 4; ++i)
      p.spawn([&] {
         try {
           never.wait();
         } catch (const coop::cancelled&) {
           ++ended;
           throw;
         }
       }).detach();
    coop::this_fiber::yield();
    p.cancel();
    p.join();
    BOOST_TEST(ended == 4);
    for (int i = 0; i < 3; ++i) // the pool stays usable
      p.spawn([&] {
         coop::shield s; // clean-up that must finish: the destructor waits for it
         coop::sleep_for(2ms);
         ++ended;
       }).detach();
    coop::this_fiber::yield(); // they start (a member cancelled before it starts never runs)
  }                            // cancels and waits
  BOOST_TEST(ended == 7);
}

COOP_MT_TEST_CASE(a_pool_lives_on_one_thread) {
  coop::pool p(2);
  p.spawn([] {}).join(); // binds the pool to thread 0
  if (rt.size() > 1) {
    auto elsewhere = rt.spawn_on(1, [&] { p.spawn([] {}).join(); });
    BOOST_CHECK_THROW(elsewhere.get(), coop::usage_error);
  }
  // Its members may wait on anything, across threads; their tasks are usable anywhere.
  coop::async_result<int> from_far;
  auto member = p.spawn([&] { return from_far.get() + 1; });
  auto setter = rt.spawn_on(rt.size() - 1, [&] {
    from_far.set(41);
    return member.get(); // a task of the pool, joined on another thread
  });
  BOOST_TEST(setter.get() == 42);
  p.join();
}

BOOST_AUTO_TEST_CASE(a_pool_needs_a_capacity_and_a_runtime_thread) {
  BOOST_CHECK_THROW(coop::pool(0), coop::usage_error);
  coop::pool p(1);
  BOOST_CHECK_THROW((void)p.spawn([] {}), coop::usage_error); // not a runtime thread
}

// --- map ------------------------------------------------------------------------------

COOP_TEST_CASE(map_returns_results_in_input_order_with_at_most_capacity_calls) {
  coop::pool p(3);
  concurrency c;
  std::vector<int> input{5, 1, 4, 2, 3, 0, 6, 7};
  std::vector<int> finish_order;
  auto out = p.map(input, [&](int x) {
    c.enter();
    for (int i = 0; i < x; ++i) // later elements may finish first
      coop::this_fiber::yield();
    c.leave();
    finish_order.push_back(x);
    return std::to_string(x * 10);
  });
  BOOST_TEST((out == std::vector<std::string>{"50", "10", "40", "20", "30", "0", "60", "70"}));
  BOOST_TEST(c.max == 3);
  BOOST_TEST((finish_order != input)); // they did complete out of order
  BOOST_TEST(p.empty());
}

COOP_TEST_CASE(map_takes_views_input_streams_and_temporaries) {
  coop::pool p(2);
  auto squares = p.map(std::views::iota(1, 6), [](int x) { return x * x; });
  BOOST_TEST((squares == std::vector<int>{1, 4, 9, 16, 25}));
  std::istringstream text("3 1 2");
  auto parsed = p.map(std::ranges::istream_view<int>(text), [](int x) { return x + 100; });
  BOOST_TEST((parsed == std::vector<int>{103, 101, 102}));
  auto lengths = p.map(std::list<std::string>{"a", "bb", "ccc"}, [](const std::string& s) { return s.size(); });
  BOOST_TEST((lengths == std::vector<std::size_t>{1, 2, 3}));
  BOOST_TEST(p.map(std::vector<int>{}, [](int x) { return x; }).empty());
}

COOP_TEST_CASE(map_rethrows_the_first_error_after_cancelling_and_awaiting_the_rest) {
  coop::pool p(4);
  coop::event never;
  int cancelled = 0, started = 0;
  std::vector<int> input{0, 1, 2, 3, 4, 5, 6, 7};
  BOOST_CHECK_EXCEPTION(p.map(input,
                              [&](int x) {
                                ++started;
                                if (x == 2) {
                                  coop::this_fiber::yield();
                                  throw std::runtime_error("element 2");
                                }
                                try {
                                  never.wait();
                                } catch (const coop::cancelled&) {
                                  ++cancelled;
                                  throw;
                                }
                                return x;
                              }),
                        std::runtime_error,
                        [](const std::runtime_error& e) { return e.what() == std::string("element 2"); });
  BOOST_TEST(started == 4);             // no more than the capacity, none after the error
  BOOST_TEST(cancelled == started - 1); // the others were cancelled...
  BOOST_TEST(p.empty());                // ...and had ended when map threw
}

COOP_TEST_CASE(map_in_a_cancelled_or_timed_out_fiber_cleans_up) {
  coop::pool p(2);
  coop::event never;
  int ended = 0, started = 0;
  auto mapper = coop::spawn([&] {
    return p.map(std::views::iota(0, 10), [&](int x) {
      ++started;
      try {
        never.wait();
      } catch (const coop::cancelled&) {
        ++ended;
        throw;
      }
      return x;
    });
  });
  test_support::yield_until([&] { return started == 2; });
  mapper.cancel();
  BOOST_CHECK_THROW(mapper.get(), coop::cancelled);
  BOOST_TEST(ended == 2);
  BOOST_TEST(p.empty());
  {
    coop::timeout t(10ms);
    BOOST_CHECK_THROW(p.map(std::views::iota(0, 10),
                            [&](int x) {
                              never.wait();
                              return x;
                            }),
                      coop::timeout_error);
  }
  BOOST_TEST(p.empty());
  // pool.cancel() while a map runs: the calls end with cancelled, rethrown by map.
  auto canceller = coop::spawn([&] {
    coop::this_fiber::yield();
    p.cancel();
  });
  BOOST_CHECK_THROW(p.map(std::views::iota(0, 4),
                          [&](int x) {
                            never.wait();
                            return x;
                          }),
                    coop::cancelled);
  canceller.join();
}

// --- imap_unordered -------------------------------------------------------------------

COOP_TEST_CASE(imap_unordered_streams_results_as_they_complete) {
  coop::pool p(4);
  coop::event slow_may_finish;
  bool slow_done = false;
  auto call = [&](int x) {
    if (x == 0) {                         // the first input is the slowest
      (void)slow_may_finish.wait_for(5s); // (bounded, so that a non-streaming imap fails instead of hanging)
      slow_done = true;
    }
    return x;
  };
  std::vector<int> got;
  bool first_before_slow = false;
  for (int v : p.imap_unordered(std::vector<int>{0, 1, 2, 3}, call)) {
    if (got.empty()) first_before_slow = !slow_done;
    got.push_back(v);
    if (got.size() == 3) slow_may_finish.set(); // only once three results have arrived
  }
  BOOST_TEST(first_before_slow);
  BOOST_TEST(got.back() == 0);
  std::sort(got.begin(), got.end());
  BOOST_TEST((got == std::vector<int>{0, 1, 2, 3}));
}

COOP_TEST_CASE(imap_unordered_keeps_at_most_capacity_calls_in_flight) {
  coop::pool p(3);
  int started = 0, consumed = 0, max_ahead = 0;
  auto call = [&](int x) {
    ++started;
    max_ahead = std::max(max_ahead, started - consumed);
    return x;
  };
  for (int v : p.imap_unordered(std::views::iota(0, 50), call)) {
    (void)v;
    ++consumed;
    for (int i = 0; i < 5; ++i) // a slow consumer: finished calls must not pile up
      coop::this_fiber::yield();
  }
  BOOST_TEST(consumed == 50);
  BOOST_TEST(max_ahead <= 3);
  BOOST_TEST(max_ahead >= 1);
}

COOP_TEST_CASE(imap_unordered_rethrows_errors_from_the_iterator) {
  coop::pool p(2);
  std::vector<int> got;
  auto fail_last = [](int x) {
    if (x == 5) throw std::runtime_error("last one fails");
    return x;
  };
  auto consume = [&] {
    for (int v : p.imap_unordered(std::views::iota(0, 6), fail_last))
      got.push_back(v);
  };
  BOOST_CHECK_THROW(consume(), std::runtime_error); // even the last result's error is not swallowed
  BOOST_TEST(got.size() == 5u);
  // An error on the very first result is thrown by begin().
  auto results = p.imap_unordered(std::vector<int>{1}, [](int) -> int { throw std::logic_error("first"); });
  BOOST_CHECK_THROW(results.begin(), std::logic_error);
  BOOST_TEST(p.empty());
}

COOP_TEST_CASE(leaving_an_imap_unordered_loop_early_cancels_the_calls_in_flight) {
  coop::pool p(3);
  coop::event never;
  int cancelled = 0;
  {
    auto results = p.imap_unordered(std::views::iota(0, 100), [&](int x) {
      if (x == 0) return x;
      try {
        never.wait();
      } catch (const coop::cancelled&) {
        ++cancelled;
        throw;
      }
      return x;
    });
    for (int v : results) {
      BOOST_TEST(v == 0);
      break;
    }
  } // cancels and awaits the two calls still waiting
  BOOST_TEST(cancelled == 2);
  BOOST_TEST(p.empty());
}

COOP_TEST_CASE(imap_unordered_iteration_is_interruptible) {
  coop::pool p(2);
  coop::event never;
  auto results = p.imap_unordered(std::views::iota(0, 4), [&](int x) {
    never.wait();
    return x;
  });
  {
    coop::timeout t(10ms);
    BOOST_CHECK_THROW(results.begin(), coop::timeout_error);
  }
  BOOST_TEST((results.begin() == std::default_sentinel)); // the interruption ended the iteration
  p.join();                                               // the calls were cancelled
  // pool.cancel() reaches calls started by an iteration: the error comes out of the iterator.
  auto more = p.imap_unordered(std::views::iota(0, 4), [&](int x) {
    never.wait();
    return x;
  });
  auto canceller = coop::spawn([&] {
    coop::this_fiber::yield();
    p.cancel();
  });
  BOOST_CHECK_THROW(more.begin(), coop::cancelled);
  canceller.join();
}

COOP_MT_TEST_CASE(map_calls_wait_on_work_done_by_other_threads) {
  coop::pool p(4);
  auto out = p.map(std::views::iota(0, 16), [&](int x) {
    // Each call hands its element to a fiber on another thread and waits for the answer.
    coop::async_result<int> answer;
    auto helper = rt.spawn_on(static_cast<unsigned>(x) % rt.size(), [&] { answer.set(x * 2); });
    int v = answer.get();
    helper.join();
    return v;
  });
  for (int i = 0; i < 16; ++i)
    BOOST_TEST(out[static_cast<std::size_t>(i)] == i * 2);
}
