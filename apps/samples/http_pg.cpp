// http_pg — an HTTP/1.1 server on Boost.Beast where every request runs one
// PostgreSQL query with libpq's plain, blocking PQexecParams.
//
// It is linked with coop::hooks: libpq's socket calls and its poll park
// only the calling fiber, so each connection is a plain loop — read a
// request, run the query, write the answer — and one thread keeps many
// queries in flight. Run it with COOP_HOOKS=0 to see the same server with
// libpq blocking the thread (docs/samples.md compares the two under wrk).
//
// Each HTTP connection opens its own database connection at its first
// request (--pg: a libpq connection string) and keeps it. GET /?sleep_ms=N
// runs `SELECT pg_sleep(N / 1000.0), now()` (N: 0..10000, default 0) and
// answers with the server's time; a failed query gets "503" with libpq's
// message, and the next request connects again.
//
//   http_pg --port 8080 --pg "host=/run/postgresql dbname=postgres"
//   curl 'http://127.0.0.1:8080/?sleep_ms=100'
#include <app.hpp>
#include <coop/coop.hpp>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <libpq-fe.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace {

using namespace std::chrono_literals;
using coop::net::tcp_stream;
namespace http = boost::beast::http;

struct conn_deleter {
  void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
using pg_connection = std::unique_ptr<PGconn, conn_deleter>;

/// The sleep a request asks for: `sleep_ms=N` in its query string, 0..10000;
/// nullopt when malformed.
std::optional<int> sleep_ms(std::string_view target) {
  const auto q = target.find("sleep_ms=");
  if (q == std::string_view::npos) return 0;
  int ms = 0;
  const std::string_view digits = target.substr(q + 9);
  std::size_t n = 0;
  for (; n < digits.size() && n < 6 && digits[n] >= '0' && digits[n] <= '9'; ++n)
    ms = ms * 10 + (digits[n] - '0');
  if (n == 0 || (n < digits.size() && digits[n] != '&') || ms > 10'000) return std::nullopt;
  return ms;
}

/// Runs the request's query on `db` (connecting first when there is none):
/// the answer's status and body.
std::pair<http::status, std::string> query(pg_connection& db, const std::string& conninfo, int ms) {
  if (!db || PQstatus(db.get()) != CONNECTION_OK) db.reset(PQconnectdb(conninfo.c_str()));
  if (PQstatus(db.get()) != CONNECTION_OK) {
    std::string why = PQerrorMessage(db.get());
    db.reset();
    return {http::status::service_unavailable, "database: " + why};
  }
  const std::string seconds = std::to_string(ms / 1000.0);
  const char* params[] = {seconds.c_str()};
  PGresult* r =
      PQexecParams(db.get(), "SELECT pg_sleep($1::float8), now()::text", 1, nullptr, params, nullptr, nullptr, 0);
  std::pair<http::status, std::string> answer;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
    answer = {http::status::ok, std::string(PQgetvalue(r, 0, 1)) + "\n"};
  else
    answer = {http::status::service_unavailable, std::string("database: ") + PQerrorMessage(db.get())};
  PQclear(r);
  if (answer.first != http::status::ok) db.reset(); // connect again for the next request
  return answer;
}

/// Serves one HTTP connection until it ends: one query per request.
void serve_http(tcp_stream stream, const std::string& conninfo, std::chrono::milliseconds idle_timeout) {
  pg_connection db;
  boost::beast::flat_buffer buffer;
  for (;;) {
    http::request<http::string_body> req;
    boost::system::error_code ec;
    {
      coop::timeout limit(idle_timeout);
      http::read(stream, buffer, req, ec);
    }
    if (ec) return; // closed, malformed, timed out, cancelled (shutdown)
    http::response<http::string_body> res;
    res.version(req.version());
    res.keep_alive(req.keep_alive());
    res.set(http::field::server, "coop http_pg");
    res.set(http::field::content_type, "text/plain");
    if (req.method() != http::verb::get) {
      res.result(http::status::method_not_allowed);
      res.body() = "Only GET is served here.\n";
    } else if (auto ms = sleep_ms(req.target()); !ms) {
      res.result(http::status::bad_request);
      res.body() = "sleep_ms must be 0..10000\n";
    } else {
      auto [status, body] = query(db, conninfo, *ms);
      res.result(status);
      res.body() = std::move(body);
    }
    res.prepare_payload();
    {
      coop::timeout limit(idle_timeout);
      http::write(stream, res, ec);
    }
    if (ec || !res.keep_alive()) return;
  }
}

} // namespace

int main(int argc, char** argv) {
  namespace po = coop_app::po;
  const std::string name = "http_pg";
  po::options_description options("Options");
  options.add_options()                                                                           //
      ("host", po::value<std::string>()->default_value("127.0.0.1"), "address to listen on")      //
      ("port", po::value<int>()->default_value(8080), "TCP port to listen on (0: any free port)") //
      ("pg", po::value<std::string>(), "libpq connection string of the database (required)")      //
      ("idle-timeout", po::value<double>()->default_value(30),
       "SECONDS a client may take to send a whole request, or to take in a response") //
      ("drain-timeout", po::value<double>()->default_value(5),
       "on SIGINT/SIGTERM: new clients are refused, open connections get SECONDS, then are closed");
  auto vm = coop_app::parse(argc, argv, name,
                            "HTTP/1.1 server on Boost.Beast where each request runs one blocking libpq query "
                            "(made cooperative by coop::hooks).",
                            options);
  const unsigned short port = coop_app::parse_port(name, vm["port"].as<int>());
  if (!vm.count("pg")) coop_app::usage_error(name, "--pg (a libpq connection string) is required");
  const std::string conninfo = vm["pg"].as<std::string>();
  const auto idle_timeout = coop_app::parse_seconds(name, "idle-timeout", vm["idle-timeout"].as<double>());
  const auto drain = coop_app::parse_seconds(name, "drain-timeout", vm["drain-timeout"].as<double>());
  const coop::net::tcp::endpoint where(coop_app::parse_address(name, vm["host"].as<std::string>()), port);
  coop_app::raise_open_file_limit();
  return coop_app::guarded_main(name, [&] {
    return coop::run([&] {
      coop::net::tcp_server server(coop::net::tcp_listener(where), coop_app::log_accept_errors(name));
      return coop_app::serve_until_signal(
          server, [&](tcp_stream c) { serve_http(std::move(c), conninfo, idle_timeout); }, drain);
    });
  });
}
