#define BOOST_TEST_MODULE coop_stack
// Fiber stacks fail safe: a guard page under every stack, a clear message on
// overflow, and enough stacks for 100,000 parked fibers with default limits.
#include "child.hpp"
#include "overflow_scene.hpp"
#include "support.hpp"

#include "core/stack_pool.hpp"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <new>
#include <string>
#include <vector>

namespace {

using test_support::died_of_the_fault;
using test_support::in_child;
using test_support::sanitized;

/// Recurses with a 1 KiB frame per level until the stack runs out (the
/// bound is never reached: 1 GiB of frames).
[[gnu::noinline]] int deep(int n, volatile char* parent) {
  volatile char frame[1024];
  frame[0] = static_cast<char>(n);
  frame[1023] = parent[0];
  if (n > (1 << 20)) return frame[0];
  return deep(n + 1, frame) + frame[1023];
}

constexpr unsigned canary_value = 0xC0FFEEu;

/// Recurses `levels` deep with 1 KiB frames, each written whole, then
/// returns: an overflow that comes back before the fiber switches.
[[gnu::noinline]] int written_frames(int levels) {
  volatile char frame[1024];
  for (auto& c : frame)
    c = static_cast<char>(levels);
  if (levels == 0) return frame[0];
  return written_frames(levels - 1) + frame[1023];
}

/// Maps single pages, alternately read-only and writable so that no two
/// merge, until the kernel refuses: the process has used up
/// vm.max_map_count. Returns them (storage reserved beforehand: a vector
/// growing then would need a mapping of its own).
std::vector<void*> use_up_mappings() {
  long limit = 65530;
  std::ifstream("/proc/sys/vm/max_map_count") >> limit;
  std::vector<void*> pages;
  pages.reserve(static_cast<std::size_t>(limit) + 16);
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  for (long i = 0; i < limit + 16; ++i) {
    void* p = ::mmap(nullptr, page, i % 2 ? PROT_READ : PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) break;
    pages.push_back(p);
  }
  return pages;
}

/// Runs in a child: uses up the mappings but for `spare`, then spawns 300
/// fibers that stay alive together. Writes "spawned N" and, when a spawn
/// failed, its message; "bare bad_alloc" when that was a plain
/// std::bad_alloc.
void spawn_beside_used_up_mappings(std::size_t spare, bool guard_markers) {
  if (!guard_markers) coop::detail::set_stack_guards_for_testing(false, -1); // as before Linux 6.13
  coop::run([spare] {
    auto pages = use_up_mappings();
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    for (std::size_t i = 0; i < spare && !pages.empty(); ++i) {
      ::munmap(pages.back(), page);
      pages.pop_back();
    }
    constexpr int wanted = 300;
    std::vector<coop::task<void>> fibers;
    fibers.reserve(wanted);
    int running = 0;
    bool release = false;
    std::string failure;
    try {
      for (int i = 0; i < wanted; ++i)
        fibers.push_back(coop::spawn([&] {
          ++running;
          while (!release)
            coop::this_fiber::yield();
        }));
    } catch (const std::bad_alloc&) {
      failure = "bare bad_alloc";
    } catch (const std::exception& e) {
      failure = e.what();
    }
    test_support::yield_until([&] { return running == static_cast<int>(fibers.size()); });
    release = true;
    for (auto& f : fibers)
      f.join();
    for (void* p : pages)
      ::munmap(p, page);
    std::cerr << "spawned " << fibers.size() << ", " << running << " ran\n";
    if (!failure.empty()) std::cerr << failure << "\n";
  });
}

/// What the cases near the mapping limit accept: a clean exit, no bare
/// std::bad_alloc, and all 300 fibers ran or the spawn error named the limit.
void expect_all_ran_or_the_limit_named(const test_support::child_outcome& r) {
  BOOST_TEST_MESSAGE("child stderr: " << r.stderr_text);
  BOOST_TEST_INFO("child stderr: " << r.stderr_text);
  BOOST_TEST(test_support::exited_cleanly(r));
  BOOST_TEST(r.stderr_text.find("bare bad_alloc") == std::string::npos);
  bool all_ran = r.stderr_text.find("spawned 300, 300 ran") != std::string::npos;
  bool named_the_limit = r.stderr_text.find("vm.max_map_count allows") != std::string::npos;
  BOOST_TEST((all_ran || named_the_limit));
}

} // namespace

BOOST_AUTO_TEST_CASE(a_stack_overflow_ends_the_process_with_one_clear_line) {
  if (sanitized) { // the sanitizer reports the deliberate overflow itself, and scripts/sanitize counts every report
    BOOST_TEST_MESSAGE("skipped under a sanitizer");
    return;
  }
  auto r = in_child([] {
    coop::run_options opts;
    opts.stack_size = 64 * 1024;
    coop::run(
        [] {
          // The overflowing fiber's stack is mapped first; the neighbour's,
          // mapped next, lies just below it, where an unguarded overflow
          // would land.
          auto overflow = coop::spawn([] {
            coop::this_fiber::set_name("deep recursion");
            volatile char top = 1;
            deep(0, &top);
          });
          auto neighbour = coop::spawn([] {
            volatile unsigned canary[64];
            for (auto& c : canary)
              c = canary_value;
            for (;;) {
              for (auto& c : canary)
                if (c != canary_value) {
                  const char msg[] = "canary corrupted\n";
                  [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
                  std::_Exit(3);
                }
              coop::this_fiber::yield();
            }
          });
          overflow.join();
          neighbour.join();
        },
        opts);
  });
  BOOST_TEST_MESSAGE("child stderr: " << r.stderr_text);
  BOOST_TEST_INFO("child stderr: " << r.stderr_text);
  BOOST_TEST(died_of_the_fault(r.status));
  BOOST_TEST(r.stderr_text.find("coop: stack overflow in fiber 'deep recursion' of runtime thread 0") !=
             std::string::npos);
  BOOST_TEST(r.stderr_text.find("stack size 64 KiB") != std::string::npos);
  BOOST_TEST(r.stderr_text.find("coop::run_options::stack_size") != std::string::npos);
  BOOST_TEST(r.stderr_text.find("canary corrupted") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(other_crashes_keep_their_usual_end) {
  if (sanitized) {
    BOOST_TEST_MESSAGE("skipped under a sanitizer");
    return;
  }
  auto r = in_child([] {
    coop::run([] {
      volatile int* nowhere = nullptr;
      *nowhere = 1; // an ordinary null dereference, not an overflow
    });
  });
  BOOST_TEST(died_of_the_fault(r.status));
  BOOST_TEST(r.stderr_text.find("coop: stack overflow") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_hundred_thousand_parked_fibers_with_default_limits) {
  constexpr int fibers = many_fibers(sanitized ? 10'000 : 100'000); // ASan's shadow memory makes 100,000 slow
  coop::run([] {
    coop::channel<int> never(0);
    int parked = 0, ended = 0;
    for (int i = 0; i < fibers; ++i)
      coop::spawn([&] {
        ++parked;
        never.pop(); // parks until the channel closes
        ++ended;
      }).detach();
    test_support::yield_until([&] { return parked == fibers; });
    never.close();
    test_support::yield_until([&] { return ended == fibers; });
  });
}

BOOST_AUTO_TEST_CASE(a_stack_size_beyond_two_gib_is_refused_with_a_clear_error) {
  // A fiber's state (at the top of its stack) keeps the size in 32 bits.
  coop::run_options opts;
  opts.stack_size = std::size_t{3} << 30;
  try {
    coop::run([] {}, opts);
    BOOST_FAIL("a 3 GiB stack size was accepted");
  } catch (const coop::usage_error& e) {
    BOOST_TEST(std::string(e.what()).find("stack_size") != std::string::npos, e.what());
  }
  opts.stack_size = 256 * 1024; // still fine
  int ran = 0;
  coop::run([&] { ++ran; }, opts);
  BOOST_TEST(ran == 1);
}

BOOST_AUTO_TEST_CASE(a_frame_larger_than_the_guard_region_ends_in_the_overflow_message) {
  if (sanitized) {
    BOOST_TEST_MESSAGE("skipped under a sanitizer");
    return;
  }
  // A 200 KiB frame on a 128 KiB stack: its lowest byte lies some 8 KiB
  // below the 64 KiB guard region, in the neighbour's stack. This file is
  // compiled as coop::coop's consumers are, with -fstack-clash-protection:
  // the frame is probed page by page and the first probe below the stack
  // meets the guard region.
  auto r = in_child([] {
    test_support::overflow_beside_a_neighbour<112 * 1024>(coop::run_options{}, "huge frame",
                                                          [] { test_support::big_frame<200 * 1024>(1); });
  });
  BOOST_TEST_MESSAGE("child stderr: " << r.stderr_text);
  BOOST_TEST_INFO("child stderr: " << r.stderr_text);
  BOOST_TEST(died_of_the_fault(r.status));
  BOOST_TEST(r.stderr_text.find("coop: stack overflow in fiber 'huge frame' of runtime thread 0 (stack size 128 KiB") !=
             std::string::npos);
  BOOST_TEST(r.stderr_text.find("neighbour corrupted") == std::string::npos);
  BOOST_TEST(r.stderr_text.find("overflow returned") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(spawn_beside_a_used_up_mapping_limit_falls_back_or_says_why) {
  if (sanitized) { // the sanitizers' own mappings would be refused too
    BOOST_TEST_MESSAGE("skipped under a sanitizer");
    return;
  }
  // Sixteen mappings left: the stacks must make do without guard regions
  // (or, when nothing can be mapped at all, say why).
  expect_all_ran_or_the_limit_named(in_child([] { spawn_beside_used_up_mappings(16, true); }));
}

BOOST_AUTO_TEST_CASE(at_a_used_up_mapping_limit_mprotect_guards_fall_back_to_canaries) {
  if (sanitized) {
    BOOST_TEST_MESSAGE("skipped under a sanitizer");
    return;
  }
  // Without MADV_GUARD_INSTALL (Linux before 6.13), a guard region costs a
  // mapping of its own: with sixteen left, mprotect soon fails.
  auto r = in_child([] { spawn_beside_used_up_mappings(16, false); });
  expect_all_ran_or_the_limit_named(r);
  BOOST_TEST(r.stderr_text.find("no guard region for a fiber stack") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(when_no_stack_can_be_mapped_spawn_names_the_mapping_limit) {
  if (sanitized) {
    BOOST_TEST_MESSAGE("skipped under a sanitizer");
    return;
  }
  auto r = in_child([] { spawn_beside_used_up_mappings(0, true); });
  BOOST_TEST_MESSAGE("child stderr: " << r.stderr_text);
  BOOST_TEST_INFO("child stderr: " << r.stderr_text);
  BOOST_TEST(test_support::exited_cleanly(r));
  BOOST_TEST(r.stderr_text.find("spawned 0, 0 ran") != std::string::npos);
  BOOST_TEST(r.stderr_text.find("coop: cannot map a fiber stack of 192 KiB: the process holds ") != std::string::npos);
  BOOST_TEST(r.stderr_text.find("vm.max_map_count allows") != std::string::npos);
  BOOST_TEST(r.stderr_text.find("bare bad_alloc") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_overflow_on_a_stack_without_guard_is_caught_by_its_canary) {
  if (sanitized) {
    BOOST_TEST_MESSAGE("skipped under a sanitizer");
    return;
  }
  // No stack gets a guard region (as beyond the mapping budget on a kernel
  // before 6.13). The fiber goes 80 KiB past its 128 KiB stack, through the
  // 64 KiB left unprotected below it and into the neighbour's stack, comes
  // back and yields: the check at that switch ends the process before the
  // neighbour runs.
  auto r = in_child([] {
    coop::detail::set_stack_guards_for_testing(false, 0);
    test_support::overflow_beside_a_neighbour<112 * 1024>(coop::run_options{}, "written frames",
                                                          [] { written_frames(208); });
  });
  BOOST_TEST_MESSAGE("child stderr: " << r.stderr_text);
  BOOST_TEST_INFO("child stderr: " << r.stderr_text);
  BOOST_TEST((WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT));
  BOOST_TEST(r.stderr_text.find("fiber stacks have guard regions, which cost two memory mappings each "
                                "(vm.max_map_count") != std::string::npos);
  BOOST_TEST(r.stderr_text.find("coop: stack overflow in fiber 'written frames' of runtime thread 0 (stack size 128 "
                                "KiB; caught by the canary below it as the fiber switched away; this stack has no "
                                "guard region (vm.max_map_count)); raise coop::run_options::stack_size") !=
             std::string::npos);
  BOOST_TEST(r.stderr_text.find("neighbour corrupted") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_runaway_recursion_on_a_stack_without_guard_ends_in_the_overflow_message) {
  if (sanitized) {
    BOOST_TEST_MESSAGE("skipped under a sanitizer");
    return;
  }
  // It never switches: it runs through every stack below its own until it
  // meets unmapped memory; the fault handler sees its stack pointer there.
  auto r = in_child([] {
    coop::detail::set_stack_guards_for_testing(false, 0);
    test_support::overflow_beside_a_neighbour<112 * 1024>(coop::run_options{}, "deep recursion", [] {
      volatile char top = 1;
      deep(0, &top);
    });
  });
  BOOST_TEST_MESSAGE("child stderr: " << r.stderr_text);
  BOOST_TEST_INFO("child stderr: " << r.stderr_text);
  BOOST_TEST(died_of_the_fault(r.status));
  BOOST_TEST(r.stderr_text.find("coop: stack overflow in fiber 'deep recursion' of runtime thread 0 (stack size 128 "
                                "KiB; caught at a fault with its stack pointer below the stack; this stack has no "
                                "guard region (vm.max_map_count))") != std::string::npos);
  BOOST_TEST(r.stderr_text.find("neighbour corrupted") == std::string::npos);
}
