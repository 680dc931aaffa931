#define BOOST_TEST_MODULE coop_stack
// Fiber stacks fail safe: a guard page under every stack, a clear message on
// overflow, and enough stacks for 100,000 parked fibers with default limits.
#include "child.hpp"
#include "support.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <string>

namespace {

using test_support::in_child;

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

// Under AddressSanitizer or ThreadSanitizer, the sanitizer's own SIGSEGV
// handler (which ours hands over to) reports the fault and ends the process
// with an exit status instead.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif

bool died_of_the_fault(int status) {
  if (sanitized) return WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
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
