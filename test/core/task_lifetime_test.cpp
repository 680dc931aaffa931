// What happens to a fiber when its task handle goes away: the handle's
// destructor (and a move assignment over it) cancels a fiber that has not
// finished and waits for it, as std::jthread does; `detach()` lets it run on.
// Also the per-runtime fiber count.
#define BOOST_TEST_MODULE coop_task_lifetime
#include "support.hpp"

#include <boost/asio/post.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>
#include <type_traits>

namespace {

/// Records, when it is destroyed, whether the fiber it watches had already
/// let go of its function (every capture destroyed): declared before the
/// task in a scope, it dies after the handle.
struct scope_guard {
  const std::weak_ptr<int>& fiber_captures;
  bool& fiber_gone_first;
  bool& scope_left;
  ~scope_guard() {
    fiber_gone_first = fiber_captures.expired();
    scope_left = true;
  }
};

/// What a `sleeper` fiber got to: plain bools for fibers of one thread,
/// atomics across threads.
template <class Flag> struct steps { Flag started{false}, cancelled{false}, ended{false}; };

/// A fiber body that sleeps until cancelled (5 s at most, when the handle
/// failed to cancel it), then, when `clean_up`, blocks 2 ms more in a shield
/// (clean-up that the destructor must wait through), and notes each step.
template <class Flag> auto sleeper(steps<Flag>& s, bool clean_up = false) {
  return [&s, clean_up] {
    s.started = true;
    try {
      coop::sleep_for(5s);
    } catch (const coop::cancelled&) {
      s.cancelled = true;
      if (clean_up) {
        coop::shield no_cancel;
        coop::sleep_for(2ms);
      }
    }
    s.ended = true;
  };
}

} // namespace

BOOST_AUTO_TEST_CASE(a_task_is_move_only_and_its_destructor_never_throws) {
  BOOST_TEST(!std::is_copy_constructible_v<coop::task<void>>);
  BOOST_TEST(!std::is_copy_assignable_v<coop::task<int>>);
  BOOST_TEST(std::is_nothrow_move_constructible_v<coop::task<int>>);
  BOOST_TEST(std::is_nothrow_destructible_v<coop::task<int>>);
}

// The classic misuse: a fiber captures a local by reference; the scope is
// left by an exception before the fiber ever ran. Dropping the handle must
// cancel the fiber (so its function never runs) and wait until it has ended,
// all before the local is destroyed.
COOP_TEST_CASE(a_handle_dropped_by_an_exception_cancels_the_fiber_before_the_locals_die) {
  bool fiber_gone_first = false, scope_left = false, used_after_scope = false, fn_ran = false;
  std::weak_ptr<int> captures;
  try {
    scope_guard guard{captures, fiber_gone_first, scope_left};
    int listener = 7; // stands for a listener the fiber would accept on
    auto token = std::make_shared<int>(0);
    captures = token;
    auto t = coop::spawn([&listener, &scope_left, &used_after_scope, &fn_ran, token] {
      fn_ran = true;
      if (scope_left) { // the local is gone: this would be the use after scope
        used_after_scope = true;
        return;
      }
      ++listener;
    });
    token.reset();
    throw std::runtime_error("missing CA file");
  } catch (const std::runtime_error&) {
  }
  for (int i = 0; i < 5; ++i) // a detached fiber would run now
    coop::this_fiber::yield();
  BOOST_TEST(fiber_gone_first);
  BOOST_TEST(!used_after_scope);
  BOOST_TEST(!fn_ran); // cancelled before it started: never runs
}

COOP_TEST_CASE(a_handle_dropped_while_the_fiber_waits_in_accept_cancels_it_and_waits) {
  // Shared, so that even a fiber left running (the bug) finds it alive.
  auto listener = std::make_shared<coop::net::tcp_listener>(test_support::loopback());
  bool started = false, cancelled = false, ended = false;
  {
    auto t = coop::spawn([&, listener] {
      started = true;
      coop::timeout bound(5s); // only if the handle failed to cancel it
      try {
        auto c = listener->accept();
      } catch (const coop::cancelled&) {
        cancelled = true;
        coop::shield s; // clean-up that blocks: the destructor waits through it
        coop::sleep_for(2ms);
      } catch (const coop::timeout_error&) {
      }
      ended = true;
    });
    test_support::yield_until([&] { return started; }); // now parked in accept
  }
  BOOST_TEST(cancelled);
  BOOST_TEST(ended);
}

COOP_TEST_CASE(a_dropped_spawn_later_never_calls_its_function) {
  bool ran = false;
  {
    auto t = coop::spawn_later(1ms, [&] { ran = true; });
  }
  coop::sleep_for(10ms);
  BOOST_TEST(!ran);
}

COOP_TEST_CASE(a_detached_fiber_runs_on_without_its_handle) {
  bool done = false;
  {
    auto t = coop::spawn([&] {
      coop::sleep_for(1ms);
      done = true;
    });
    t.detach();
    BOOST_TEST(!t.valid());
  }
  BOOST_TEST(!done);
  test_support::yield_until([&] { return done; });
}

COOP_TEST_CASE(moved_from_and_default_handles_do_nothing_when_destroyed) {
  bool done = false;
  coop::task<void> kept;
  {
    coop::task<void> empty;
    auto t = coop::spawn([&] {
      coop::sleep_for(1ms);
      done = true;
    });
    kept = std::move(t); // t, moved-from, dies here: the fiber goes on
  }
  BOOST_TEST(!done);
  kept.join();
  BOOST_TEST(done);
}

COOP_TEST_CASE(move_assignment_over_a_live_handle_cancels_and_awaits_the_old_fiber) {
  steps<bool> old;
  bool new_ran = false;
  auto t = coop::spawn(sleeper(old));
  test_support::yield_until([&] { return old.started; });
  t = coop::spawn([&] { new_ran = true; }); // (the new fiber may run while the old one ends)
  BOOST_TEST(old.ended);
  t.join();
  BOOST_TEST(new_ran);
}

// The destructor's wait is a clean-up wait (as task_group's destructor): it
// waits even in a fiber that is being cancelled and unwinds.
COOP_TEST_CASE(a_cancelled_fiber_that_drops_a_handle_still_waits_for_that_fiber) {
  steps<bool> inner_steps;
  bool inner_done_first = false;
  auto outer = coop::spawn([&] {
    struct check {
      bool& ended;
      bool& out;
      ~check() { out = ended; }
    } on_unwind{inner_steps.ended, inner_done_first}; // destroyed after `inner`
    auto inner = coop::spawn(sleeper(inner_steps, true));
    coop::sleep_for(10s); // cancelled here: `inner` is dropped while unwinding
  });
  test_support::yield_until([&] { return inner_steps.started; });
  outer.cancel();
  BOOST_CHECK_THROW(outer.get(), coop::cancelled);
  BOOST_TEST(inner_steps.cancelled);
  BOOST_TEST(inner_done_first);
}

// A fiber that destroys its own handle (it was moved into the fiber's own
// state) cannot wait for itself: the handle detaches.
COOP_TEST_CASE(a_fiber_that_destroys_its_own_handle_goes_on) {
  std::optional<coop::task<void>> holder;
  bool released = false, went_on = false;
  coop::event go;
  holder.emplace(coop::spawn([&] {
    go.wait();
    holder.reset(); // this fiber's own handle
    released = true;
    coop::sleep_for(1ms);
    went_on = true;
  }));
  go.set();
  test_support::yield_until([&] { return went_on; });
  BOOST_TEST(released);

  // The last owner of the handle is the fiber's own function object.
  struct box {
    coop::task<int> t;
  };
  auto b = std::make_shared<box>();
  std::weak_ptr<box> watch = b;
  b->t = coop::spawn([b]() mutable { return 7; });
  b.reset();
  test_support::yield_until([&] { return watch.expired(); });
}

// A runtime thread's scheduler context (where Asio handlers run) must never
// park: a handle dropped there cancels its fiber and lets it end on its own.
COOP_TEST_CASE(a_handle_dropped_in_an_asio_handler_cancels_without_waiting) {
  steps<bool> fiber;
  bool handler_ran = false;
  auto t = coop::spawn(sleeper(fiber));
  test_support::yield_until([&] { return fiber.started; });
  struct holder { // drops the handle in the handler's destructor, then looks
    coop::task<void> t;
    bool& cancelled;
    bool& waited;
    holder(coop::task<void> task, bool& c, bool& w) : t(std::move(task)), cancelled(c), waited(w) {}
    holder(holder&&) noexcept = default;
    ~holder() {
      if (!t.valid()) return; // moved from
      t = coop::task<void>();
      waited = cancelled;
    }
  };
  bool waited = false;
  boost::asio::post(coop::this_thread_io(),
                    [&handler_ran, h = holder(std::move(t), fiber.cancelled, waited)] { handler_ran = true; });
  test_support::yield_until([&] { return fiber.cancelled; });
  coop::sleep_for(5ms); // the scheduler context runs again meanwhile
  BOOST_TEST(handler_ran);
  BOOST_TEST(!waited);
}

BOOST_AUTO_TEST_CASE(a_handle_dropped_on_a_plain_thread_cancels_and_waits) {
  coop::runtime rt(2);
  steps<std::atomic<bool>> fiber;
  {
    auto t = rt.spawn_on(1, sleeper(fiber, true));
    for (int i = 0; i < 10'000 && !fiber.started; ++i)
      std::this_thread::sleep_for(1ms);
    BOOST_REQUIRE(fiber.started.load());
  } // on the main thread, outside any runtime
  BOOST_TEST(fiber.ended.load());
}

BOOST_AUTO_TEST_CASE(handles_dropped_on_a_plain_thread_right_after_spawn_on_cancel_their_fibers) {
  std::atomic<int> slept{0};
  {
    coop::runtime rt(2);
    for (int i = 0; i < 20; ++i) {
      auto t = rt.spawn_on(i % 2, [&] { // maybe before its launch reached the thread
        coop::sleep_for(2s);
        ++slept;
      });
    }
  } // waits for every fiber of the runtime
  BOOST_TEST(slept.load() == 0);
}

BOOST_AUTO_TEST_CASE(a_handle_dropped_in_a_fiber_of_another_runtime_cancels_and_waits) {
  coop::runtime rt(1);
  steps<std::atomic<bool>> fiber;
  coop::run([&] {
    {
      auto t = rt.spawn_on(0, sleeper(fiber));
      test_support::yield_until([&] { return fiber.started.load(); });
    }
    BOOST_TEST(fiber.ended.load());
  });
}

COOP_TEST_CASE(dropping_a_handle_does_not_rethrow_the_fiber_exception) {
  bool started = false;
  {
    auto t = coop::spawn([&] {
      started = true;
      try {
        coop::sleep_for(5s);
      } catch (const coop::cancelled&) {
        throw std::runtime_error("clean-up failed (logged, not rethrown)");
      }
    });
    test_support::yield_until([&] { return started; });
  }
  BOOST_TEST(started);
}

// --- per-runtime fiber count ---

BOOST_AUTO_TEST_CASE(a_runtime_counts_its_own_fibers_only) {
  coop::runtime a(1), b(2);
  coop::channel<int> gate(0); // across runtimes: safe
  std::vector<coop::task<void>> parked;
  for (unsigned i = 0; i < 3; ++i)
    parked.push_back(b.spawn_on(i % 2, [&] { (void)gate.pop(); }));
  for (int i = 0; i < 10'000 && b.fiber_count() != 3; ++i)
    std::this_thread::sleep_for(1ms);
  BOOST_TEST(b.fiber_count() == 3u);
  BOOST_TEST(a.fiber_count() == 0u);
  BOOST_TEST(coop::fiber_count() >= 3u);

  auto seen = a.spawn_on(0, [] {
    auto helper = coop::spawn([] { coop::sleep_for(1ms); });
    std::size_t with_helper = coop::this_runtime_fiber_count();
    helper.join();
    return with_helper;
  });
  BOOST_TEST(seen.get() == 2u); // itself and its helper, not b's three
  BOOST_TEST(coop::fiber_count() >= 3u);

  gate.close();
  for (auto& t : parked)
    t.join();
  for (int i = 0; i < 10'000 && b.fiber_count() != 0; ++i)
    std::this_thread::sleep_for(1ms);
  BOOST_TEST(b.fiber_count() == 0u);
  BOOST_CHECK_THROW((void)coop::this_runtime_fiber_count(), coop::usage_error);
}

COOP_TEST_CASE(coop_run_counts_its_own_fibers) {
  BOOST_TEST(coop::this_runtime_fiber_count() == 1u); // this test's fiber
  auto t = coop::spawn([] { coop::sleep_for(1ms); });
  BOOST_TEST(coop::this_runtime_fiber_count() == 2u);
  t.join();
  test_support::yield_until([] { return coop::this_runtime_fiber_count() == 1u; });
}
