// test/hooks/hooks_support.hpp — what the hooks' test programs share.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace hooks_support {

/// True in the *_off runs (COOP_HOOKS=0): the hooks are switched off, and
/// each program checks only that.
inline bool hooks_off() {
  const char* v = std::getenv("COOP_HOOKS");
  return v && std::string(v) == "0";
}

/// This process's environment without LD_PRELOAD, for the servers the tests
/// start (redis-server, postgres): they are not part of the test, and under
/// ThreadSanitizer the preloaded hooks are built for the test alone.
/// Made before fork: the child then only calls exec.
inline std::vector<char*> server_environment() {
  std::vector<char*> env;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "LD_PRELOAD=", 11) != 0) env.push_back(*e);
  env.push_back(nullptr);
  return env;
}

/// What the upper time bounds of these tests are multiplied by: under
/// ThreadSanitizer (scripts/tsan) the code runs 5-15 times slower, and 200
/// fibers' overlapped queries take about 1.8 s instead of 0.5 s (still a
/// twentieth of one after another).
#ifdef __SANITIZE_THREAD__
inline constexpr int slowdown = 10;
#else
inline constexpr int slowdown = 1;
#endif

} // namespace hooks_support
