#define BOOST_TEST_MODULE coop_offload
#include "support.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

/// A door that pool threads wait at (blocking their OS thread, as the
/// functions offload exists for do) until a fiber opens it.
struct gate {
  std::atomic<bool> open{false};
  std::atomic<bool> entered{false};
  std::atomic<bool> left{false};

  /// In the offloaded function: blocks its thread until opened (bounded).
  void pass() {
    entered = true;
    auto give_up = std::chrono::steady_clock::now() + 10s;
    while (!open && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(1ms);
    left = true;
  }
};

/// Sleeps the calling fiber (or thread) until `cond()` holds; false after 10 s.
template <class Cond> bool sleep_until_true(Cond cond) {
  auto give_up = std::chrono::steady_clock::now() + 10s;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    coop::sleep_for(1ms);
  }
  return true;
}

/// Restores the pool's default settings when a test that changed them ends.
struct default_pool_after {
  ~default_pool_after() { coop::set_offload_options({}); }
};

} // namespace

COOP_TEST_CASE(offload_keeps_the_other_fibers_of_the_thread_running) {
  std::atomic<int> ticks{0};
  bool stop = false;
  auto ticker = coop::spawn([&] {
    while (!stop) {
      coop::sleep_for(10ms);
      ++ticks;
    }
  });
  int at_start = -1;
  auto took = test_support::elapsed([&] {
    int r = coop::offload([&] {
      at_start = ticks.load();
      std::this_thread::sleep_for(200ms); // blocks the pool thread, not the runtime
      return 7;
    });
    BOOST_TEST(r == 7);
  });
  int during = ticks.load() - at_start;
  stop = true;
  ticker.join();
  BOOST_TEST(took >= 200ms);
  // 200 ms of 10 ms sleeps: about 20 ticks; none if offload blocked the thread.
  BOOST_TEST(during >= 5);
}

COOP_TEST_CASE(offload_rethrows_the_function_exception) {
  try {
    coop::offload([]() -> int { throw std::runtime_error("disk on fire"); });
    BOOST_FAIL("offload did not rethrow");
  } catch (const std::runtime_error& e) {
    BOOST_TEST(std::string(e.what()) == "disk on fire");
  }
  // The caller is unaffected: it offloads again.
  BOOST_TEST(coop::offload([] { return 1; }) == 1);
}

COOP_TEST_CASE(offload_returns_move_only_values_references_and_void) {
  auto p = coop::offload([] { return std::make_unique<int>(5); });
  BOOST_TEST(*p == 5);
  int x = 1;
  int& r = coop::offload([&]() -> int& { return x; });
  BOOST_TEST(&r == &x);
  bool ran = false;
  coop::offload([&] { ran = true; });
  BOOST_TEST(ran);
}

COOP_TEST_CASE(offload_runs_the_function_on_another_thread_and_destroys_it_there) {
  auto caller = std::this_thread::get_id();
  std::atomic<bool> destroyed_on_caller{true};
  struct probe {
    std::atomic<bool>* flag;
    std::thread::id caller;
    probe(std::atomic<bool>* f, std::thread::id c) : flag(f), caller(c) {}
    probe(probe&& o) noexcept : flag(std::exchange(o.flag, nullptr)), caller(o.caller) {}
    ~probe() {
      if (flag) *flag = std::this_thread::get_id() == caller;
    }
  };
  auto ran_on = coop::offload([pr = probe(&destroyed_on_caller, caller)] { return std::this_thread::get_id(); });
  BOOST_TEST((ran_on != caller));
  BOOST_TEST(!destroyed_on_caller);
}

COOP_TEST_CASE(a_timeout_abandons_the_wait_and_the_function_finishes_on_its_thread) {
  gate g;
  std::atomic<int> results_dropped{0};
  auto took = test_support::elapsed([&] {
    coop::timeout t(100ms);
    BOOST_CHECK_THROW(coop::offload([&] {
                        g.pass();
                        return std::shared_ptr<int>(new int(1), [&](int* p) {
                          delete p;
                          ++results_dropped;
                        });
                      }),
                      coop::timeout_error);
  });
  BOOST_TEST(took >= 100ms);
  BOOST_TEST(g.entered.load()); // it had started: it runs on
  BOOST_TEST(!g.left.load());   // offload returned while the function still blocks
  g.open = true;
  BOOST_TEST(sleep_until_true([&] { return results_dropped.load() == 1; })); // finished, result dropped there
  BOOST_TEST(g.left.load());
}

COOP_TEST_CASE(a_cancel_abandons_the_wait) {
  gate g;
  auto caller = coop::spawn([&] {
    return coop::offload([&] {
      g.pass();
      return 3;
    });
  });
  BOOST_TEST(sleep_until_true([&] { return g.entered.load(); }));
  caller.cancel();
  BOOST_CHECK_THROW(caller.get(), coop::cancelled);
  BOOST_TEST(!g.left.load());
  g.open = true;
  BOOST_TEST(sleep_until_true([&] { return g.left.load(); }));
}

COOP_TEST_CASE(an_interruption_due_at_entry_fails_without_running_the_function) {
  bool ran = false;
  coop::timeout t(0ms);
  BOOST_CHECK_THROW(coop::offload([&] { ran = true; }), coop::timeout_error);
  BOOST_TEST(!ran);
}

COOP_TEST_CASE(a_shield_keeps_the_wait_through_a_cancel) {
  gate g;
  auto caller = coop::spawn([&] {
    coop::shield s;
    return coop::offload([&] {
      g.pass();
      return 4;
    });
  });
  BOOST_TEST(sleep_until_true([&] { return g.entered.load(); }));
  caller.cancel();
  coop::this_fiber::yield();
  g.open = true;
  BOOST_TEST(caller.get() == 4);
}

COOP_TEST_CASE(an_abandoned_job_still_queued_never_runs) {
  default_pool_after restore;
  coop::set_offload_threads(1);
  gate g;
  auto first = coop::spawn([&] { coop::offload([&] { g.pass(); }); });
  BOOST_TEST(sleep_until_true([&] { return g.entered.load(); })); // the only thread is busy
  std::atomic<bool> second_ran{false};
  {
    coop::timeout t(20ms);
    BOOST_CHECK_THROW(coop::offload([&] { second_ran = true; }), coop::timeout_error);
  }
  BOOST_TEST(coop::get_offload_stats().queued == 1u);
  g.open = true;
  first.get();
  BOOST_TEST(coop::offload([] { return 9; }) == 9); // queued after the abandoned one
  BOOST_TEST(!second_ran);
}

COOP_TEST_CASE(offloads_beyond_the_bound_queue_and_all_complete) {
  default_pool_after restore;
  coop::set_offload_threads(2);
  std::atomic<int> running{0}, most{0};
  std::vector<coop::task<int>> callers;
  for (int i = 0; i < 16; ++i)
    callers.push_back(coop::spawn([&, i] {
      return coop::offload([&, i] {
        int now = ++running;
        for (int m = most; now > m && !most.compare_exchange_weak(m, now);) {
        }
        std::this_thread::sleep_for(5ms);
        --running;
        return i;
      });
    }));
  for (int i = 0; i < 16; ++i)
    BOOST_TEST(callers[i].get() == i);
  BOOST_TEST(most.load() >= 1);
  BOOST_TEST(most.load() <= 2); // never more threads than the bound
  auto stats = coop::get_offload_stats();
  BOOST_TEST(stats.max_threads == 2u);
  BOOST_TEST(stats.threads <= 2u);
}

COOP_TEST_CASE(idle_pool_threads_exit) {
  default_pool_after restore;
  coop::set_offload_options({.max_threads = 2, .idle_timeout = std::chrono::hours(1)});
  std::atomic<int> entered{0};
  auto both_at_once = [&] { // each returns once both run: two threads
    ++entered;
    auto give_up = std::chrono::steady_clock::now() + 10s;
    while (entered < 2 && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(1ms);
  };
  auto a = coop::spawn([&] { coop::offload(both_at_once); });
  auto b = coop::spawn([&] { coop::offload(both_at_once); });
  coop::join_all(a, b);
  BOOST_TEST(coop::get_offload_stats().threads == 2u); // idle, for an hour
  // A shorter idle timeout applies at once, also to threads already idle.
  coop::set_offload_options({.max_threads = 2, .idle_timeout = 20ms});
  BOOST_TEST(sleep_until_true([] { return coop::get_offload_stats().threads == 0; }));
  BOOST_TEST(coop::offload([] { return 2; }) == 2); // a thread starts again on demand
}

BOOST_AUTO_TEST_CASE(the_default_bound_is_the_cpu_count_and_at_least_two) {
  default_pool_after restore;
  const char* env = std::getenv("COOP_OFFLOAD_THREADS");
  const std::string saved = env ? env : "";
  ::unsetenv("COOP_OFFLOAD_THREADS");
  coop::set_offload_threads(0); // the default, read again
  BOOST_TEST(coop::get_offload_stats().max_threads == std::max(2u, std::thread::hardware_concurrency()));
  ::setenv("COOP_OFFLOAD_THREADS", "3", 1); // the environment still overrides it
  coop::set_offload_threads(0);
  BOOST_TEST(coop::get_offload_stats().max_threads == 3u);
  if (env)
    ::setenv("COOP_OFFLOAD_THREADS", saved.c_str(), 1);
  else
    ::unsetenv("COOP_OFFLOAD_THREADS");
}

COOP_TEST_CASE(offload_inside_an_offloaded_function_runs_inline) {
  default_pool_after restore;
  coop::set_offload_threads(1); // a nested wait on the pool would deadlock
  bool same_thread = coop::offload([] {
    auto outer = std::this_thread::get_id();
    return coop::offload([] { return std::this_thread::get_id(); }) == outer;
  });
  BOOST_TEST(same_thread);
}

BOOST_AUTO_TEST_CASE(offload_on_a_plain_thread_uses_the_pool_and_honours_timeouts) {
  auto caller = std::this_thread::get_id();
  BOOST_TEST((coop::offload([] { return std::this_thread::get_id(); }) != caller));
  gate g;
  {
    coop::timeout t(50ms);
    BOOST_CHECK_THROW(coop::offload([&] { g.pass(); }), coop::timeout_error);
  }
  g.open = true;
  BOOST_TEST(sleep_until_true([&] { return g.left.load() || !g.entered.load(); }));
}

COOP_MT_TEST_CASE(offload_from_fibers_of_every_runtime_thread) {
  const int n = 4 * static_cast<int>(rt.size());
  std::atomic<int> ticks{0};
  std::atomic<bool> stop{false};
  std::vector<coop::task<void>> tickers;
  for (unsigned i = 0; i < rt.size(); ++i)
    tickers.push_back(rt.spawn_on(i, [&] {
      while (!stop) {
        coop::sleep_for(5ms);
        ++ticks;
      }
    }));
  std::vector<coop::task<int>> callers;
  for (int i = 0; i < n; ++i)
    callers.push_back(rt.spawn_on(i % rt.size(), [i] {
      return coop::offload([i] {
        std::this_thread::sleep_for(20ms);
        return i * i;
      });
    }));
  for (int i = 0; i < n; ++i)
    BOOST_TEST(callers[i].get() == i * i);
  stop = true;
  coop::join_all(tickers);
  BOOST_TEST(ticks.load() >= 2); // the runtime threads kept running their fibers
}

COOP_MT_TEST_CASE(offload_cancelled_from_another_runtime_thread) {
  gate g;
  auto caller = rt.spawn_on(1 % rt.size(), [&] {
    return coop::offload([&] {
      g.pass();
      return 1;
    });
  });
  BOOST_TEST(sleep_until_true([&] { return g.entered.load(); }));
  caller.cancel();
  BOOST_CHECK_THROW(caller.get(), coop::cancelled);
  g.open = true;
  BOOST_TEST(sleep_until_true([&] { return g.left.load(); }));
}

COOP_MT_TEST_CASE(offload_timeouts_on_every_runtime_thread) {
  std::vector<std::unique_ptr<gate>> gates;
  std::vector<coop::task<bool>> callers;
  for (unsigned i = 0; i < rt.size(); ++i) {
    gates.push_back(std::make_unique<gate>());
    callers.push_back(rt.spawn_on(i, [g = gates.back().get()] {
      try {
        coop::timeout t(30ms);
        coop::offload([g] { g->pass(); });
        return false;
      } catch (const coop::timeout_error&) {
        return true;
      }
    }));
  }
  for (auto& c : callers)
    BOOST_TEST(c.get());
  for (auto& g : gates)
    g->open = true;
  for (auto& g : gates)
    BOOST_TEST(sleep_until_true([&] { return g->left.load() || !g->entered.load(); }));
}
