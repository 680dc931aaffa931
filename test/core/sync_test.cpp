#define BOOST_TEST_MODULE coop_sync
// event, semaphore, mutex, wait_group and async_result: behaviour, the
// interruption rules (timeout, cancel, shield, entry check), use across
// runtime threads and from plain threads, misuse.
#include "support.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using test_support::expect_cancel;
using test_support::expect_timeout;

/// Runs `blocking` in a fiber inside a shield, cancels it while it waits,
/// then lets `complete` end the wait: the wait succeeds, and the first
/// blocking call after the shield fails with cancelled.
template <class F, class C> void expect_shielded(F blocking, C complete) {
  bool completed = false;
  boost::system::error_code after;
  auto t = coop::spawn([&] {
    {
      coop::shield s;
      blocking();
      completed = true;
    }
    coop::this_fiber::yield(after);
  });
  coop::this_fiber::yield();
  t.cancel();
  coop::this_fiber::yield(); // a cancel that was not deferred would end the wait now
  BOOST_TEST(!completed);
  complete();
  t.get();
  BOOST_TEST(completed);
  BOOST_TEST((after == coop::errc::cancelled));
}

/// Lets `t` expire, ignoring the interruptions it causes meanwhile.
void outlive(const coop::timeout& t) {
  boost::system::error_code ec;
  while (!t.expired())
    coop::sleep_for(1ms, ec);
}

/// Raises `max` to at least `v`.
void raise_max(std::atomic<int>& max, int v) {
  int m = max.load();
  while (v > m && !max.compare_exchange_weak(m, v)) {
  }
}

} // namespace

// --- all of them ---------------------------------------------------------------------

COOP_TEST_CASE(waits_fail_at_entry_when_an_interruption_is_due_even_if_they_could_complete) {
  coop::event ev;
  ev.set();
  coop::semaphore sem(1);
  coop::mutex m;
  coop::wait_group wg;
  coop::async_result<int> r;
  r.set(1);
  {
    coop::timeout expired(1ms);
    outlive(expired);
    BOOST_CHECK_THROW(ev.wait(), coop::timeout_error);
    BOOST_CHECK_THROW(sem.acquire(), coop::timeout_error);
    BOOST_CHECK_THROW(m.lock(), coop::timeout_error);
    BOOST_CHECK_THROW(wg.wait(), coop::timeout_error);
    BOOST_CHECK_THROW(r.get(), coop::timeout_error);
    BOOST_CHECK_THROW((void)sem.acquire_for(10s), coop::timeout_error); // timed forms too
    boost::system::error_code ec;
    BOOST_TEST(!m.try_lock_for(10s, ec));
    BOOST_TEST((ec == coop::errc::timed_out));
  }
  auto cancelled_fiber = coop::spawn([&] {
    boost::system::error_code ec;
    coop::sleep_for(10s, ec); // cancelled here; the cancel sticks
    int failures = 0;
    ev.wait(ec);
    failures += ec == coop::errc::cancelled;
    sem.acquire(ec);
    failures += ec == coop::errc::cancelled;
    m.lock(ec);
    failures += ec == coop::errc::cancelled;
    wg.wait(ec);
    failures += ec == coop::errc::cancelled;
    r.wait(ec);
    failures += ec == coop::errc::cancelled;
    try {
      std::lock_guard lock(m); // the guard propagates the exception
    } catch (const coop::cancelled&) {
      ++failures;
    }
    return failures;
  });
  coop::this_fiber::yield();
  cancelled_fiber.cancel();
  BOOST_TEST(cancelled_fiber.get() == 6);
  // Nothing was taken.
  BOOST_TEST(sem.available() == 1u);
  BOOST_TEST(m.try_lock());
  m.unlock();
}

// --- event ----------------------------------------------------------------------------

COOP_TEST_CASE(event_set_wakes_every_waiter_and_stays_set_until_cleared) {
  coop::event ev;
  BOOST_TEST(!ev.is_set());
  int woken = 0;
  std::vector<coop::task<void>> waiters;
  for (int i = 0; i < 3; ++i)
    waiters.push_back(coop::spawn([&] {
      ev.wait();
      ++woken;
    }));
  coop::this_fiber::yield(); // all three wait
  BOOST_TEST(woken == 0);
  ev.set();
  ev.clear(); // a waiter woken by set() returns even though the flag was cleared
  coop::join_all(waiters);
  BOOST_TEST(woken == 3);
  BOOST_TEST(!ev.is_set());
  BOOST_TEST(!ev.wait_for(2ms)); // its own deadline: false, no exception
  ev.set();
  ev.wait(); // set: returns at once
  BOOST_TEST(ev.wait_for(0ms));
  boost::system::error_code ec;
  BOOST_TEST(ev.wait_until(std::chrono::steady_clock::now() + 1s, ec));
  BOOST_TEST(!ec);
}

COOP_TEST_CASE(event_wait_honours_timeout_cancel_and_shield) {
  coop::event ev;
  expect_timeout([&] { ev.wait(); });
  expect_cancel([&] { ev.wait(); });
  expect_shielded([&] { ev.wait(); }, [&] { ev.set(); });
  ev.clear();
  // An outer timeout is an exception even in the timed form; its own deadline is not.
  coop::timeout outer(5ms);
  BOOST_CHECK_THROW((void)ev.wait_for(10s), coop::timeout_error);
  boost::system::error_code ec;
  BOOST_TEST(!ev.wait_for(10s, ec));
  BOOST_TEST((ec == coop::errc::timed_out));
  ev.wait(ec);
  BOOST_TEST((ec == coop::errc::timed_out));
}

COOP_MT_TEST_CASE(event_wakes_waiters_on_every_thread) {
  coop::event go;
  std::atomic<int> waiting{0}, woken{0};
  std::vector<coop::task<void>> waiters;
  for (unsigned i = 0; i < 2 * rt.size(); ++i)
    waiters.push_back(rt.spawn_on(i % rt.size(), [&] {
      ++waiting;
      go.wait();
      ++woken;
    }));
  test_support::yield_until([&] { return waiting.load() == static_cast<int>(2 * rt.size()); });
  go.set();
  coop::join_all(waiters);
  BOOST_TEST(woken.load() == static_cast<int>(2 * rt.size()));
}

COOP_MT_TEST_CASE(event_wait_cancelled_from_another_thread) {
  coop::event never;
  std::atomic<bool> started{false};
  auto waiter = rt.spawn_on(rt.size() - 1, [&] {
    started = true;
    never.wait();
  });
  test_support::yield_until([&] { return started.load(); });
  waiter.cancel();
  BOOST_CHECK_THROW(waiter.get(), coop::cancelled);
}

BOOST_AUTO_TEST_CASE(a_plain_thread_waits_for_an_event_set_by_a_fiber) {
  coop::runtime rt(2);
  coop::event ev, plain_ready;
  bool timed_out = false, ec_timed_out = false, wait_for_false = false, woken = false;
  std::thread plain([&] {
    try {
      coop::timeout t(10ms);
      ev.wait();
    } catch (const coop::timeout_error&) {
      timed_out = true;
    }
    {
      coop::timeout t(5ms);
      boost::system::error_code ec;
      ev.wait(ec);
      ec_timed_out = ec == coop::errc::timed_out;
    }
    wait_for_false = !ev.wait_for(5ms);
    plain_ready.set();
    coop::timeout generous(60s); // applies, never expires
    ev.wait();
    woken = true;
  });
  rt.spawn_on(1, [&] {
      plain_ready.wait();
      coop::sleep_for(2ms); // let the plain thread block (not needed for correctness)
      ev.set();
    }).get();
  plain.join();
  BOOST_TEST(timed_out);
  BOOST_TEST(ec_timed_out);
  BOOST_TEST(wait_for_false);
  BOOST_TEST(woken);
}

// --- semaphore ------------------------------------------------------------------------

COOP_TEST_CASE(semaphore_counts_and_may_be_released_above_its_initial_count) {
  coop::semaphore sem(2);
  BOOST_TEST(sem.try_acquire());
  sem.acquire();
  BOOST_TEST(!sem.try_acquire());
  BOOST_TEST(sem.available() == 0u);
  BOOST_TEST(!sem.acquire_for(2ms)); // its own deadline: false, no exception
  sem.release(3);                    // not bounded: above the initial 2
  BOOST_TEST(sem.available() == 3u);
  BOOST_TEST(sem.acquire_for(0ms));
  boost::system::error_code ec;
  sem.acquire(ec);
  BOOST_TEST(!ec);
  BOOST_TEST(sem.available() == 1u);
}

COOP_TEST_CASE(semaphore_hands_units_to_waiters_in_fifo_order) {
  coop::semaphore sem(0);
  std::vector<int> order;
  std::vector<coop::task<void>> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.push_back(coop::spawn([&, i] {
      sem.acquire();
      order.push_back(i);
    }));
    coop::this_fiber::yield(); // waiter i queues before waiter i + 1
  }
  sem.release();
  // The unit went to waiter 0 under the lock: a fast re-acquirer finds none.
  BOOST_TEST(!sem.try_acquire());
  sem.release(2);
  BOOST_TEST(sem.available() == 0u);
  coop::join_all(waiters);
  BOOST_TEST((order == std::vector<int>{0, 1, 2}));
}

COOP_TEST_CASE(semaphore_acquire_honours_timeout_cancel_and_shield) {
  coop::semaphore sem(0);
  expect_timeout([&] { sem.acquire(); });
  expect_cancel([&] { sem.acquire(); });
  BOOST_TEST(sem.available() == 0u);
  sem.release(); // the interrupted waits took nothing and left no waiter behind
  BOOST_TEST(sem.available() == 1u);
  BOOST_TEST(sem.try_acquire());
  expect_shielded([&] { sem.acquire(); }, [&] { sem.release(); });
  BOOST_TEST(sem.available() == 0u); // the shielded wait kept its unit
  coop::timeout outer(5ms);
  BOOST_CHECK_THROW((void)sem.acquire_for(10s), coop::timeout_error); // outer timeout: exception
}

COOP_MT_TEST_CASE(semaphore_limits_concurrency_across_threads) {
  constexpr int limit = 3;
  coop::semaphore sem(limit);
  std::atomic<int> inside{0}, max_inside{0}, runs{0};
  std::vector<coop::task<void>> workers;
  for (unsigned i = 0; i < 4 * rt.size() + 4; ++i)
    workers.push_back(rt.spawn_on(i % rt.size(), [&] {
      for (int round = 0; round < 20; ++round) {
        sem.acquire();
        raise_max(max_inside, ++inside);
        coop::this_fiber::yield(); // stay inside while others try to enter
        coop::this_fiber::yield();
        --inside;
        ++runs;
        sem.release();
      }
    }));
  coop::join_all(workers);
  for (auto& w : workers)
    w.get();
  BOOST_TEST(max_inside.load() <= limit);
  BOOST_TEST(max_inside.load() >= 1);
  BOOST_TEST(runs.load() == static_cast<int>(4 * rt.size() + 4) * 20);
  BOOST_TEST(sem.available() == static_cast<std::size_t>(limit));
}

COOP_MT_TEST_CASE(semaphore_acquire_cancelled_from_another_thread_takes_nothing) {
  coop::semaphore sem(0);
  std::atomic<bool> started{false};
  auto waiter = rt.spawn_on(rt.size() - 1, [&] {
    started = true;
    sem.acquire();
  });
  test_support::yield_until([&] { return started.load(); });
  waiter.cancel();
  BOOST_CHECK_THROW(waiter.get(), coop::cancelled);
  sem.release();
  BOOST_TEST(sem.available() == 1u);
}

COOP_TEST_CASE(semaphore_release_from_an_asio_handler_and_a_plain_thread) {
  coop::semaphore sem(0);
  boost::asio::post(coop::this_thread_io(), [&] { sem.release(); });
  BOOST_TEST(sem.acquire_for(10s));
  std::thread plain([&] { sem.release(); });
  sem.acquire();
  plain.join();
  // A plain thread waits too, until a fiber releases.
  coop::semaphore back(0);
  std::atomic<bool> acquired{false};
  std::thread waiter([&] {
    back.acquire();
    acquired = true;
  });
  coop::sleep_for(2ms);
  BOOST_TEST(!acquired.load());
  back.release();
  test_support::yield_until([&] { return acquired.load(); });
  waiter.join();
}

// --- mutex ----------------------------------------------------------------------------

COOP_TEST_CASE(mutex_works_with_standard_lock_types) {
  coop::mutex m;
  {
    std::lock_guard lock(m);
    BOOST_TEST(!m.try_lock());
  }
  BOOST_TEST(m.try_lock());
  m.unlock();
  {
    std::unique_lock lock(m, 10ms); // try_lock_for
    BOOST_TEST(lock.owns_lock());
    auto other = coop::spawn([&] { return m.try_lock_for(2ms); });
    BOOST_TEST(!other.get()); // its own deadline: false, no exception
  }
  std::scoped_lock both(m);
}

COOP_TEST_CASE(mutex_hands_over_in_fifo_order) {
  coop::mutex m;
  std::vector<int> order;
  m.lock();
  std::vector<coop::task<void>> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.push_back(coop::spawn([&, i] {
      std::lock_guard lock(m);
      order.push_back(i);
    }));
    coop::this_fiber::yield();
  }
  m.unlock();
  BOOST_TEST(!m.try_lock()); // handed to waiter 0: a fast re-locker does not get it
  coop::join_all(waiters);
  BOOST_TEST((order == std::vector<int>{0, 1, 2}));
  BOOST_TEST(m.try_lock());
  m.unlock();
}

COOP_TEST_CASE(mutex_lock_honours_timeout_cancel_and_shield) {
  coop::mutex m;
  m.lock();
  expect_timeout([&] { m.lock(); });
  expect_cancel([&] { std::lock_guard lock(m); }); // the guard propagates cancelled
  auto shielded = coop::spawn([&] {
    {
      coop::shield s;
      m.lock();
      m.unlock();
    }
    coop::this_fiber::yield();
  });
  coop::this_fiber::yield();
  shielded.cancel();
  coop::this_fiber::yield();
  BOOST_TEST(!shielded.done());
  m.unlock();
  BOOST_CHECK_THROW(shielded.get(), coop::cancelled); // after the shield
  // Free now; the interrupted waiters left nothing behind.
  BOOST_TEST(m.try_lock());
  m.unlock();
  auto holder = coop::spawn([&] {
    std::lock_guard lock(m);
    boost::system::error_code ec;
    coop::sleep_for(10s, ec); // until cancelled
  });
  coop::this_fiber::yield();
  {
    coop::timeout outer(5ms);
    BOOST_CHECK_THROW((void)m.try_lock_for(10s), coop::timeout_error); // outer timeout: exception
  }
  holder.cancel();
  holder.get();
  BOOST_TEST(m.try_lock());
  m.unlock();
}

COOP_TEST_CASE(mutex_misuse_is_a_usage_error) {
  coop::mutex m;
  BOOST_CHECK_THROW(m.unlock(), coop::usage_error); // not locked
  m.lock();
  BOOST_CHECK_THROW(m.lock(), coop::usage_error); // not recursive
  auto other = coop::spawn([&] { m.unlock(); });
  BOOST_CHECK_THROW(other.get(), coop::usage_error); // not the holder
  BOOST_TEST(!m.try_lock());                         // still held
  bool refused = false;
  std::atomic<bool> tried{false};
  std::thread plain([&] {
    try {
      m.unlock(); // a plain thread that does not hold it either
    } catch (const coop::usage_error&) {
      refused = true;
    }
    tried = true;
    m.lock(); // waits until the fiber unlocks: the plain thread then holds it
    m.unlock();
  });
  test_support::yield_until([&] { return tried.load(); });
  m.unlock();
  plain.join();
  BOOST_TEST(refused);
  BOOST_TEST(m.try_lock());
  m.unlock();
}

COOP_MT_TEST_CASE(mutex_protects_a_plain_counter_across_threads) {
  coop::mutex m;
  long counter = 0; // not atomic: the mutex orders every access
  constexpr int per_fiber = 200;
  const unsigned fibers = 3 * rt.size();
  std::vector<coop::task<void>> workers;
  for (unsigned i = 0; i < fibers; ++i)
    workers.push_back(rt.spawn_on(i % rt.size(), [&] {
      for (int k = 0; k < per_fiber; ++k) {
        std::lock_guard lock(m);
        long v = counter;
        if (k % 8 == 0) coop::this_fiber::yield(); // others run while we hold it
        counter = v + 1;
      }
    }));
  coop::join_all(workers);
  for (auto& w : workers)
    w.get();
  std::lock_guard lock(m);
  BOOST_TEST(counter == static_cast<long>(fibers) * per_fiber);
}

COOP_MT_TEST_CASE(mutex_lock_cancelled_from_another_thread) {
  coop::mutex m;
  m.lock();
  std::atomic<bool> started{false};
  auto waiter = rt.spawn_on(rt.size() - 1, [&] {
    started = true;
    std::lock_guard lock(m);
  });
  test_support::yield_until([&] { return started.load(); });
  waiter.cancel();
  BOOST_CHECK_THROW(waiter.get(), coop::cancelled);
  m.unlock();
  BOOST_TEST(m.try_lock()); // the cancelled waiter was not handed the mutex
  m.unlock();
}

namespace coop::detail {
/// The mutex's wait-queue spinlock, which the tests hold to prove the fast path never takes it.
struct mutex_test_access {
  static spinlock& wait_lock(coop::mutex& m) { return m.lock_; }
};
} // namespace coop::detail

BOOST_AUTO_TEST_CASE(mutex_lock_and_unlock_without_waiters_never_take_the_wait_queue_lock) {
  // The uncontended path is one atomic operation each way: with the wait
  // queue's spinlock held by this thread, a runtime thread still locks and
  // unlocks a free mutex (in every form), including right after a waiter
  // timed out and left the queue. Taking the spinlock there would hang until
  // this thread lets go (10 s below), and the test fails.
  coop::mutex m;
  std::atomic<bool> ready{false}, held{false}, done{false}, timed_out_waiter_failed{false};
  coop::runtime rt(1);
  auto body = rt.spawn_on(0, [&] {
    m.lock();
    auto other = coop::spawn([&] { return m.try_lock_for(5ms); });
    timed_out_waiter_failed = !other.get(); // it queued, then left
    ready = true;
    while (!held)
      coop::this_fiber::yield();
    m.unlock(); // nobody waits any more
    for (int i = 0; i < 1000; ++i) {
      m.lock();
      m.unlock();
      if (m.try_lock()) m.unlock();
      std::lock_guard lock(m);
    }
    if (m.try_lock_for(1s)) m.unlock();
    done = true;
  });
  auto give_up = std::chrono::steady_clock::now() + 10s;
  while (!ready && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(1ms);
  BOOST_REQUIRE(ready.load());
  bool finished_while_held = false;
  {
    coop::detail::spinlock_lock lk(coop::detail::mutex_test_access::wait_lock(m));
    held = true;
    give_up = std::chrono::steady_clock::now() + 10s;
    while (!done && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(1ms);
    finished_while_held = done.load();
  }
  body.get();
  BOOST_TEST(timed_out_waiter_failed.load());
  BOOST_TEST(finished_while_held, "lock/unlock of a free mutex waited for the wait queue's spinlock");
  BOOST_TEST(m.try_lock());
  m.unlock();
}

BOOST_AUTO_TEST_CASE(mutex_between_a_plain_thread_and_fibers) {
  coop::runtime rt(2);
  coop::mutex m;
  long counter = 0;
  std::thread plain([&] {
    for (int k = 0; k < 500; ++k) {
      std::lock_guard lock(m);
      ++counter;
    }
  });
  rt.spawn_on(1, [&] {
      for (int k = 0; k < 500; ++k) {
        std::lock_guard lock(m);
        long v = counter;
        if (k % 16 == 0) coop::this_fiber::yield();
        counter = v + 1;
      }
    }).get();
  plain.join();
  BOOST_TEST(counter == 1000);
}

// --- wait_group -----------------------------------------------------------------------

COOP_TEST_CASE(wait_group_waits_for_its_counter_to_reach_zero) {
  coop::wait_group wg;
  wg.wait(); // zero: returns at once
  BOOST_TEST(wg.wait_for(0ms));
  int finished = 0;
  wg.add(3);
  for (int i = 0; i < 3; ++i)
    coop::spawn([&] {
      coop::this_fiber::yield();
      ++finished;
      wg.done();
    }).detach();
  BOOST_TEST(wg.count() == 3);
  wg.wait();
  BOOST_TEST(finished == 3);
  BOOST_TEST(wg.count() == 0);
  wg.add(1);
  BOOST_TEST(!wg.wait_for(2ms)); // its own deadline: false, no exception
  wg.add(-1);
  wg.wait();
}

COOP_TEST_CASE(wait_group_below_zero_is_a_usage_error) {
  coop::wait_group wg;
  BOOST_CHECK_THROW(wg.done(), coop::usage_error);
  wg.add(2);
  BOOST_CHECK_THROW(wg.add(-3), coop::usage_error);
  BOOST_TEST(wg.count() == 2); // unchanged
  wg.done();
  wg.done();
  BOOST_CHECK_THROW(wg.done(), coop::usage_error);
  BOOST_TEST(wg.count() == 0);
}

COOP_TEST_CASE(wait_group_wait_honours_timeout_cancel_and_shield) {
  coop::wait_group wg;
  wg.add(1);
  expect_timeout([&] { wg.wait(); });
  expect_cancel([&] { wg.wait(); });
  expect_shielded([&] { wg.wait(); }, [&] { wg.done(); });
  coop::timeout outer(5ms);
  wg.add(1);
  BOOST_CHECK_THROW((void)wg.wait_for(10s), coop::timeout_error);
  boost::system::error_code ec;
  wg.wait(ec);
  BOOST_TEST((ec == coop::errc::timed_out));
}

COOP_MT_TEST_CASE(wait_group_counts_fibers_of_every_thread) {
  coop::wait_group wg;
  std::atomic<int> finished{0};
  const unsigned n = 4 * rt.size();
  wg.add(static_cast<std::ptrdiff_t>(n));
  for (unsigned i = 0; i < n; ++i)
    rt.spawn_on(i % rt.size(), [&] {
        coop::this_fiber::yield();
        ++finished;
        wg.done();
      }).detach();
  wg.wait();
  BOOST_TEST(finished.load() == static_cast<int>(n));
  // Cancelled from another thread.
  wg.add(1);
  std::atomic<bool> started{false};
  auto waiter = rt.spawn_on(rt.size() - 1, [&] {
    started = true;
    wg.wait();
  });
  test_support::yield_until([&] { return started.load(); });
  waiter.cancel();
  BOOST_CHECK_THROW(waiter.get(), coop::cancelled);
  wg.done();
}

BOOST_AUTO_TEST_CASE(a_plain_thread_waits_on_a_wait_group) {
  coop::runtime rt(2);
  coop::wait_group wg;
  wg.add(2);
  bool timed_out = false;
  std::thread plain([&] {
    {
      coop::timeout t(5ms);
      boost::system::error_code ec;
      wg.wait(ec);
      timed_out = ec == coop::errc::timed_out;
    }
    wg.done();
    wg.wait(); // the fiber below does the other done()
  });
  rt.spawn_on(1, [&] {
      test_support::yield_until([&] { return wg.count() == 1; });
      wg.done();
    }).get();
  plain.join();
  BOOST_TEST(timed_out);
  BOOST_TEST(wg.count() == 0);
}

// --- async_result ---------------------------------------------------------------------

COOP_TEST_CASE(async_result_delivers_one_value_to_every_getter) {
  coop::async_result<std::string> r;
  BOOST_TEST(!r.ready());
  BOOST_TEST(r.get_for(2ms) == nullptr); // its own deadline: nullptr, no exception
  std::vector<coop::task<std::size_t>> getters;
  for (int i = 0; i < 3; ++i)
    getters.push_back(coop::spawn([&] { return r.get().size(); }));
  coop::this_fiber::yield();
  r.set("hello");
  BOOST_TEST(r.ready());
  for (auto& g : getters)
    BOOST_TEST(g.get() == 5u);
  BOOST_TEST(r.get() == "hello"); // again: never moved out
  BOOST_TEST(&r.get() == r.get_for(0ms));
  BOOST_CHECK_THROW(r.set("again"), coop::usage_error);
  BOOST_CHECK_THROW(r.set_exception(std::make_exception_ptr(std::runtime_error("x"))), coop::usage_error);
  BOOST_TEST(r.get() == "hello");
}

COOP_TEST_CASE(async_result_rethrows_its_exception_to_every_getter) {
  coop::async_result<int> r;
  auto getter = coop::spawn([&] { return r.get(); });
  coop::this_fiber::yield();
  r.set_exception(std::make_exception_ptr(std::runtime_error("boom")));
  BOOST_CHECK_THROW(getter.get(), std::runtime_error);
  BOOST_CHECK_THROW(r.get(), std::runtime_error);
  BOOST_CHECK_THROW((void)r.get_for(1s), std::runtime_error);
  r.wait(); // waiting does not rethrow
  BOOST_CHECK_THROW(r.set(1), coop::usage_error);
  coop::async_result<int> other;
  BOOST_CHECK_THROW(other.set_exception(nullptr), coop::usage_error);
  BOOST_TEST(!other.ready());
}

COOP_TEST_CASE(async_result_void_and_move_only_values) {
  coop::async_result<> done;
  BOOST_TEST(!done.get_for(1ms));
  auto setter = coop::spawn([&] { done.set(); });
  done.get();
  BOOST_TEST(done.get_for(0ms));
  setter.join();
  coop::async_result<std::unique_ptr<int>> owned;
  owned.set(std::make_unique<int>(7));
  BOOST_TEST(*owned.get() == 7);
}

COOP_TEST_CASE(async_result_wait_honours_timeout_cancel_and_shield) {
  coop::async_result<int> r;
  expect_timeout([&] { r.get(); });
  expect_cancel([&] { r.wait(); });
  expect_shielded([&] { BOOST_TEST(r.get() == 3); }, [&] { r.set(3); });
  coop::async_result<int> never;
  coop::timeout outer(5ms);
  BOOST_CHECK_THROW((void)never.get_for(10s), coop::timeout_error); // outer timeout: exception
  boost::system::error_code ec;
  BOOST_TEST(!never.wait_for(10s, ec));
  BOOST_TEST((ec == coop::errc::timed_out));
}

COOP_MT_TEST_CASE(async_result_is_read_on_every_thread) {
  coop::async_result<std::vector<int>> r;
  std::atomic<int> waiting{0};
  std::vector<coop::task<int>> getters;
  for (unsigned i = 0; i < 2 * rt.size(); ++i)
    getters.push_back(rt.spawn_on(i % rt.size(), [&] {
      ++waiting;
      const auto& v = r.get();
      return v[0] + v[1];
    }));
  test_support::yield_until([&] { return waiting.load() == static_cast<int>(2 * rt.size()); });
  auto setter = rt.spawn_on(rt.size() - 1, [&] { r.set({20, 22}); });
  for (auto& g : getters)
    BOOST_TEST(g.get() == 42);
  setter.get();
  // A getter on another thread, cancelled.
  coop::async_result<int> never;
  std::atomic<bool> started{false};
  auto waiter = rt.spawn_on(rt.size() - 1, [&] {
    started = true;
    return never.get();
  });
  test_support::yield_until([&] { return started.load(); });
  waiter.cancel();
  BOOST_CHECK_THROW(waiter.get(), coop::cancelled);
}

BOOST_AUTO_TEST_CASE(async_result_between_plain_threads_and_fibers) {
  coop::runtime rt(1);
  coop::async_result<int> to_thread, to_fiber;
  bool timed_out = false;
  int got = 0;
  std::thread plain([&] {
    try {
      coop::timeout t(5ms);
      to_thread.get();
    } catch (const coop::timeout_error&) {
      timed_out = true;
    }
    got = to_thread.get();
    to_fiber.set(got + 1); // set from a plain thread
  });
  auto fiber = rt.spawn_on(0, [&] {
    coop::sleep_for(10ms);
    to_thread.set(41);
    return to_fiber.get();
  });
  BOOST_TEST(fiber.get() == 42);
  plain.join();
  BOOST_TEST(timed_out);
  BOOST_TEST(got == 41);
}
