// bench/admin_dump_bench.cpp — the admin endpoint's GET /fibers with many
// parked fibers in one process, beyond what the open-file limit lets
// bench/admin_fibers park as connections (100,000 by default; each fiber here
// waits on an event inside `wait_for_work`, which the dump must name). A
// ticker fiber on the same runtime thread sleeps 1 ms at a time; its
// lateness is the delay the dump adds to the thread's other fibers, measured
// in interleaved rounds with and without GET /fibers running back to back.
//
//   admin_dump_bench [--fibers N] [--rounds N] [--seconds S]
#include <coop/coop.hpp>
#include <coop/diagnostics.hpp>

#include <boost/json/src.hpp> // Boost.JSON header-only, in this one .cpp

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct settings {
  int fibers = 100'000;
  int rounds = 3;
  double seconds = 2.0;
};

[[noreturn]] void usage_error(const char* what) {
  std::fprintf(stderr, "admin_dump_bench: %s\nusage: admin_dump_bench [--fibers N] [--rounds N] [--seconds S]\n", what);
  std::exit(2);
}

settings parse(int argc, char** argv) {
  settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (i + 1 >= argc) usage_error("each option takes a value");
    char* end = nullptr;
    const char* value = argv[++i];
    if (arg == "--fibers")
      s.fibers = static_cast<int>(std::strtol(value, &end, 10));
    else if (arg == "--rounds")
      s.rounds = static_cast<int>(std::strtol(value, &end, 10));
    else if (arg == "--seconds")
      s.seconds = std::strtod(value, &end);
    else
      usage_error("unknown option");
    if (!end || *end || s.fibers < 1 || s.rounds < 1 || s.seconds <= 0)
      usage_error("--fibers and --rounds take integers of at least 1, --seconds a number above 0");
  }
  return s;
}

/// The whole body of GET `target` from the admin endpoint at Unix socket `path`.
std::string admin_get(const std::string& path, const std::string& target) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::perror("admin_dump_bench: connect");
    std::exit(1);
  }
  const std::string request = "GET " + target + " HTTP/1.1\r\nHost: coop\r\n\r\n";
  if (::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) std::exit(1);
  std::string response;
  std::vector<char> buf(1 << 16);
  for (ssize_t n; (n = ::read(fd, buf.data(), buf.size())) > 0;)
    response.append(buf.data(), static_cast<std::size_t>(n));
  ::close(fd);
  const auto body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.1 200", 0) != 0 || body == std::string::npos) {
    std::fprintf(stderr, "admin_dump_bench: GET %s: %.80s\n", target.c_str(), response.c_str());
    std::exit(1);
  }
  return response.substr(body + 4);
}

struct dump_result {
  double seconds;
  std::size_t entries, placed, bytes;
};

/// GET `target`, timed, and its JSON parsed: how many entries, and how many
/// of the parked ones name `wait_for_work` where they wait.
dump_result dump(const std::string& path, const std::string& target) {
  const auto start = clock_type::now();
  const std::string body = admin_get(path, target);
  const double took = std::chrono::duration<double>(clock_type::now() - start).count();
  const auto fibers = boost::json::parse(body).as_array();
  std::size_t placed = 0;
  for (const auto& f : fibers) {
    const auto* where = f.as_object().if_contains("where");
    if (!where || !where->is_array() || where->as_array().empty()) continue;
    if (where->as_array()[0].as_string().find("wait_for_work") != boost::json::string::npos)
      ++placed;
    else if (std::getenv("ADMIN_DUMP_DEBUG"))
      std::fprintf(stderr, "%s\n", boost::json::serialize(f).c_str());
  }
  return {took, fibers.size(), placed, body.size()};
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

double median(std::vector<double> v) {
  return percentile(std::move(v), 0.5);
}

/// The user function the dump must name for every parked fiber.
__attribute__((noinline)) void wait_for_work(coop::event& work) {
  work.wait();
  asm volatile(""); // not a tail call: its frame stays on the stack
}

} // namespace

int main(int argc, char** argv) {
  const settings s = parse(argc, argv);
  char dir[] = "/tmp/coop-admin-bench-XXXXXX";
  if (!::mkdtemp(dir)) {
    std::perror("admin_dump_bench: mkdtemp");
    return 1;
  }
  const std::string socket_path = std::string(dir) + "/admin.sock";
  coop::run_options opts;
  opts.admin_socket = socket_path;
  opts.stack_size = 16 * 1024;
  bool named_all = false;
  coop::run(
      [&] {
        coop::event work;
        coop::task_group group;
        const auto started = clock_type::now();
        for (int i = 0; i < s.fibers; ++i) {
          group.spawn([&work] { wait_for_work(work); });
          if (i % 100 == 0) coop::this_fiber::yield();
        }
        coop::this_fiber::yield(); // every fiber parked
        std::printf("%d fibers parked in wait_for_work in %.2f s\n", s.fibers,
                    std::chrono::duration<double>(clock_type::now() - started).count());

        // The ticker: how late each 1 ms sleep wakes while it is recording.
        std::atomic<bool> recording{false}, done{false};
        std::vector<double> lateness_ms;
        auto ticker = coop::spawn([&] {
          while (!done.load(std::memory_order_relaxed)) {
            const auto t0 = clock_type::now();
            coop::sleep_for(1ms);
            const double late = std::chrono::duration<double, std::milli>(clock_type::now() - t0 - 1ms).count();
            if (recording.load(std::memory_order_relaxed)) lateness_ms.push_back(late);
          }
        });

        // The rest from a plain thread, which blocks.
        named_all = coop::offload([&] {
          const auto quiet = dump(socket_path, "/fibers?where=0");
          auto alone = dump(socket_path, "/fibers");
          alone = dump(socket_path, "/fibers");
          std::printf("GET /fibers?where=0 alone: %.3f s; GET /fibers alone: %.3f s (%zu entries, %zu in "
                      "wait_for_work, %.1f MB)\n",
                      quiet.seconds, alone.seconds, alone.entries, alone.placed,
                      static_cast<double>(alone.bytes) / 1e6);
          std::vector<double> p99_plain, p99_dumped, during;
          std::size_t fewest_placed = alone.placed;
          for (int round = 0; round < s.rounds; ++round) {
            for (const bool with_dumps : {round % 2 == 0, round % 2 != 0}) {
              lateness_ms.clear(); // the ticker is between sleeps or asleep: it touches it only when recording
              recording = true;
              const auto end = clock_type::now() + std::chrono::duration<double>(s.seconds);
              while (clock_type::now() < end) {
                if (with_dumps) {
                  const auto d = dump(socket_path, "/fibers");
                  during.push_back(d.seconds);
                  fewest_placed = std::min(fewest_placed, d.placed);
                } else {
                  std::this_thread::sleep_for(10ms);
                }
              }
              recording = false;
              std::this_thread::sleep_for(5ms); // the ticker's last push is done
              (with_dumps ? p99_dumped : p99_plain).push_back(percentile(lateness_ms, 0.99));
            }
          }
          std::printf("1 ms sleeps on the same thread, %g s rounds, medians of %d: p99 lateness %.2f ms without "
                      "dumps, %.2f ms while GET /fibers runs back to back (%zu dumps, median %.3f s, longest %.3f s, "
                      "fewest named %zu): rise %.2f ms\n",
                      s.seconds, s.rounds, median(p99_plain), median(p99_dumped), during.size(), median(during),
                      *std::max_element(during.begin(), during.end()), fewest_placed,
                      median(p99_dumped) - median(p99_plain));
          return alone.placed == static_cast<std::size_t>(s.fibers) && fewest_placed == alone.placed;
        });
        done = true;
        ticker.join();
        work.set();
        group.join();
      },
      opts);
  ::rmdir(dir);
  if (!named_all) {
    std::fprintf(stderr, "admin_dump_bench: not every parked fiber was named in wait_for_work\n");
    return 1;
  }
}
