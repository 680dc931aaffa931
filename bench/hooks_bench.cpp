// bench/hooks_bench.cpp — what coop::hooks costs (scripts/bench prints the
// ratios as target rows):
//   hooks_bench read                 a hooked read() on a ready socket, and
//                                    libc's own read() on the same socket, in a fiber
//   hooks_bench redis SOCKET [--fibers N] [--requests N]
//                                    synchronous hiredis GETs from N fibers on one
//                                    runtime thread against a redis-server's Unix socket
//   hooks_bench pg CONNINFO [--fibers N]
//                                    N fibers (200), each on its own libpq connection,
//                                    run PQexec("SELECT pg_sleep(0.2)") at once on one
//                                    runtime thread: the wall time of the query phase
// Prints one line of key=value pairs. Bad arguments: exit 2 with one line.
#include <coop/coop.hpp>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include <dlfcn.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "hooks_bench: %s (usage: hooks_bench read | hooks_bench redis SOCKET [--fibers N] "
               "[--requests N] | hooks_bench pg CONNINFO [--fibers N])\n",
               why.c_str());
  std::exit(2);
}

long positive(const char* text, const char* what) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (!*text || *end || v <= 0) usage(std::string(what) + " must be a positive number, not '" + text + "'");
  return v;
}

/// ns per read of one byte from a socket that always has data, through
/// `hooked` and through `direct`, measured side by side: each batch of
/// data is read half by one, half by the other. Best of 5 rounds of `n`
/// reads each.
template <class Hooked, class Direct>
std::pair<double, double> ns_per_read(int fd_in, int fd_out, Hooked hooked, Direct direct, int n) {
  constexpr int batch = 4096;
  double best_hooked = 1e18, best_direct = 1e18;
  char buf[batch];
  std::memset(buf, 'x', sizeof buf);
  auto timed = [&](auto read_fn) {
    const auto t0 = clock_type::now();
    for (int i = 0; i < batch / 2; ++i) {
      char c;
      if (read_fn(fd_in, &c, 1) != 1) usage("read failed");
    }
    return std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
  };
  for (int round = 0; round < 5; ++round) {
    double h = 0, d = 0;
    for (int done = 0; done < n; done += batch) {
      if (::send(fd_out, buf, sizeof buf, 0) != static_cast<ssize_t>(sizeof buf)) usage("send failed");
      if ((done / batch) % 2) { // alternate which goes first
        h += timed(hooked);
        d += timed(direct);
      } else {
        d += timed(direct);
        h += timed(hooked);
      }
      coop::this_fiber::yield(); // between batches (not timed): the runtime's other work
    }
    best_hooked = std::min(best_hooked, 2 * h / n);
    best_direct = std::min(best_direct, 2 * d / n);
  }
  return {best_hooked, best_direct};
}

int bench_read() {
  using read_type = ssize_t (*)(int, void*, size_t);
  // libc's own read, past any hook in front of it.
  void* libc = ::dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  auto direct = libc ? reinterpret_cast<read_type>(::dlsym(libc, "read")) : nullptr;
  if (!direct) usage("cannot find libc's read");
  coop::run([&] {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) usage("socketpair failed");
    constexpr int n = 1 << 16;
    const auto [hooked, plain] = ns_per_read(
        fds[0], fds[1], [](int fd, void* b, size_t len) { return ::read(fd, b, len); }, direct, n);
    std::printf("hooked_read_ns=%.1f libc_read_ns=%.1f ratio=%.3f\n", hooked, plain, hooked / plain);
    ::close(fds[0]);
    ::close(fds[1]);
  });
  return 0;
}

int bench_redis(const std::string& socket, long fibers, long requests) {
  coop::run([&] {
    std::atomic<long> ok{0};
    const auto t0 = clock_type::now();
    coop::task_group group;
    for (long i = 0; i < fibers; ++i)
      group.spawn([&, share = requests / fibers] {
        redisContext* c = redisConnectUnix(socket.c_str());
        if (!c || c->err) return;
        for (long n = 0; n < share; ++n) {
          auto* r = static_cast<redisReply*>(redisCommand(c, "GET k"));
          if (!r) break;
          freeReplyObject(r);
          ++ok;
        }
        redisFree(c);
      });
    group.join();
    const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
    std::printf("gets=%ld seconds=%.3f gets_per_s=%.0f\n", ok.load(), s, ok.load() / s);
  });
  return 0;
}

int bench_pg(const std::string& conninfo, long fibers) {
  coop::run([&] {
    std::vector<PGconn*> conns;
    for (long i = 0; i < fibers; ++i) {
      conns.push_back(PQconnectdb(conninfo.c_str()));
      if (PQstatus(conns.back()) != CONNECTION_OK)
        usage(std::string("cannot connect: ") + PQerrorMessage(conns.back()));
    }
    std::atomic<long> ok{0};
    const auto t0 = clock_type::now();
    {
      coop::task_group group;
      for (PGconn* c : conns)
        group.spawn([&ok, c] {
          PGresult* r = PQexec(c, "SELECT pg_sleep(0.2)");
          if (PQresultStatus(r) == PGRES_TUPLES_OK) ++ok;
          PQclear(r);
        });
      group.join();
    }
    const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
    for (PGconn* c : conns)
      PQfinish(c);
    std::printf("queries=%ld seconds=%.3f\n", ok.load(), s);
  });
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage("no command");
  const std::string cmd = argv[1];
  if (cmd == "read") {
    if (argc != 2) usage("read takes no arguments");
    return bench_read();
  }
  if (cmd == "redis") {
    if (argc < 3) usage("redis needs the server's socket");
    long fibers = 100, requests = 100'000;
    for (int i = 3; i < argc; i += 2) {
      if (i + 1 >= argc) usage(std::string(argv[i]) + " needs a value");
      if (std::strcmp(argv[i], "--fibers") == 0)
        fibers = positive(argv[i + 1], "--fibers");
      else if (std::strcmp(argv[i], "--requests") == 0)
        requests = positive(argv[i + 1], "--requests");
      else
        usage(std::string("unknown option ") + argv[i]);
    }
    return bench_redis(argv[2], fibers, requests);
  }
  if (cmd == "pg") {
    if (argc < 3) usage("pg needs a libpq connection string");
    long fibers = 200;
    for (int i = 3; i < argc; i += 2) {
      if (i + 1 >= argc) usage(std::string(argv[i]) + " needs a value");
      if (std::strcmp(argv[i], "--fibers") == 0)
        fibers = positive(argv[i + 1], "--fibers");
      else
        usage(std::string("unknown option ") + argv[i]);
    }
    return bench_pg(argv[2], fibers);
  }
  usage("unknown command '" + cmd + "'");
}
