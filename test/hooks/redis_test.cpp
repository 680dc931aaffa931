// test/hooks/redis_test.cpp — coop::hooks against a real redis-server, through
// hiredis's synchronous API: the calls park the fiber, not the thread, honour
// coop's interruptions, and behave as libc everywhere else.
#define BOOST_TEST_MODULE coop_hooks_redis
#include "support.hpp"

#include "hooks_support.hpp"

#include <hiredis/hiredis.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

/// A redis-server of this test run, on a Unix socket in a private directory
/// (no port to pick); stopped when the tests end, and killed with the test
/// process if that dies first.
struct redis_server {
  std::filesystem::path dir;
  std::string socket;
  pid_t pid = -1;

  redis_server() {
    std::string pattern = (std::filesystem::temp_directory_path() / "coop-redis-XXXXXX").string();
    BOOST_TEST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
    socket = (dir / "redis.sock").string();
    std::string log = (dir / "redis.log").string();
    const char* args[] = {"redis-server", "--port", "0",     "--unixsocket", socket.c_str(), "--save",    "",
                          "--appendonly", "no",     "--dir", dir.c_str(),    "--logfile",    log.c_str(), nullptr};
    std::vector<char*> env = hooks_support::server_environment();
    std::fflush(nullptr); // the child must not write this process's buffered output again
    pid = ::fork();
    BOOST_TEST_REQUIRE(pid >= 0);
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::execvpe(args[0], const_cast<char* const*>(args), env.data());
      ::_exit(127);
    }
    for (int i = 0; i < 500; ++i) { // bounded: 5 s
      if (redisContext* c = redisConnectUnix(socket.c_str()); c && !c->err) {
        redisFree(c);
        return;
      } else if (c) {
        redisFree(c);
      }
      std::this_thread::sleep_for(10ms);
    }
    BOOST_FAIL("redis-server did not start (is it installed? scripts/setup installs it)");
  }
  ~redis_server() {
    if (pid > 0) {
      ::kill(pid, SIGCONT);
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
};

redis_server* the_server = nullptr;

struct server_fixture {
  redis_server server;
  server_fixture() { the_server = &server; }
  ~server_fixture() { the_server = nullptr; }
};

struct context_deleter {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using context = std::unique_ptr<redisContext, context_deleter>;

/// Throws on failure rather than using Boost.Test's macros, which are not
/// thread-safe: fibers on other runtime threads connect too (the task's
/// get() brings the exception to the test's thread).
context connect_redis() {
  context c(redisConnectUnix(the_server->socket.c_str()));
  if (!c) throw std::runtime_error("redisConnectUnix: out of memory");
  if (c->err) throw std::runtime_error(std::string("redisConnectUnix: ") + c->errstr);
  return c;
}

/// One command's reply as a string ("" for nil); an error reply or a failed
/// call becomes "error: ...".
std::string command(redisContext* c, const char* format, const char* arg = nullptr) {
  auto* reply = static_cast<redisReply*>(arg ? redisCommand(c, format, arg) : redisCommand(c, format));
  if (!reply) return std::string("error: ") + c->errstr;
  std::string r;
  if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS)
    r.assign(reply->str, reply->len);
  else if (reply->type == REDIS_REPLY_ERROR)
    r = std::string("error: ") + std::string(reply->str, reply->len);
  freeReplyObject(reply);
  return r;
}

/// The redis-server stopped (SIGSTOP) for the scope: it accepts and queues
/// but never answers.
struct stopped_server {
  stopped_server() { ::kill(the_server->pid, SIGSTOP); }
  ~stopped_server() { ::kill(the_server->pid, SIGCONT); }
};

/// The file status flags of `fd` as the kernel has them (not as the hooked
/// fcntl reports them): /proc/self/fdinfo.
int kernel_flags(int fd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
  std::string key;
  while (in >> key) {
    if (key == "flags:") {
      std::string octal;
      in >> octal;
      return static_cast<int>(std::stol(octal, nullptr, 8));
    }
  }
  return -1;
}

using hooks_support::hooks_off;

} // namespace

BOOST_TEST_GLOBAL_FIXTURE(server_fixture);

COOP_TEST_CASE(a_hundred_fibers_each_run_a_thousand_synchronous_gets_on_one_thread) {
  if (hooks_off()) return; // (the COOP_HOOKS=0 run checks only that the hooks are off)
  {
    auto c = connect_redis();
    BOOST_TEST(command(c.get(), "SET k %s", "value") == "OK");
  }
  constexpr int fibers = 100, gets = 1000;
  std::atomic<int> right{0}, connected{0};
  test_support::turn_counter others; // the thread keeps running other fibers meanwhile
  coop::task_group group;
  for (int i = 0; i < fibers; ++i)
    group.spawn([&] {
      auto c = connect_redis();
      ++connected;
      for (int n = 0; n < gets; ++n)
        if (command(c.get(), "GET k") == "value") ++right;
    });
  group.join();
  BOOST_TEST(connected == fibers);
  BOOST_TEST(right == fibers * gets);
  BOOST_TEST(others.turns() > 0);
}

COOP_MT_TEST_CASE(fibers_on_every_runtime_thread_run_synchronous_commands) {
  if (hooks_off()) return;
  std::atomic<int> right{0};
  std::vector<coop::task<void>> tasks;
  for (unsigned i = 0; i < 4 * rt.size(); ++i)
    tasks.push_back(rt.spawn_on(i % rt.size(), [&, i] {
      auto c = connect_redis();
      const std::string key = "k" + std::to_string(i);
      if (command(c.get(), ("SET " + key + " %s").c_str(), key.c_str()) != "OK") return;
      for (int n = 0; n < 200; ++n)
        if (command(c.get(), ("GET " + key).c_str()) == key) ++right;
    }));
  for (auto& t : tasks)
    t.get();
  BOOST_TEST(right == static_cast<int>(4 * rt.size() * 200));
}

COOP_TEST_CASE(a_fiber_blocked_in_redis_command_is_cancelled_at_once_and_others_run) {
  if (hooks_off()) return;
  auto c = connect_redis();
  std::atomic<bool> asking{false};
  std::string answer = "unset";
  stopped_server stopped;
  auto blocked = coop::spawn([&] {
    asking = true;
    answer = command(c.get(), "GET k"); // the server never answers
  });
  test_support::yield_until([&] { return asking.load(); });
  test_support::turn_counter others;
  test_support::yield_until([&] { return others.turns() > 10; }); // the thread is not blocked
  const auto took = test_support::elapsed([&] {
    blocked.cancel();
    blocked.join();
  });
  BOOST_TEST(took < 50ms * hooks_support::slowdown);
  // hiredis saw its read fail with ECANCELED; the cancel itself is the fiber's.
  BOOST_TEST(answer.find(std::strerror(ECANCELED)) != std::string::npos, answer);
}

COOP_TEST_CASE(a_timeout_fails_the_hooked_call_with_etimedout_and_surfaces_at_the_next_coop_call) {
  if (hooks_off()) return;
  auto c = connect_redis();
  stopped_server stopped;
  std::string answer;
  auto took = test_support::elapsed([&] {
    coop::timeout t(50ms);
    answer = command(c.get(), "GET k");
    BOOST_CHECK_THROW(coop::sleep_for(0ms), coop::timeout_error); // the next coop call
  });
  BOOST_TEST(took >= 50ms);
  BOOST_TEST(took < 150ms * hooks_support::slowdown);
  BOOST_TEST(answer.find(std::strerror(ETIMEDOUT)) != std::string::npos, answer); // hiredis's message names it
}

COOP_TEST_CASE(the_caller_keeps_its_view_of_o_nonblock_and_so_rcvtimeo_gives_eagain) {
  if (hooks_off()) return;
  auto c = connect_redis();
  BOOST_TEST(command(c.get(), "PING") == "PONG");
  // hiredis set its socket back to blocking after connecting; the hooks made
  // it non-blocking underneath for the fiber's reads, and say nothing of it.
  BOOST_TEST((::fcntl(c->fd, F_GETFL) & O_NONBLOCK) == 0);
  BOOST_TEST((kernel_flags(c->fd) & O_NONBLOCK) != 0);

  timeval tv{0, 100'000};
  BOOST_TEST_REQUIRE(::setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
  char byte;
  ssize_t r = 0;
  int err = 0;
  const auto took = test_support::elapsed([&] {
    r = ::read(c->fd, &byte, 1); // nothing to read: the socket's own timeout ends it
    err = errno;
  });
  BOOST_TEST(r == -1);
  BOOST_TEST(err == EAGAIN);
  BOOST_TEST(took >= 100ms);
  BOOST_TEST(took < 150ms * hooks_support::slowdown);
}

COOP_TEST_CASE(a_plain_thread_blocks_as_usual_even_on_a_socket_a_fiber_used) {
  if (hooks_off()) return;
  auto c = connect_redis();
  BOOST_TEST(command(c.get(), "SET k %s", "value") == "OK"); // the fiber's calls made it non-blocking underneath
  std::string fresh, shared;
  std::thread t([&] {
    auto own = connect_redis(); // a plain thread: libc's blocking calls
    fresh = command(own.get(), "GET k");
    shared = command(c.get(), "GET k"); // blocking emulated with poll
  });
  t.join();
  BOOST_TEST(fresh == "value");
  BOOST_TEST(shared == "value");
}

COOP_TEST_CASE(with_coop_hooks_0_nothing_is_hooked) {
  if (!hooks_off()) return; // (the run with COOP_HOOKS=0)
  auto c = connect_redis();
  BOOST_TEST(command(c.get(), "PING") == "PONG"); // blocks the thread, as libc does
  BOOST_TEST((kernel_flags(c->fd) & O_NONBLOCK) == 0);
}
