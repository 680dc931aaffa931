// test/core/child.hpp — run a piece of a test in a forked child process, for
// behaviour that ends or changes the whole process (a crash, a signal, stderr).
#pragma once

#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace test_support {

struct child_outcome {
  int status;              ///< as from waitpid
  std::string stderr_text; ///< everything the child wrote to stderr
};

/// Runs `fn` in a forked child (stderr captured), then waits for it; the
/// child exits with status 0 when `fn` returns.
template <class F> child_outcome in_child(F fn) {
  int fds[2];
  BOOST_REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    // The child behaves as a program of its own: no test framework's crash
    // handlers (Boost.Test would catch a fault and go on running tests here).
    ::signal(SIGSEGV, SIG_DFL);
    ::signal(SIGBUS, SIG_DFL);
    ::signal(SIGABRT, SIG_DFL);
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[0]);
    fn();
    std::_Exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
    text.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {status, text};
}

inline bool exited_cleanly(const child_outcome& r) {
  return WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0;
}

} // namespace test_support
