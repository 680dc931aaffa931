// coop::metrics_snapshot and coop::write_prometheus: the counters move as the
// program does.
#define BOOST_TEST_MODULE coop_metrics
#include <boost/test/unit_test.hpp>

#include "support.hpp"

#include <coop/coop.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using test_support::yield_until;

namespace {

std::size_t index_of(coop::wait_kind k) {
  return static_cast<std::size_t>(k);
}

/// The calling runtime's threads in a snapshot (the test's runtime is the
/// newest one: the highest number).
std::vector<coop::thread_metrics> own_threads() {
  coop::metrics m = coop::metrics_snapshot();
  unsigned newest = 0;
  for (const auto& t : m.threads)
    newest = std::max(newest, t.runtime);
  std::vector<coop::thread_metrics> own;
  for (const auto& t : m.threads)
    if (t.runtime == newest) own.push_back(t);
  return own;
}

coop::thread_metrics own_thread(unsigned index = 0) {
  for (const auto& t : own_threads())
    if (t.thread == index) return t;
  BOOST_FAIL("no metrics for thread " << index);
  return {};
}

std::uint64_t parked(const coop::thread_metrics& t, coop::wait_kind k) {
  return t.parked[index_of(k)];
}

/// A pipe whose read end fibers wait on with coop::wait_readable.
struct pipe_pair {
  int fds[2] = {-1, -1};
  pipe_pair() { BOOST_TEST_REQUIRE(::pipe(fds) == 0); }
  ~pipe_pair() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
};

} // namespace

COOP_TEST_CASE(a_hundred_fibers_parked_on_reads_count_as_parked_read_until_they_are_done) {
  const coop::thread_metrics before = own_thread();
  std::vector<std::unique_ptr<test_support::stream_pair>> pairs;
  for (int i = 0; i < 100; ++i)
    pairs.push_back(std::make_unique<test_support::stream_pair>(test_support::connected_pair()));
  coop::task_group readers;
  std::atomic<int> done{0};
  for (auto& p : pairs)
    readers.spawn([&done, s = &p->server] {
      char c;
      s->read_some(boost::asio::buffer(&c, 1));
      ++done;
    });
  yield_until([] { return parked(own_thread(), coop::wait_kind::read) == 100; });
  coop::thread_metrics during = own_thread();
  BOOST_TEST(parked(during, coop::wait_kind::read) == 100u);
  BOOST_TEST(during.fibers >= 101u); // the readers and this fiber
  BOOST_TEST(during.running == 1u);  // this fiber
  BOOST_TEST(during.fibers_spawned - before.fibers_spawned >= 100u);
  BOOST_TEST(during.parks - before.parks >= 100u);
  BOOST_TEST(during.stacks_mapped >= 100u);

  for (auto& p : pairs)
    p->client.write_some(boost::asio::buffer("x", 1));
  readers.join();
  BOOST_TEST(done == 100);
  const coop::thread_metrics after = own_thread();
  BOOST_TEST(parked(after, coop::wait_kind::read) == 0u);
  BOOST_TEST(after.fibers_finished - during.fibers_finished >= 100u);
  BOOST_TEST(after.context_switches > during.context_switches);
  BOOST_TEST(after.reactor_visits > during.reactor_visits);
  BOOST_TEST(after.handlers_run > during.handlers_run);
  // Each reader was woken by the reactor and waited in a ready queue.
  BOOST_TEST(after.scheduling_delay.count - during.scheduling_delay.count >= 100u);
  BOOST_TEST(after.scheduling_delay.counts.size() == after.scheduling_delay.upper_bounds.size() + 1);
}

COOP_TEST_CASE(each_kind_of_wait_is_counted_under_its_own_kind) {
  coop::channel<int> ch(0);
  coop::mutex m;
  coop::event ev;
  pipe_pair pipe;
  std::unique_lock held(m);
  coop::task_group g;
  g.spawn([&] { ch.pop(); });
  g.spawn([&] { std::lock_guard lk(m); });
  g.spawn([&] { ev.wait(); });
  g.spawn([] { coop::sleep_for(10s); });
  g.spawn([&] { coop::wait_readable(pipe.fds[0]); });
  // Parked on offload while a pool thread waits (on an event it shares: the
  // cancelled fiber abandons the job, which ends after this test).
  auto release = std::make_shared<coop::event>();
  g.spawn([release] { coop::offload([release] { release->wait(); }); });
  auto sleeper = coop::spawn([] { coop::sleep_for(10s); });
  g.spawn([&] { sleeper.join(); });
  using k = coop::wait_kind;
  yield_until([] {
    auto t = own_thread();
    return parked(t, k::channel) == 1 && parked(t, k::sync) == 2 && parked(t, k::sleep) == 2 &&
           parked(t, k::read) == 1 && parked(t, k::offload) == 1 && parked(t, k::join) == 1;
  });
  // The job is taken by a pool thread (a moment after it was queued).
  yield_until([] { return coop::metrics_snapshot().offload.running == 1; });
  BOOST_TEST(coop::metrics_snapshot().offload.threads >= 1u);

  std::ostringstream text;
  coop::write_prometheus(text);
  const auto t = own_thread();
  const std::string labels = "runtime=\"" + std::to_string(t.runtime) + "\",thread=\"0\"";
  BOOST_TEST(text.str().find("coop_fibers_parked{" + labels + ",wait=\"channel\"} 1\n") != std::string::npos,
             text.str());
  BOOST_TEST(text.str().find("coop_fibers_parked{" + labels + ",wait=\"sleep\"} 2\n") != std::string::npos);

  g.cancel();
  sleeper.cancel();
  ev.set();
  release->set();
  held.unlock();
  g.join();
}

COOP_MT_TEST_CASE(fibers_parked_on_each_thread_count_on_that_thread) {
  std::vector<pipe_pair> pipes(rt.size());
  std::vector<coop::task<void>> waiters;
  for (unsigned i = 0; i < rt.size(); ++i)
    for (unsigned n = 0; n <= i; ++n) // i + 1 fibers on thread i
      waiters.push_back(rt.spawn_on(i, [fd = pipes[i].fds[0]] { coop::wait_readable(fd); }));
  yield_until([&] {
    auto ts = own_threads();
    if (ts.size() != rt.size()) return false;
    for (const auto& t : ts)
      if (parked(t, coop::wait_kind::read) != t.thread + 1) return false;
    return true;
  });
  for (auto& p : pipes)
    BOOST_TEST_REQUIRE(::write(p.fds[1], "x", 1) == 1);
  for (auto& w : waiters)
    w.get();
}

COOP_TEST_CASE(serve_counts_accepted_and_open_connections) {
  coop::net::tcp_listener listener(test_support::loopback());
  const auto port = listener.local_endpoint().port();
  const coop::thread_metrics before = own_thread();
  coop::task_group connections;
  auto server = coop::spawn([&] {
    coop::net::serve(listener, connections, [](coop::net::tcp_stream s) {
      char c;
      boost::system::error_code ec;
      s.read_some(boost::asio::buffer(&c, 1), ec);
    });
  });
  std::vector<coop::net::tcp_stream> clients;
  for (int i = 0; i < 3; ++i)
    clients.push_back(coop::net::connect("127.0.0.1", port));
  yield_until([&] { return own_thread().serve_open - before.serve_open == 3; });
  BOOST_TEST(own_thread().serve_accepted - before.serve_accepted == 3u);
  clients.clear();
  yield_until([&] { return own_thread().serve_open == before.serve_open; });
  server.cancel();
  server.join();
  connections.join();
}

COOP_TEST_CASE(prometheus_text_has_help_and_type_for_every_family_and_histogram_buckets) {
  std::ostringstream out;
  coop::write_prometheus(out);
  const std::string text = out.str();
  for (const char* family : {"coop_fibers", "coop_fibers_parked", "coop_context_switches_total", "coop_parks_total",
                             "coop_scheduling_delay_seconds", "coop_reactor_lag_seconds", "coop_stalls_total",
                             "coop_stacks_mapped", "coop_serve_accepted_total", "coop_offload_jobs_queued"}) {
    BOOST_TEST(text.find(std::string("# HELP ") + family + " ") != std::string::npos, family);
    BOOST_TEST(text.find(std::string("# TYPE ") + family + " ") != std::string::npos, family);
  }
  BOOST_TEST(text.find("coop_scheduling_delay_seconds_bucket{") != std::string::npos);
  BOOST_TEST(text.find(",le=\"+Inf\"} ") != std::string::npos);
  BOOST_TEST(text.find("coop_scheduling_delay_seconds_count{") != std::string::npos);
}
