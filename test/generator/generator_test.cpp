// Unit tests of coop::generator: lazy iteration, send, the priming rule,
// close(), return values, yield-from delegation, exceptions, and unwinding of
// abandoned generators.
#define BOOST_TEST_MODULE coop_generator
#include <boost/test/unit_test.hpp>

// Included first in this binary (after Boost.Test) to show it is self-contained.
#include <coop/generator.hpp>

#include <boost/context/protected_fixedsize_stack.hpp>

#include <memory>
#include <ranges>
#include <stdexcept>
#include <string>
#include <vector>

#include "destruction_counter.hpp"

namespace {

coop::generator<int> lazy_range(int up_to) {
  return coop::generator<int>([up_to](auto& co) {
    for (int index = 0; index < up_to; ++index)
      co.yield(index);
  });
}

coop::generator<int, int> jumping_range(int up_to) {
  return coop::generator<int, int>([up_to](auto& co) {
    int index = 0;
    while (index < up_to)
      index += co.yield(index).value_or(1);
  });
}

std::vector<int> drain(coop::generator<int>& g) {
  std::vector<int> out;
  for (int v : g)
    out.push_back(v);
  return out;
}

} // namespace

BOOST_AUTO_TEST_SUITE(iteration)

BOOST_AUTO_TEST_CASE(range_for_yields_every_value_then_ends) {
  auto g = lazy_range(5);
  BOOST_TEST(drain(g) == (std::vector<int>{0, 1, 2, 3, 4}), boost::test_tools::per_element());
  BOOST_TEST(g.done());
  BOOST_TEST(!g.next().has_value()); // stays ended, as Python's StopIteration
}

BOOST_AUTO_TEST_CASE(body_runs_only_when_asked) {
  int steps = 0;
  coop::generator<int> g([&](auto& co) {
    for (int i = 0;; ++i) {
      ++steps;
      co.yield(i);
    }
  });
  BOOST_TEST(steps == 0);
  BOOST_TEST(!g.started());
  BOOST_TEST(*g.next() == 0);
  BOOST_TEST(steps == 1);
  BOOST_TEST(g.started());
  BOOST_TEST(*g.next() == 1);
  BOOST_TEST(*g.next() == 2);
  BOOST_TEST(steps == 3);
  BOOST_TEST(!g.done());
}

BOOST_AUTO_TEST_CASE(range_for_continues_a_partly_consumed_generator) {
  auto g = lazy_range(4);
  BOOST_TEST(*g.next() == 0);
  BOOST_TEST(drain(g) == (std::vector<int>{1, 2, 3}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(empty_body_ends_at_once) {
  coop::generator<int> g([](auto&) {});
  BOOST_TEST(!g.next().has_value());
  BOOST_TEST(g.done());
}

BOOST_AUTO_TEST_CASE(works_with_standard_ranges) {
  static_assert(std::ranges::input_range<coop::generator<int>>);
  auto g = lazy_range(100);
  std::vector<int> out;
  for (int v : g | std::views::filter([](int v) { return v % 2 == 1; }) | std::views::take(3))
    out.push_back(v);
  BOOST_TEST(out == (std::vector<int>{1, 3, 5}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(move_only_values) {
  coop::generator<std::unique_ptr<int>> g([](auto& co) {
    co.yield(std::make_unique<int>(1));
    auto p = std::make_unique<int>(2);
    co.yield(std::move(p));
  });
  BOOST_TEST(**g.next() == 1);
  int sum = 0;
  for (auto& p : g)
    sum += *p;
  BOOST_TEST(sum == 2);
}

BOOST_AUTO_TEST_CASE(custom_stack_allocator) {
  coop::generator<std::string> g(std::allocator_arg, boost::context::protected_fixedsize_stack(64 * 1024),
                                 [](auto& co) { co.yield(std::string(100, 'x')); });
  BOOST_TEST(g.next()->size() == 100u);
}

BOOST_AUTO_TEST_CASE(moved_generator_continues_and_source_is_empty) {
  auto g = lazy_range(3);
  BOOST_TEST(*g.next() == 0);
  coop::generator<int> h = std::move(g);
  BOOST_TEST(*h.next() == 1);
  BOOST_TEST(g.done()); // NOLINT(bugprone-use-after-move): an empty handle
  BOOST_CHECK_EXCEPTION(g.next(), coop::generator_error,
                        [](const auto& e) { return e.code() == coop::generator_errc::empty; });
}

BOOST_AUTO_TEST_CASE(generators_nest_inside_bodies) {
  // The “Python之coroutine” tutorial's producer resumes a consumer from inside
  // its own body.
  std::vector<int> received;
  coop::generator<bool, int> consumer([&](auto& co) {
    bool status = true;
    while (true) {
      int n = co.yield(status).value();
      received.push_back(n);
      if (n == 3) status = false;
    }
  });
  consumer.next();
  coop::generator<bool> producer([&](auto& co) {
    for (int n = 5; n > 0; --n)
      co.yield(consumer.send(n).value());
  });
  std::vector<bool> statuses;
  for (bool s : producer) {
    statuses.push_back(s);
    if (!s) break;
  }
  BOOST_TEST(received == (std::vector<int>{5, 4, 3}), boost::test_tools::per_element());
  BOOST_TEST(statuses == (std::vector<bool>{true, true, false}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(send)

BOOST_AUTO_TEST_CASE(sent_values_become_the_result_of_yield) {
  auto it = jumping_range(5);
  BOOST_TEST(*it.next() == 0);
  BOOST_TEST(*it.send(2) == 2);
  BOOST_TEST(*it.next() == 3);
  BOOST_TEST(*it.send(-1) == 2);
  std::vector<int> rest;
  for (int x : it)
    rest.push_back(x);
  BOOST_TEST(rest == (std::vector<int>{3, 4}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(next_resumes_with_no_value) {
  std::vector<std::optional<std::string>> seen;
  coop::generator<int, std::string> g([&](auto& co) {
    for (;;)
      seen.push_back(co.yield(0));
  });
  g.next();
  g.send("a");
  g.next();
  g.send("b");
  BOOST_TEST_REQUIRE(seen.size() == 3u);
  BOOST_TEST((seen[0] == std::optional<std::string>("a")));
  BOOST_TEST(!seen[1].has_value());
  BOOST_TEST((seen[2] == std::optional<std::string>("b")));
}

BOOST_AUTO_TEST_CASE(send_to_a_fresh_generator_is_an_error) {
  auto g = jumping_range(5);
  BOOST_CHECK_EXCEPTION(g.send(2), coop::generator_error, [](const coop::generator_error& e) {
    return e.code() == coop::generator_errc::send_to_fresh && std::string(e.what()).find("next()") != std::string::npos;
  });
  BOOST_TEST(!g.started()); // the failed send did not start it
  BOOST_TEST(*g.next() == 0);
  BOOST_TEST(*g.send(3) == 3);
}

BOOST_AUTO_TEST_CASE(send_after_the_end_returns_nothing) {
  coop::generator<int, int> g([](auto& co) { co.yield(1); });
  g.next();
  BOOST_TEST(!g.send(5).has_value());
  BOOST_TEST(!g.send(6).has_value());
}

BOOST_AUTO_TEST_CASE(resuming_from_its_own_body_is_an_error) {
  coop::generator<int>* self = nullptr;
  bool caught = false;
  coop::generator<int> g([&](auto& co) {
    try {
      self->next();
    } catch (const coop::generator_error& e) {
      caught = e.code() == coop::generator_errc::already_running;
    }
    co.yield(1);
  });
  self = &g;
  BOOST_TEST(*g.next() == 1);
  BOOST_TEST(caught);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(close_and_return)

BOOST_AUTO_TEST_CASE(close_unwinds_the_body) {
  int destroyed = 0;
  bool after_yield = false;
  coop::generator<int> g([&](auto& co) {
    guard outer(destroyed);
    {
      guard inner(destroyed);
      co.yield(1);
      after_yield = true;
    }
    co.yield(2);
  });
  BOOST_TEST(*g.next() == 1);
  BOOST_TEST(destroyed == 0);
  g.close();
  BOOST_TEST(destroyed == 2);
  BOOST_TEST(!after_yield);
  BOOST_TEST(g.done());
  BOOST_TEST(!g.next().has_value());
  g.close(); // closing again does nothing
  BOOST_TEST(destroyed == 2);
}

BOOST_AUTO_TEST_CASE(close_throws_generator_exit_at_the_yield) {
  bool saw_exit = false;
  coop::generator<int> g([&](auto& co) {
    try {
      co.yield(1);
    } catch (const coop::generator_exit&) {
      saw_exit = true;
      throw;
    }
  });
  g.next();
  g.close();
  BOOST_TEST(saw_exit);
}

BOOST_AUTO_TEST_CASE(close_of_a_fresh_generator_never_runs_the_body) {
  bool ran = false;
  coop::generator<int> g([&](auto& co) {
    ran = true;
    co.yield(1);
  });
  g.close();
  BOOST_TEST(g.done());
  BOOST_TEST(!ran);
  BOOST_TEST(!g.next().has_value());
}

BOOST_AUTO_TEST_CASE(body_may_return_a_value_when_closed) {
  coop::generator<int, void, std::string> g([](auto& co) -> std::string {
    try {
      co.yield(1);
    } catch (const coop::generator_exit&) {
      return "closed cleanly";
    }
    return "ended";
  });
  g.next();
  g.close();
  BOOST_TEST(g.return_value() == "closed cleanly");
}

BOOST_AUTO_TEST_CASE(yielding_after_close_is_an_error_and_destruction_still_unwinds) {
  int destroyed = 0;
  {
    coop::generator<int> g([&](auto& co) {
      guard gd(destroyed);
      try {
        co.yield(1);
      } catch (const coop::generator_exit&) {
        co.yield(2); // ignores the request to close
      }
    });
    g.next();
    BOOST_CHECK_EXCEPTION(g.close(), coop::generator_error,
                          [](const auto& e) { return e.code() == coop::generator_errc::ignored_exit; });
    BOOST_TEST(!g.done());
    BOOST_TEST(destroyed == 0);
  }
  BOOST_TEST(destroyed == 1); // forced unwinding by the destructor
}

BOOST_AUTO_TEST_CASE(return_value_is_handed_over_at_the_end) {
  coop::generator<int, void, int> g([](auto& co) {
    co.yield(1);
    co.yield(2);
    return 42;
  });
  g.next();
  BOOST_CHECK_EXCEPTION(g.return_value(), coop::generator_error,
                        [](const auto& e) { return e.code() == coop::generator_errc::no_return_value; });
  g.next();
  BOOST_TEST(!g.next().has_value());
  BOOST_TEST(g.return_value() == 42);
}

BOOST_AUTO_TEST_CASE(closed_generator_has_no_return_value) {
  coop::generator<int, void, int> g([](auto& co) {
    co.yield(1);
    return 42;
  });
  g.next();
  g.close();
  BOOST_CHECK_THROW(g.return_value(), coop::generator_error);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(yield_from)

using gen_t = coop::generator<int, int, int>;

gen_t bottom() {
  return gen_t([](auto& co) { return co.yield(42).value(); });
}
gen_t middle() {
  return gen_t([](auto& co) { return co.yield_from(bottom()); });
}
gen_t top() {
  return gen_t([](auto& co) { return co.yield_from(middle()); });
}

BOOST_AUTO_TEST_CASE(seed_bottom_middle_top) {
  gen_t gen = top();
  int value = *gen.next();
  BOOST_TEST(value == 42);
  BOOST_TEST(!gen.send(value * 2).has_value());
  BOOST_TEST(gen.return_value() == 84);
}

BOOST_AUTO_TEST_CASE(values_sends_and_returns_cross_three_levels) {
  std::vector<std::string> log;
  auto leaf = [&] {
    return gen_t([&](auto& co) {
      int sum = 0;
      for (int i = 0; i < 3; ++i) {
        std::optional<int> s = co.yield(100 + i);
        log.push_back(s ? "leaf got " + std::to_string(*s) : "leaf got none");
        sum += s.value_or(0);
      }
      return sum;
    });
  };
  auto mid = [&] {
    return gen_t([&](auto& co) {
      std::optional<int> s = co.yield(1);
      log.push_back("mid got " + std::to_string(s.value_or(-1)));
      int r = co.yield_from(leaf());
      co.yield(2);
      return r * 10;
    });
  };
  gen_t outer([&](auto& co) {
    int r = co.yield_from(mid());
    return r + 1;
  });
  std::vector<int> values;
  values.push_back(*outer.next());       // 1 from mid
  values.push_back(*outer.send(7));      // mid got 7; 100 from leaf
  values.push_back(*outer.send(5));      // leaf got 5; 101
  values.push_back(*outer.next());       // leaf got none; 102
  values.push_back(*outer.send(6));      // leaf got 6; leaf returns 11; mid yields 2
  BOOST_TEST(!outer.next().has_value()); // mid returns 110, outer 111
  BOOST_TEST(values == (std::vector<int>{1, 100, 101, 102, 2}), boost::test_tools::per_element());
  BOOST_TEST(log == (std::vector<std::string>{"mid got 7", "leaf got 5", "leaf got none", "leaf got 6"}),
             boost::test_tools::per_element());
  BOOST_TEST(outer.return_value() == 111);
}

BOOST_AUTO_TEST_CASE(delegating_to_a_plain_range_and_a_void_generator) {
  coop::generator<long> g([](auto& co) {
    std::vector<int> v{1, 2};
    co.yield_from(v);
    co.yield_from(lazy_range(2)); // int values widen to long
  });
  std::vector<long> out;
  for (long x : g)
    out.push_back(x);
  BOOST_TEST(out == (std::vector<long>{1, 2, 0, 1}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(closing_the_outer_generator_closes_the_inner_ones) {
  int destroyed = 0;
  bool inner_saw_exit = false;
  auto inner = [&] {
    return coop::generator<int>([&](auto& co) {
      guard g(destroyed);
      try {
        for (int i = 0;; ++i)
          co.yield(i);
      } catch (const coop::generator_exit&) {
        inner_saw_exit = true;
        throw;
      }
    });
  };
  auto sub = inner(); // owned out here: only yield_from can close it
  coop::generator<int> outer([&](auto& co) {
    guard g(destroyed);
    co.yield_from(sub);
  });
  outer.next();
  outer.next();
  outer.close();
  BOOST_TEST(inner_saw_exit);
  BOOST_TEST(sub.done());
  BOOST_TEST(destroyed == 2);
}

BOOST_AUTO_TEST_CASE(exception_in_the_inner_generator_reaches_the_caller) {
  auto inner = [] {
    return coop::generator<int>([](auto& co) {
      co.yield(1);
      throw std::runtime_error("inner failed");
    });
  };
  bool outer_saw_it = false;
  coop::generator<int> outer([&](auto& co) {
    try {
      co.yield_from(inner());
    } catch (const std::runtime_error&) {
      outer_saw_it = true;
      throw;
    }
  });
  BOOST_TEST(*outer.next() == 1);
  BOOST_CHECK_EXCEPTION(outer.next(), std::runtime_error,
                        [](const auto& e) { return std::string(e.what()) == "inner failed"; });
  BOOST_TEST(outer_saw_it);
  BOOST_TEST(outer.done());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(exceptions_and_destruction)

BOOST_AUTO_TEST_CASE(exception_in_the_body_reaches_the_caller_of_next) {
  int destroyed = 0;
  coop::generator<int> g([&](auto& co) {
    guard gd(destroyed);
    co.yield(1);
    throw std::runtime_error("boom");
  });
  BOOST_TEST(*g.next() == 1);
  BOOST_CHECK_EXCEPTION(g.next(), std::runtime_error, [](const auto& e) { return std::string(e.what()) == "boom"; });
  BOOST_TEST(destroyed == 1);
  BOOST_TEST(g.done());
  BOOST_TEST(!g.next().has_value()); // thrown once, then ended
}

BOOST_AUTO_TEST_CASE(exception_reaches_the_caller_of_send_and_range_for) {
  coop::generator<int, int> g([](auto& co) {
    co.yield(1);
    throw std::logic_error("from send");
  });
  g.next();
  BOOST_CHECK_THROW(g.send(1), std::logic_error);

  coop::generator<int> h([](auto& co) {
    co.yield(1);
    throw std::out_of_range("from the loop");
  });
  int seen = 0;
  BOOST_CHECK_THROW(for (int v : h) seen += v, std::out_of_range);
  BOOST_TEST(seen == 1);
}

BOOST_AUTO_TEST_CASE(destroying_a_suspended_generator_runs_the_body_destructors) {
  int destroyed = 0;
  bool after_yield = false;
  {
    coop::generator<int> g([&](auto& co) {
      guard a(destroyed);
      guard b(destroyed);
      co.yield(1);
      after_yield = true;
    });
    g.next();
    BOOST_TEST(destroyed == 0);
  }
  BOOST_TEST(destroyed == 2);
  BOOST_TEST(!after_yield);
}

BOOST_AUTO_TEST_CASE(destroying_a_fresh_generator_destroys_its_captures_only) {
  int destroyed = 0;
  bool ran = false;
  {
    auto captured = std::make_shared<guard>(destroyed);
    coop::generator<int> g([&ran, captured](auto& co) {
      ran = true;
      co.yield(1);
    });
    captured.reset();
    BOOST_TEST(destroyed == 0); // the body's capture keeps it alive
  }
  BOOST_TEST(destroyed == 1);
  BOOST_TEST(!ran);
}

BOOST_AUTO_TEST_CASE(destroying_nested_suspended_generators_unwinds_all) {
  int destroyed = 0;
  {
    coop::generator<int> outer([&](auto& co) {
      guard a(destroyed);
      coop::generator<int> inner([&](auto& ci) {
        guard b(destroyed);
        for (;;)
          ci.yield(0);
      });
      co.yield_from(inner);
    });
    outer.next();
  }
  BOOST_TEST(destroyed == 2);
}

BOOST_AUTO_TEST_CASE(move_assignment_unwinds_the_old_body) {
  int destroyed = 0;
  coop::generator<int> g([&](auto& co) {
    guard gd(destroyed);
    co.yield(1);
  });
  g.next();
  g = lazy_range(2);
  BOOST_TEST(destroyed == 1);
  BOOST_TEST(*g.next() == 0);
}

BOOST_AUTO_TEST_CASE(exception_swallowed_by_a_std_exception_handler_does_not_stop_close) {
  // generator_exit is not a std::exception: a catch of std::exception in the
  // body does not stop the unwinding.
  int destroyed = 0;
  coop::generator<int> g([&](auto& co) {
    guard gd(destroyed);
    try {
      co.yield(1);
    } catch (const std::exception&) {
      co.yield(99);
    }
  });
  g.next();
  g.close();
  BOOST_TEST(destroyed == 1);
  BOOST_TEST(g.done());
}

BOOST_AUTO_TEST_SUITE_END()
