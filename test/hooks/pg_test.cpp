// test/hooks/pg_test.cpp — coop::hooks against a real PostgreSQL, through
// libpq's synchronous PQexec: two hundred fibers' queries overlap on one
// runtime thread, a coop::timeout ends a query, and everything else about
// libpq stays as it was.
#define BOOST_TEST_MODULE coop_hooks_pg
#include "support.hpp"

#include <libpq-fe.h>

#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#ifndef COOP_PG_BINDIR
#define COOP_PG_BINDIR "/usr/lib/postgresql/15/bin"
#endif

using namespace std::chrono_literals;

namespace {

/// Runs `argv` as the postgres system user when this process is root (the
/// server refuses to run as root), with its output in `log`; returns the pid.
pid_t start_as_server_user(std::vector<std::string> argv, const std::string& log, bool die_with_parent) {
  std::fflush(nullptr); // the child must not write this process's buffered output again
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  if (die_with_parent) ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getuid() == 0) {
    if (passwd* pw = ::getpwnam("postgres"); !pw || ::setgid(pw->pw_gid) != 0 || ::setuid(pw->pw_uid) != 0)
      ::_exit(126);
  }
  if (std::FILE* f = std::freopen(log.c_str(), "a", stdout)) ::dup2(::fileno(f), 2);
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(a.data());
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  ::_exit(127);
}

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// A private PostgreSQL cluster in a temporary directory, listening only on
/// a Unix socket there; stopped (and its directory removed) when the tests
/// end, and killed with the test process if that dies first.
struct pg_server {
  std::filesystem::path dir;
  pid_t pid = -1;

  pg_server() {
    std::string pattern = (std::filesystem::temp_directory_path() / "coop-pg-XXXXXX").string();
    BOOST_TEST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
    if (::getuid() == 0) {
      passwd* pw = ::getpwnam("postgres");
      BOOST_TEST_REQUIRE(pw != nullptr, "no postgres user (scripts/setup installs postgresql)");
      BOOST_TEST_REQUIRE(::chown(dir.c_str(), pw->pw_uid, pw->pw_gid) == 0);
    }
    const std::string bin = COOP_PG_BINDIR;
    const std::string log = (dir / "server.log").string();
    const int initdb = wait_exit(start_as_server_user(
        {bin + "/initdb", "-D", (dir / "data").string(), "-A", "trust", "-U", "postgres", "--no-sync"}, log, true));
    BOOST_TEST_REQUIRE(initdb == 0, "initdb failed: see " + log);
    pid = start_as_server_user({bin + "/postgres", "-D", (dir / "data").string(), "-k", dir.string(), "-c",
                                "listen_addresses=", "-c", "max_connections=250", "-c", "fsync=off"},
                               log, true);
    for (int i = 0; i < 1000; ++i) { // bounded: 10 s
      if (PQstatus(connect_now()) == CONNECTION_OK) return;
      std::this_thread::sleep_for(10ms);
    }
    BOOST_FAIL("postgres did not start: see " + log);
  }
  ~pg_server() {
    if (pid > 0) {
      ::kill(pid, SIGINT); // fast shutdown
      wait_exit(pid);
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }

  std::string conninfo() const { return "host=" + dir.string() + " dbname=postgres user=postgres"; }

private:
  PGconn* connect_now() {
    static PGconn* last = nullptr;
    if (last) PQfinish(last);
    last = PQconnectdb(conninfo().c_str());
    return last;
  }
};

pg_server* the_server = nullptr;

struct server_fixture {
  pg_server server;
  server_fixture() { the_server = &server; }
  ~server_fixture() { the_server = nullptr; }
};

struct conn_deleter {
  void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
using connection = std::unique_ptr<PGconn, conn_deleter>;

connection connect_pg() {
  connection c(PQconnectdb(the_server->conninfo().c_str()));
  BOOST_TEST_REQUIRE((PQstatus(c.get()) == CONNECTION_OK), PQerrorMessage(c.get()));
  return c;
}

/// Runs `sql`; "ok" for a successful result, else libpq's error message.
std::string exec(PGconn* c, const char* sql) {
  PGresult* r = PQexec(c, sql);
  const ExecStatusType st = PQresultStatus(r);
  std::string out = (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) ? "ok" : PQerrorMessage(c);
  PQclear(r);
  return out;
}

bool hooks_off() {
  const char* v = std::getenv("COOP_HOOKS");
  return v && std::string(v) == "0";
}

/// 200 fibers, each on its own connection, run `SELECT pg_sleep(0.2)`
/// together; returns how long the query phase took.
std::chrono::steady_clock::duration two_hundred_sleeping_queries() {
  constexpr int fibers = 200;
  std::vector<connection> conns;
  for (int i = 0; i < fibers; ++i)
    conns.push_back(connect_pg());
  std::atomic<int> ok{0};
  const auto took = test_support::elapsed([&] {
    coop::task_group group;
    for (auto& c : conns)
      group.spawn([&ok, conn = c.get()] {
        if (exec(conn, "SELECT pg_sleep(0.2)") == "ok") ++ok;
      });
    group.join();
  });
  BOOST_TEST(ok == fibers);
  return took;
}

} // namespace

BOOST_TEST_GLOBAL_FIXTURE(server_fixture);

COOP_TEST_CASE(two_hundred_fibers_sleep_in_postgres_at_once_on_one_thread) {
  if (hooks_off()) return;
  const auto took = two_hundred_sleeping_queries();
  BOOST_TEST_MESSAGE("200 x pg_sleep(0.2) with hooks: "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  BOOST_TEST(took <= 800ms); // one after another: 40 s
}

COOP_TEST_CASE(without_hooks_the_same_queries_run_one_after_another) {
  if (!hooks_off()) return; // (the run with COOP_HOOKS=0: the proof that the hooks are what applies)
  const auto took = two_hundred_sleeping_queries();
  BOOST_TEST_MESSAGE("200 x pg_sleep(0.2) without hooks: "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  BOOST_TEST(took >= 20s);
}

COOP_TEST_CASE(a_timeout_ends_a_query_and_others_are_unaffected) {
  if (hooks_off()) return;
  auto other = connect_pg();
  std::string others_result;
  auto neighbour = coop::spawn([&] { others_result = exec(other.get(), "SELECT pg_sleep(0.3)"); });

  auto c = connect_pg();
  std::string result;
  const auto took = test_support::elapsed([&] {
    coop::timeout t(50ms);
    result = exec(c.get(), "SELECT pg_sleep(10)");
    BOOST_CHECK_THROW(coop::sleep_for(0ms), coop::timeout_error); // the next coop call
  });
  BOOST_TEST(took < 150ms);
  BOOST_TEST(result.find(std::strerror(ETIMEDOUT)) != std::string::npos, result); // names the timeout
  neighbour.join();
  BOOST_TEST(others_result == "ok");
}

COOP_TEST_CASE(a_plain_thread_runs_libpq_as_usual) {
  if (hooks_off()) return;
  std::string result;
  std::thread t([&] {
    auto c = connect_pg();
    result = exec(c.get(), "SELECT pg_sleep(0.05)");
  });
  t.join();
  BOOST_TEST(result == "ok");
}
