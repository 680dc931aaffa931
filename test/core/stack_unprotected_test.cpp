#define BOOST_TEST_MODULE coop_stack_unprotected
// Built without -fstack-clash-protection (the target property
// COOP_STACK_CLASH_PROTECTION is OFF, test/core/CMakeLists.txt), as code from
// elsewhere may be, Debian's default flags included: a frame larger than the
// room left on the stack is then not probed, and only the size of the guard
// region stands between it and the neighbouring stack.
#include "child.hpp"
#include "overflow_scene.hpp"

#include <string>

using test_support::sanitized;

BOOST_AUTO_TEST_CASE(a_140_kib_frame_on_a_128_kib_stack_meets_the_guard_region) {
  if (sanitized) {
    BOOST_TEST_MESSAGE("skipped under a sanitizer");
    return;
  }
  // Its lowest byte lies about 14 KiB below the stack: past a one-page guard,
  // inside the 64 KiB guard region.
  auto r = test_support::in_child([] {
    test_support::overflow_beside_a_neighbour<112 * 1024>(coop::run_options{}, "big frame",
                                                          [] { test_support::big_frame<140 * 1024>(1); });
  });
  BOOST_TEST_INFO("child stderr: " << r.stderr_text);
  BOOST_TEST(test_support::died_of_the_fault(r.status));
  BOOST_TEST(r.stderr_text.find("coop: stack overflow in fiber 'big frame' of runtime thread 0 (stack size 128 KiB") !=
             std::string::npos);
  BOOST_TEST(r.stderr_text.find("neighbour corrupted") == std::string::npos);
  BOOST_TEST(r.stderr_text.find("overflow returned") == std::string::npos);
}
