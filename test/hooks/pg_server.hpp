// test/hooks/pg_server.hpp — a private PostgreSQL cluster for the tests
// that talk to one (scripts/setup installs postgresql).
#pragma once

#include "hooks_support.hpp"

#include <boost/test/unit_test.hpp>

#include <libpq-fe.h>

#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#ifndef COOP_PG_BINDIR
#define COOP_PG_BINDIR "/usr/lib/postgresql/15/bin"
#endif

namespace pg_support {

using namespace std::chrono_literals;

/// Runs `argv` as the postgres system user when this process is root (the
/// server refuses to run as root), with its output in `log`; returns the pid.
inline pid_t start_as_server_user(std::vector<std::string> argv, const std::string& log, bool die_with_parent) {
  std::vector<char*> env = hooks_support::server_environment();
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
  ::execve(args[0], args.data(), env.data());
  ::_exit(127);
}

inline int wait_exit(pid_t pid) {
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

/// The cluster of this test program (BOOST_TEST_GLOBAL_FIXTURE(server_fixture)).
inline pg_server* the_server = nullptr;

struct server_fixture {
  pg_server server;
  server_fixture() { the_server = &server; }
  ~server_fixture() { the_server = nullptr; }
};

struct conn_deleter {
  void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
using connection = std::unique_ptr<PGconn, conn_deleter>;

} // namespace pg_support
