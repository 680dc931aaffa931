#define BOOST_TEST_MODULE coop_regression_task
// Regression tests: tasks and task groups — members cancelled before they start, exception-safe spawn, misuse of get
// and join (harness: regression.hpp).
#include "regression.hpp"

// --- Bug 2: a group member cancelled before it first runs still leaves the group ---
// (The destructor variant, which hangs for good, is near the end of the file.)

namespace {
/// Spawns into a group, cancels at once, joins (bounded by 1 s). Returns "" or what went wrong.
/// A group that did not empty is leaked: its destructor would hang.
std::string cancel_before_start_then_join() {
  auto* group = new coop::task_group;
  bool ran = false;
  group->spawn([&] { ran = true; });
  group->cancel();
  std::string joined = outcome_of([&] {
    coop::timeout bound(1s);
    group->join();
  });
  std::string problem;
  if (joined != "returned")
    problem = "task_group::join after cancel-before-start ended with " + joined +
              " (its own 1 s bound): the member never left the group (size " + std::to_string(group->size()) + ")";
  else if (ran)
    problem = "the member cancelled before it started ran anyway";
  if (problem.empty()) delete group;
  return problem;
}
} // namespace

REGRESSION_CASE(group_member_cancelled_before_start_leaves_the_group_join) {
  std::string problem = cancel_before_start_then_join();
  BOOST_TEST(problem.empty(), problem);
}

REGRESSION_PLAIN_CASE(group_member_cancelled_before_start_leaves_the_group_two_threads) {
  std::array<std::string, 2> problems;
  {
    coop::runtime rt(2);
    rt.run_on_each([&](unsigned i) { problems[i] = cancel_before_start_then_join(); });
  }
  for (auto& p : problems)
    BOOST_TEST(p.empty(), p);
}

// --- Bug 8: task_group::spawn is exception-safe -----------------------------------

namespace {
/// A callable whose copy throws: makes task_group::spawn fail after it has
/// reserved the member's place (no out-of-memory needed).
struct throws_on_copy {
  throws_on_copy() = default;
  throws_on_copy(const throws_on_copy&) { throw std::runtime_error("copy failed"); }
  void operator()() const {}
};
} // namespace

REGRESSION_CASE(group_spawn_that_throws_leaves_no_member) {
  auto* group = new coop::task_group;
  throws_on_copy fn;
  BOOST_CHECK_THROW(group->spawn(fn), std::runtime_error);
  BOOST_TEST(group->size() == 0u, "a failed spawn left " << group->size() << " member(s) in the group");
  std::string joined = outcome_of([&] {
    coop::timeout bound(1s);
    group->join();
  });
  BOOST_TEST(joined == "returned", "join after a failed spawn ended with " << joined << " (its own 1 s bound)");
  if (joined == "returned") delete group; // otherwise leaked: its destructor would hang
}

// --- Misuse of a task --------------------------------------------------------------

// A second get() is misuse.
REGRESSION_CASE(second_get_throws_usage_error) {
  auto t = coop::spawn([] { return 42; });
  BOOST_TEST(t.get() == 42);
  BOOST_CHECK_THROW(t.get(), coop::usage_error);
}

// join() of an empty or detached task is misuse (the get forms are near the end).
REGRESSION_CASE(join_on_empty_or_detached_task_throws_usage_error) {
  coop::task<void> empty;
  BOOST_CHECK_THROW(empty.join(), coop::usage_error);
  auto detached = coop::spawn([] {});
  detached.detach();
  BOOST_CHECK_THROW(detached.join(), coop::usage_error);
}

// A fiber that joins its own task would wait forever: misuse.
REGRESSION_CASE(joining_own_task_throws_usage_error) {
  coop::task<void> self;
  bool joining = false;
  std::string how = "not run";
  self = coop::spawn([&] {
    joining = true;
    how = outcome_of([&] { self.join(); });
  });
  yield_until(joining);            // the fiber is now parked in join, or finished
  if (!self.done()) self.cancel(); // release a self-join that waits forever
  self.join();
  BOOST_TEST(how.starts_with("usage_error"), "join of the fiber's own task ended with: " << how);
}

// --- Cases that end the whole process while their bug is present ----------------
// (a hang that cannot be undone, or a crash). They come after the others so a
// full run reports every other case first; run them with --run_test.

// Bug 2, group destructor variant.
REGRESSION_CASE(group_member_cancelled_before_start_leaves_the_group_destructor) {
  auto owner = coop::spawn([] {
    coop::task_group group;
    group.spawn([] {});
    group.cancel();
  }); // ~task_group: cancel + shielded join
  std::string joined = outcome_of([&] {
    coop::timeout bound(1s);
    owner.join();
  });
  if (joined != "returned")
    watchdog::give_up(
        current_case(),
        "~task_group did not return within 1 s (member cancelled before start never left): hung (bug present)");
  BOOST_TEST(owner.done());
}

// get() of an empty task (it used to dereference a null pointer).
REGRESSION_CASE(get_on_empty_task_throws_usage_error) {
  coop::task<int> empty;
  BOOST_CHECK_THROW(empty.get(), coop::usage_error);
}

// get() of a detached task.
REGRESSION_CASE(get_on_detached_task_throws_usage_error) {
  auto detached = coop::spawn([] { return 1; });
  detached.detach();
  BOOST_CHECK_THROW(detached.get(), coop::usage_error);
}
