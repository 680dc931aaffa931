// test/hooks/pg_nonblocking_test.cpp — the path without hooks: libpq's
// non-blocking API driven with coop::wait_readable/wait_writable on
// PQsocket (psycogreen's pattern for gevent). This program does not link
// coop::hooks.
#define BOOST_TEST_MODULE coop_pg_nonblocking
#include "support.hpp"

#include "hooks_support.hpp"
#include "pg_server.hpp"

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

using pg_support::connection;
using pg_support::server_fixture;
using pg_support::the_server;

/// Connects without blocking the thread: PQconnectPoll says which way to wait.
connection connect_pg(const std::string& conninfo) {
  connection c(PQconnectStart(conninfo.c_str()));
  if (!c || PQstatus(c.get()) == CONNECTION_BAD) throw std::runtime_error("PQconnectStart failed");
  for (;;) {
    switch (PQconnectPoll(c.get())) {
    case PGRES_POLLING_OK:
      if (PQsetnonblocking(c.get(), 1) != 0) throw std::runtime_error(PQerrorMessage(c.get()));
      return c;
    case PGRES_POLLING_READING:
      coop::wait_readable(PQsocket(c.get()));
      break;
    case PGRES_POLLING_WRITING:
      coop::wait_writable(PQsocket(c.get()));
      break;
    default:
      throw std::runtime_error(PQerrorMessage(c.get()));
    }
  }
}

/// Waits for the results of the query in progress: "ok", or the error.
std::string results(PGconn* c) {
  std::string outcome = "ok";
  for (;;) {
    while (PQisBusy(c)) {
      coop::wait_readable(PQsocket(c));
      if (!PQconsumeInput(c)) return PQerrorMessage(c);
    }
    PGresult* r = PQgetResult(c);
    if (!r) return outcome;
    const ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) outcome = PQresultErrorMessage(r);
    PQclear(r);
  }
}

/// Runs `sql` without blocking the thread: "ok", or libpq's error message.
/// A coop::timeout or cancel throws from the waits, as from any coop call.
std::string query(PGconn* c, const char* sql) {
  if (!PQsendQuery(c, sql)) return PQerrorMessage(c);
  for (int r; (r = PQflush(c)) != 0;) { // the query is out when PQflush says 0
    if (r < 0) return PQerrorMessage(c);
    coop::wait_writable(PQsocket(c));
  }
  return results(c);
}

} // namespace

BOOST_TEST_GLOBAL_FIXTURE(server_fixture);

COOP_TEST_CASE(two_hundred_fibers_sleep_in_postgres_at_once_without_hooks) {
  constexpr int fibers = 200;
  std::vector<connection> conns;
  for (int i = 0; i < fibers; ++i)
    conns.push_back(connect_pg(the_server->conninfo()));
  std::atomic<int> ok{0};
  const auto took = test_support::elapsed([&] {
    coop::task_group group;
    for (auto& c : conns)
      group.spawn([&ok, conn = c.get()] {
        if (query(conn, "SELECT pg_sleep(0.2)") == "ok") ++ok;
      });
    group.join();
  });
  BOOST_TEST(ok == fibers);
  BOOST_TEST_MESSAGE("200 x pg_sleep(0.2) over wait_readable: "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  BOOST_TEST(took <= 800ms * hooks_support::slowdown);
}

COOP_TEST_CASE(a_timeout_interrupts_the_wait_and_the_query_can_be_cancelled) {
  auto c = connect_pg(the_server->conninfo());
  const auto took = test_support::elapsed([&] {
    coop::timeout t(50ms);
    BOOST_CHECK_THROW(query(c.get(), "SELECT pg_sleep(10)"), coop::timeout_error);
  });
  BOOST_TEST(took < 150ms * hooks_support::slowdown);
  // The server still runs the query: ask it to stop (PQcancel blocks the
  // thread for a moment; a server answers at once), collect the cancelled
  // query's error, and the connection serves the next query.
  PGcancel* cancel = PQgetCancel(c.get());
  char err[256];
  BOOST_TEST(PQcancel(cancel, err, sizeof err) == 1, err);
  PQfreeCancel(cancel);
  const std::string first = results(c.get());
  BOOST_TEST(first.find("cancel") != std::string::npos, first);
  BOOST_TEST(query(c.get(), "SELECT 1") == "ok");
}
