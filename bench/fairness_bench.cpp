// bench/fairness_bench.cpp — how promptly coop's scheduler serves what was
// woken while many fibers stay ready (the scenarios of
// test/core/fairness_test.cpp, at full size):
//
//  1. timer lateness: a fiber sleeps 1 ms, over and over, while N fibers
//     (100,000 by default) yield in a loop; how late each sleep ends, beside
//     the same sleeps with no other fiber (the baseline);
//  2. accept latency: C clients (20) connect together and send one byte each
//     while H fibers (10) each compute 20 ms and yield; how long each waits
//     for its echo, beside one pass over the computing fibers (H x 20 ms),
//     which is what every connection waited per accept before.
//
//   fairness_bench [--yielders N] [--sleeps K] [--clients C] [--hogs H]
//
// Prints one "key value" line per figure (scripts/bench reads them).
#include <coop/coop.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using ms = std::chrono::duration<double, std::milli>;

struct options {
  int yielders = 100'000;
  int sleeps = 200;
  int clients = 20;
  int hogs = 10;
};

[[noreturn]] void usage_error(const char* what) {
  std::fprintf(stderr, "fairness_bench: %s (see the comment at the top of bench/fairness_bench.cpp)\n", what);
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    if (i + 1 >= argc) usage_error("every option takes a number");
    char* end = nullptr;
    long v = std::strtol(argv[i + 1], &end, 10);
    if (*end != '\0' || v < 0) usage_error("not a number");
    std::string flag = argv[i++];
    if (flag == "--yielders")
      o.yielders = static_cast<int>(v);
    else if (flag == "--sleeps")
      o.sleeps = static_cast<int>(std::max(1L, v));
    else if (flag == "--clients")
      o.clients = static_cast<int>(std::max(1L, v));
    else if (flag == "--hogs")
      o.hogs = static_cast<int>(v);
    else
      usage_error(("unknown option " + flag).c_str());
  }
  return o;
}

/// Sorted copy's element at fraction q (0.5: median; 1: largest).
double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

/// How late each of `n` sleeps of 1 ms ends, in ms, with `yielders` fibers
/// yielding in a loop meanwhile.
std::vector<double> sleep_lateness(int yielders, int n) {
  std::vector<double> late;
  coop::run_options opts;
  opts.stack_size = 16 * 1024;
  opts.scheduling_delay_threshold = std::chrono::milliseconds(0); // the point of the run
  opts.stall_threshold = std::chrono::milliseconds(0);            // spawning 100,000 fibers takes a while
  coop::run(
      [&] {
        bool stop = false;
        std::vector<coop::task<>> busy;
        busy.reserve(static_cast<std::size_t>(yielders));
        for (int i = 0; i < yielders; ++i)
          busy.push_back(coop::spawn([&stop] {
            while (!stop)
              coop::this_fiber::yield();
          }));
        coop::sleep_for(std::chrono::milliseconds(50)); // every yielder has started
        for (int i = 0; i < n; ++i) {
          auto deadline = clock_type::now() + std::chrono::milliseconds(1);
          coop::sleep_until(deadline);
          late.push_back(ms(clock_type::now() - deadline).count());
        }
        stop = true;
        for (auto& f : busy)
          f.join();
      },
      opts);
  return late;
}

/// Each client's wait for its one-byte echo, in ms.
std::vector<double> accept_latency(int clients, int hogs) {
  std::atomic<unsigned short> port{0};
  std::atomic<bool> done{false};
  std::vector<double> waited(static_cast<std::size_t>(clients));
  std::thread peer([&] {
    while (port.load() == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    boost::asio::io_context io;
    std::vector<boost::asio::ip::tcp::socket> socks;
    std::vector<clock_type::time_point> sent;
    for (int i = 0; i < clients; ++i) {
      socks.emplace_back(io);
      socks.back().connect({boost::asio::ip::make_address("127.0.0.1"), port.load()});
      boost::asio::write(socks.back(), boost::asio::buffer("x", 1));
      sent.push_back(clock_type::now());
    }
    for (std::size_t i = 0; i < socks.size(); ++i) {
      char c;
      boost::asio::read(socks[i], boost::asio::buffer(&c, 1));
      waited[i] = ms(clock_type::now() - sent[i]).count();
    }
    done = true;
  });
  coop::run_options opts;
  opts.scheduling_delay_threshold = std::chrono::milliseconds(0);
  coop::run(
      [&] {
        coop::net::tcp_listener listener({boost::asio::ip::make_address("127.0.0.1"), 0});
        coop::task_group work;
        coop::task_group connections;
        int started = 0;
        work.spawn([&] {
          coop::net::serve(listener, connections, [](coop::net::tcp_stream c) {
            char b;
            c.read_exact(boost::asio::buffer(&b, 1));
            c.write_all(boost::asio::buffer(&b, 1));
          });
        });
        for (int i = 0; i < hogs; ++i)
          work.spawn([&done, &started] {
            ++started;
            while (!done) {
              auto end = clock_type::now() + std::chrono::milliseconds(20);
              while (clock_type::now() < end) {
              }
              coop::this_fiber::yield();
            }
          });
        // The clients come once every computing fiber has started (the
        // steady state of a busy server, not its first pass).
        while (started < hogs)
          coop::sleep_for(std::chrono::milliseconds(5));
        port = listener.local_endpoint().port();
        while (!done)
          coop::sleep_for(std::chrono::milliseconds(5));
        work.cancel();
        work.join();
      },
      opts);
  peer.join();
  return waited;
}

} // namespace

int main(int argc, char** argv) {
  options o = parse(argc, argv);
  auto alone = sleep_lateness(0, o.sleeps);
  auto crowded = sleep_lateness(o.yielders, o.sleeps);
  std::printf("timer_late_alone_p50_ms %.3f\n", quantile(alone, 0.5));
  std::printf("timer_late_alone_max_ms %.3f\n", quantile(alone, 1.0));
  std::printf("timer_late_yielders %d\n", o.yielders);
  std::printf("timer_late_p50_ms %.3f\n", quantile(crowded, 0.5));
  std::printf("timer_late_p99_ms %.3f\n", quantile(crowded, 0.99));
  std::printf("timer_late_max_ms %.3f\n", quantile(crowded, 1.0));
  auto waited = accept_latency(o.clients, o.hogs);
  std::printf("accept_clients %d\n", o.clients);
  std::printf("accept_pass_ms %d\n", o.hogs * 20);
  std::printf("accept_p50_ms %.3f\n", quantile(waited, 0.5));
  std::printf("accept_max_ms %.3f\n", quantile(waited, 1.0));
  return 0;
}
