// Unit tests of coop::greenlet: symmetric switching, values both ways, the
// parent that receives a result or an exception, dead(), misuse errors, and
// unwinding of abandoned greenlets.
#include <coop/greenlet.hpp>

#include <boost/test/unit_test.hpp>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "destruction_counter.hpp"

namespace {} // namespace

BOOST_AUTO_TEST_SUITE(greenlet)

BOOST_AUTO_TEST_CASE(seed_demo_switches_in_order) {
  std::vector<int> out;
  coop::greenlet<> gr1, gr2;
  gr1 = coop::greenlet<>([&] {
    out.push_back(12);
    gr2.switch_to();
    out.push_back(34);
    gr2.switch_to();
    out.push_back(-1); // never reached: gr2 ends and its parent is main
  });
  gr2 = coop::greenlet<>([&] {
    out.push_back(56);
    gr1.switch_to();
    out.push_back(78);
  });
  BOOST_TEST(!gr1.started());
  BOOST_TEST(!gr1.dead());
  gr1.switch_to();
  BOOST_TEST(out == (std::vector<int>{12, 56, 34, 78}), boost::test_tools::per_element());
  BOOST_TEST(gr2.dead());
  BOOST_TEST(gr1.started());
  BOOST_TEST(!gr1.dead()); // parked in its second switch
}

BOOST_AUTO_TEST_CASE(values_pass_both_ways) {
  std::vector<int> seen;
  coop::greenlet<int> echo([&](int first) {
    seen.push_back(first);
    return first * 2; // ending switches the result to the parent, main
  });
  int result = echo.switch_to(21);
  BOOST_TEST(result == 42);
  BOOST_TEST(seen == std::vector<int>{21}, boost::test_tools::per_element());
  BOOST_TEST(echo.dead());
}

BOOST_AUTO_TEST_CASE(ping_pong_between_two_greenlets) {
  coop::greenlet<int> ping, pong;
  std::vector<int> log;
  ping = coop::greenlet<int>([&](int n) {
    while (n < 6) {
      log.push_back(n);
      n = pong.switch_to(n + 1); // returns what pong switches back
    }
    return n * 100;
  });
  pong = coop::greenlet<int>([&](int n) {
    for (;;) {
      log.push_back(n);
      n = ping.switch_to(n + 1);
    }
    return 0;
  });
  int result = ping.switch_to(0); // ping ends: its result goes to main
  BOOST_TEST(result == 600);
  BOOST_TEST(log == (std::vector<int>{0, 1, 2, 3, 4, 5}), boost::test_tools::per_element());
  BOOST_TEST(ping.dead());
  BOOST_TEST(!pong.dead());
}

BOOST_AUTO_TEST_CASE(switch_from_deep_inside_nested_calls) {
  coop::greenlet<> other;
  std::vector<int> out;
  std::function<void(int)> recurse = [&](int depth) {
    if (depth == 0) {
      out.push_back(1);
      other.switch_to();
      out.push_back(3);
      return;
    }
    recurse(depth - 1);
  };
  coop::greenlet<> deep([&] { recurse(50); });
  other = coop::greenlet<>([&] {
    out.push_back(2);
    deep.switch_to();
  });
  deep.switch_to();
  BOOST_TEST(out == (std::vector<int>{1, 2, 3}), boost::test_tools::per_element());
  BOOST_TEST(deep.dead());
}

BOOST_AUTO_TEST_CASE(result_goes_to_the_parent_given_by_set_parent) {
  std::vector<std::string> log;
  coop::greenlet<int> parent, child;
  parent = coop::greenlet<int>([&](int) {
    int from_child = child.switch_to(1);
    log.push_back("parent got " + std::to_string(from_child));
    return from_child + 1;
  });
  child = coop::greenlet<int>([&](int x) {
    log.push_back("child started");
    return x * 10;
  });
  child.set_parent(parent);
  int r = parent.switch_to(0);
  BOOST_TEST(r == 11);
  BOOST_TEST(log == (std::vector<std::string>{"child started", "parent got 10"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(result_skips_a_dead_parent) {
  coop::greenlet<int> parent, child;
  parent = coop::greenlet<int>([&](int) {
    child = coop::greenlet<int>([](int x) { return x + 1; }); // parent: this greenlet
    return 0;
  });
  BOOST_TEST(parent.switch_to(0) == 0);
  BOOST_TEST(parent.dead());
  BOOST_TEST(child.switch_to(5) == 6); // its dead parent's parent (main) gets it
}

BOOST_AUTO_TEST_CASE(exception_propagates_to_the_parent) {
  int destroyed = 0;
  coop::greenlet<> g([&] {
    guard gd(destroyed);
    throw std::runtime_error("greenlet failed");
  });
  BOOST_CHECK_EXCEPTION(g.switch_to(), std::runtime_error,
                        [](const auto& e) { return std::string(e.what()) == "greenlet failed"; });
  BOOST_TEST(g.dead());
  BOOST_TEST(destroyed == 1);
}

BOOST_AUTO_TEST_CASE(switch_to_self_returns_the_value) {
  coop::greenlet<int> self;
  int got = 0;
  self = coop::greenlet<int>([&](int v) {
    got = self.switch_to(v + 1);
    return got;
  });
  BOOST_TEST(self.switch_to(1) == 2);
  BOOST_TEST(got == 2);
}

BOOST_AUTO_TEST_CASE(switching_to_a_dead_greenlet_is_an_error) {
  coop::greenlet<> g([] {});
  g.switch_to();
  BOOST_TEST(g.dead());
  BOOST_CHECK_EXCEPTION(g.switch_to(), coop::greenlet_error,
                        [](const auto& e) { return e.code() == coop::greenlet_errc::dead; });
}

BOOST_AUTO_TEST_CASE(switching_to_an_empty_handle_is_an_error) {
  coop::greenlet<> g;
  BOOST_TEST(g.dead());
  BOOST_TEST(!g);
  BOOST_CHECK_EXCEPTION(g.switch_to(), coop::greenlet_error,
                        [](const auto& e) { return e.code() == coop::greenlet_errc::empty; });
}

BOOST_AUTO_TEST_CASE(switching_from_another_thread_is_an_error) {
  coop::greenlet<> g([] {});
  bool caught = false;
  std::thread([&] {
    try {
      g.switch_to();
    } catch (const coop::greenlet_error& e) {
      caught = e.code() == coop::greenlet_errc::wrong_thread;
    }
  }).join();
  BOOST_TEST(caught);
  BOOST_TEST(!g.started());
}

BOOST_AUTO_TEST_CASE(switching_in_a_value_of_another_type_is_an_error) {
  coop::greenlet<int> gi;
  coop::greenlet<std::string> gs([&](std::string s) {
    gi.switch_to(1); // gs now waits for an int
    return s;
  });
  gi = coop::greenlet<int>([](int x) { return x; });                 // parent: main
  BOOST_CHECK_EXCEPTION(gs.switch_to("start"), coop::greenlet_error, // gi ends with an int; main waits for a string
                        [](const auto& e) { return e.code() == coop::greenlet_errc::type_mismatch; });
  BOOST_CHECK_EXCEPTION(gs.switch_to("again"), coop::greenlet_error, // gs waits for an int
                        [](const auto& e) { return e.code() == coop::greenlet_errc::type_mismatch; });
}

BOOST_AUTO_TEST_CASE(cyclic_parents_are_an_error) {
  coop::greenlet<> a([] {});
  coop::greenlet<> b([] {});
  b.set_parent(a);
  BOOST_CHECK_EXCEPTION(a.set_parent(b), coop::greenlet_error,
                        [](const auto& e) { return e.code() == coop::greenlet_errc::parent_cycle; });
  BOOST_CHECK_THROW(a.set_parent(a), coop::greenlet_error);
}

BOOST_AUTO_TEST_CASE(dropping_a_parked_greenlet_unwinds_its_stack) {
  int destroyed = 0;
  bool resumed = false;
  {
    coop::greenlet<> back_to_main;
    coop::greenlet<> g([&] {
      guard a(destroyed);
      guard b(destroyed);
      back_to_main.switch_to();
      resumed = true;
    });
    back_to_main = coop::greenlet<>([] {}); // ends at once: returns to its parent, main
    g.switch_to();
    BOOST_TEST(g.started());
    BOOST_TEST(!g.dead());
    BOOST_TEST(destroyed == 0);
  }
  BOOST_TEST(destroyed == 2);
  BOOST_TEST(!resumed);
}

BOOST_AUTO_TEST_CASE(current_returns_a_handle_to_switch_back_with) {
  auto main_greenlet = coop::greenlet<int>::current();
  BOOST_TEST(main_greenlet.started());
  BOOST_TEST(!main_greenlet.dead());
  BOOST_TEST(!main_greenlet.parent());
  std::vector<int> log;
  coop::greenlet<int> worker([&](int x) {
    BOOST_TEST(coop::greenlet<int>::current().switch_to(5) == 5); // itself
    while (true)
      x = main_greenlet.switch_to(x * 2);
    return 0;
  });
  BOOST_TEST(worker.parent().started()); // main
  log.push_back(worker.switch_to(1));
  log.push_back(worker.switch_to(2));
  log.push_back(worker.switch_to(3));
  BOOST_TEST(log == (std::vector<int>{2, 4, 6}), boost::test_tools::per_element());
  BOOST_TEST(!worker.dead());
  BOOST_CHECK_THROW(main_greenlet.set_parent(worker), coop::greenlet_error);
}

BOOST_AUTO_TEST_CASE(a_child_keeps_its_parked_parent_alive) {
  int destroyed = 0;
  bool resumed = false;
  auto main_greenlet = coop::greenlet<>::current();
  coop::greenlet<> child;
  {
    coop::greenlet<> parent([&] {
      guard gd(destroyed);
      child = coop::greenlet<>([] {}); // its parent: this greenlet
      main_greenlet.switch_to();
      resumed = true;
    });
    parent.switch_to();
  } // the handle goes, but the child still names the parked greenlet as parent
  BOOST_TEST(destroyed == 0);
  child.switch_to(); // child ends into its parent, which ends into main
  BOOST_TEST(resumed);
  BOOST_TEST(destroyed == 1);
}

BOOST_AUTO_TEST_CASE(dropping_the_handle_of_the_running_greenlet_lets_it_finish) {
  auto g = std::make_unique<coop::greenlet<int>>();
  bool finished = false;
  *g = coop::greenlet<int>([&](int x) {
    g.reset(); // the handle goes away while this greenlet runs
    finished = true;
    return x;
  });
  BOOST_TEST(g->switch_to(3) == 3);
  BOOST_TEST(finished);
}

BOOST_AUTO_TEST_SUITE_END()
