// test/core/overflow_scene.hpp — a fiber that overflows its stack beside a
// neighbour fiber that watches its own stack, for the death tests of
// stack_test.cpp and stack_unprotected_test.cpp.
#pragma once

#include "child.hpp"

#include <coop/coop.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstddef>
#include <cstdlib>

namespace test_support {

// Under AddressSanitizer or ThreadSanitizer, the sanitizer's own SIGSEGV
// handler (which ours hands over to) reports the fault and ends the process
// with an exit status instead.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif

inline bool died_of_the_fault(int status) {
  if (sanitized) return WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
}

inline void say(const char* text) noexcept {
  std::size_t n = 0;
  while (text[n])
    ++n;
  [[maybe_unused]] auto ignored = ::write(STDERR_FILENO, text, n);
}

/// A frame of `Bytes` whose lowest byte is written first, as by code that
/// fills a local buffer from its start: unless the compiler probes the frame
/// page by page (-fstack-clash-protection), nothing touches the memory
/// between the caller's frame and that byte.
template <std::size_t Bytes> [[gnu::noinline]] int big_frame(int seed) {
  volatile char buffer[Bytes];
  buffer[0] = static_cast<char>(seed);
  return buffer[0];
}

/// The neighbour's pattern, in `Watched` bytes of its own stack.
inline constexpr unsigned neighbour_pattern = 0xC0FFEEu;

/// In a runtime with `opts` (call it in a child process): spawns a fiber
/// named `name` that runs `overflow`, and then a neighbour, whose stack the
/// pool maps next, just below the first one's: where an overflow that no
/// guard stops lands. The neighbour fills `Watched` bytes of its stack (just
/// under its top) with a pattern before `overflow` runs, and checks them
/// whenever it runs again: it writes "neighbour corrupted" and exits with
/// status 3 when they changed. "overflow returned" is written when
/// `overflow` comes back.
template <std::size_t Watched, class F>
void overflow_beside_a_neighbour(const coop::run_options& opts, const char* name, F overflow) {
  coop::run(
      [&] {
        bool watching = false, finished = false;
        auto first = coop::spawn([&] {
          coop::this_fiber::set_name(name);
          for (int i = 0; i < 1000 && !watching; ++i)
            coop::this_fiber::yield();
          overflow();
          say("overflow returned\n");
          finished = true;
        });
        auto neighbour = coop::spawn([&] {
          volatile unsigned watched[Watched / sizeof(unsigned)];
          for (auto& w : watched)
            w = neighbour_pattern;
          watching = true;
          for (;;) {
            for (auto& w : watched)
              if (w != neighbour_pattern) {
                say("neighbour corrupted\n");
                std::_Exit(3);
              }
            if (finished) return;
            coop::this_fiber::yield();
          }
        });
        first.join();
        neighbour.join();
      },
      opts);
}

} // namespace test_support
