// test/hooks/pg_test.cpp — coop::hooks against a real PostgreSQL, through
// libpq's synchronous PQexec: two hundred fibers' queries overlap on one
// runtime thread, a coop::timeout ends a query, and everything else about
// libpq stays as it was.
#define BOOST_TEST_MODULE coop_hooks_pg
#include "support.hpp"

#include "hooks_support.hpp"

#include "pg_server.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using pg_support::connection;
using pg_support::server_fixture;
using pg_support::the_server;

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

using hooks_support::hooks_off;

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
  BOOST_TEST(took <= 800ms * hooks_support::slowdown); // one after another: 40 s
}

COOP_MT_TEST_CASE(fibers_on_every_runtime_thread_sleep_in_postgres_at_once) {
  if (hooks_off()) return;
  const unsigned n = 20 * rt.size();
  std::vector<connection> conns(n); // conns[i] is made and used on thread i % size
  std::vector<coop::task<void>> tasks;
  for (unsigned i = 0; i < n; ++i)
    tasks.push_back(
        rt.spawn_on(i % rt.size(), [&conns, i] { conns[i].reset(PQconnectdb(the_server->conninfo().c_str())); }));
  for (auto& t : tasks)
    t.get();
  tasks.clear();
  std::atomic<unsigned> ok{0};
  const auto took = test_support::elapsed([&] {
    for (unsigned i = 0; i < n; ++i)
      tasks.push_back(rt.spawn_on(i % rt.size(), [&ok, c = conns[i].get()] {
        if (PQstatus(c) == CONNECTION_OK && exec(c, "SELECT pg_sleep(0.2)") == "ok") ++ok;
      }));
    for (auto& t : tasks)
      t.get();
  });
  BOOST_TEST(ok == n);
  BOOST_TEST_MESSAGE(n << " x pg_sleep(0.2) on " << rt.size()
                       << " threads: " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  BOOST_TEST(took <= 800ms * hooks_support::slowdown); // one after another: 4 s per thread
  for (unsigned i = 0; i < n; ++i)                     // closed on the thread that made each
    rt.spawn_on(i % rt.size(), [&conns, i] { conns[i].reset(); }).get();
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
  BOOST_TEST(took < 150ms * hooks_support::slowdown);
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
