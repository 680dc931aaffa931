// bench/micro/micro_bench.cpp — coop's primitives against their raw
// Boost.Fiber counterparts, on Google Benchmark. Names come in pairs,
// coop/<what> and <reference>/<what> (raw: Boost.Fiber; asio; std: the
// standard library; hand: hand-written code); scripts/bench prints each coop
// figure as a ratio to its reference (see docs/performance.md for what each
// measures).
//
// Every benchmark body runs on a fresh OS thread: coop::run installs coop's
// scheduler on the thread that calls it, and Boost.Fiber keeps a thread's
// scheduler for the thread's lifetime, so a raw benchmark must never run on
// a thread coop has used (or the other way round).
//
//   micro_bench [--fibers=N] [Google Benchmark options, e.g. --benchmark_filter=channel]
#include <coop/coop.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/fiber/all.hpp>

#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

/// Runs `f` on a new OS thread and waits for it.
template <class F> void on_fresh_thread(F&& f) {
  std::thread t(std::forward<F>(f));
  t.join();
}

/// The calling process's resident set, in KiB (VmRSS).
long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string key;
  long value = 0;
  while (in >> key) {
    if (key == "VmRSS:") {
      in >> value;
      return value;
    }
    in.ignore(1 << 12, '\n');
  }
  return 0;
}

/// What a benchmark needs from each side: where its body runs, yield, spawn.
/// coop: a coop::run on a fresh thread; raw: Boost.Fiber's default scheduler
/// on a fresh thread.
struct coop_side {
  template <class F> static void run(F&& f) {
    on_fresh_thread([&] { coop::run(std::forward<F>(f)); });
  }
  static void yield() { coop::this_fiber::yield(); }
  template <class F> static coop::task<void> spawn(F&& f) { return coop::spawn(std::forward<F>(f)); }
};
struct raw_side {
  template <class F> static void run(F&& f) { on_fresh_thread(std::forward<F>(f)); }
  static void yield() { boost::this_fiber::yield(); }
  template <class F> static boost::fibers::fiber spawn(F&& f) { return boost::fibers::fiber(std::forward<F>(f)); }
};

// --- context switch: two fibers of one thread yielding to each other ---------
// One iteration is one switch to the other fiber (and its switch back counts
// as the other's iteration, so: half a round trip).
template <class Side> void context_switch(benchmark::State& state) {
  Side::run([&] {
    std::atomic<bool> done{false};
    auto partner = Side::spawn([&] {
      while (!done.load(std::memory_order_relaxed))
        Side::yield();
    });
    for (auto _ : state)
      Side::yield();
    done = true;
    partner.join();
  });
}

// --- yield: the only fiber of its thread yields (back to itself) ------------
template <class Side> void yield(benchmark::State& state) {
  Side::run([&] {
    for (auto _ : state)
      Side::yield();
  });
}

// --- spawn + join: start a fiber that does nothing, wait for its end --------
template <class Side> void spawn_join(benchmark::State& state) {
  Side::run([&] {
    for (auto _ : state)
      Side::spawn([] {}).join();
  });
}

// --- channel ping-pong: one item there, one back (an iteration) -------------
// state.range(0) is the capacity. Boost.Fiber's buffered_channel needs a
// power of two >= 2 and holds one item less: capacity 1 is buffered_channel(2),
// 1024 is buffered_channel(1024) (1023 items; ping-pong never holds more than one).

/// Ping-pong through `ping` and `pong` (coop channels or locked_queue: `pop`
/// returns an optional, empty once closed); `start_partner(fn)` starts the
/// partner (a fiber or a thread) and returns something to join.
template <class Queue, class StartPartner>
void ping_pong(benchmark::State& state, Queue& ping, Queue& pong, StartPartner start_partner) {
  auto partner = start_partner([&] {
    while (auto v = ping.pop())
      pong.push(*v);
  });
  int i = 0;
  for (auto _ : state) {
    ping.push(i++);
    benchmark::DoNotOptimize(pong.pop());
  }
  ping.close();
  partner.join();
}

template <class StartPartner> void coop_ping_pong(benchmark::State& state, StartPartner start_partner) {
  auto capacity = static_cast<std::size_t>(state.range(0));
  coop::channel<int> ping(capacity), pong(capacity);
  ping_pong(state, ping, pong, start_partner);
}

void coop_channel_same_thread(benchmark::State& state) {
  on_fresh_thread([&] { coop::run([&] { coop_ping_pong(state, [](auto fn) { return coop::spawn(fn); }); }); });
}

void coop_channel_two_threads(benchmark::State& state) {
  on_fresh_thread([&] {
    coop::runtime other(1); // the partner's runtime thread
    coop::run([&] { coop_ping_pong(state, [&](auto fn) { return other.spawn_on(0, fn); }); });
  });
}

template <class Channel> void raw_ping_pong(benchmark::State& state, Channel& ping, Channel& pong, bool two_threads) {
  auto partner_fn = [&] {
    int v = 0;
    while (ping.pop(v) == boost::fibers::channel_op_status::success)
      pong.push(v);
  };
  std::optional<boost::fibers::fiber> fiber;
  std::optional<std::thread> thread;
  if (two_threads)
    thread.emplace(partner_fn); // the thread's main context blocks on the channel
  else
    fiber.emplace(partner_fn);
  int i = 0, v = 0;
  for (auto _ : state) {
    ping.push(i++);
    pong.pop(v);
    benchmark::DoNotOptimize(v);
  }
  ping.close();
  if (fiber) fiber->join();
  if (thread) thread->join();
}

void raw_channel(benchmark::State& state, bool two_threads) {
  on_fresh_thread([&] {
    if (state.range(0) == 0) {
      boost::fibers::unbuffered_channel<int> ping, pong;
      raw_ping_pong(state, ping, pong, two_threads);
    } else {
      std::size_t capacity = state.range(0) == 1 ? 2 : static_cast<std::size_t>(state.range(0));
      boost::fibers::buffered_channel<int> ping(capacity), pong(capacity);
      raw_ping_pong(state, ping, pong, two_threads);
    }
  });
}
void raw_channel_same_thread(benchmark::State& state) {
  raw_channel(state, false);
}
void raw_channel_two_threads(benchmark::State& state) {
  raw_channel(state, true);
}

/// The queue C++ code writes without fibers: a deque under a mutex, a
/// condition variable to wait on. Mutex and CondVar are std:: (two OS threads)
/// or boost::fibers:: (two fibers of one thread).
template <class Mutex, class CondVar> class locked_queue {
public:
  void push(int v) {
    {
      std::lock_guard lock(mutex_);
      items_.push_back(v);
    }
    ready_.notify_one();
  }
  std::optional<int> pop() {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (items_.empty()) return std::nullopt;
    int v = items_.front();
    items_.pop_front();
    return v;
  }
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    ready_.notify_all();
  }

private:
  Mutex mutex_;
  CondVar ready_;
  std::deque<int> items_;
  bool closed_ = false;
};

void mutex_condvar_same_thread(benchmark::State& state) {
  on_fresh_thread([&] {
    locked_queue<boost::fibers::mutex, boost::fibers::condition_variable> ping, pong;
    ping_pong(state, ping, pong, [](auto fn) { return boost::fibers::fiber(fn); });
  });
}

void mutex_condvar_two_threads(benchmark::State& state) {
  on_fresh_thread([&] {
    locked_queue<std::mutex, std::condition_variable> ping, pong;
    ping_pong(state, ping, pong, [](auto fn) { return std::thread(fn); });
  });
}

// --- coop::timeout set + clear: a scope that arms and disarms a deadline ----
// Boost.Fiber has nothing like it; the reference is what a callback server
// pays per timed operation: an Asio steady_timer armed, cancelled, and its
// cancelled handler run.

void coop_timeout(benchmark::State& state) {
  on_fresh_thread([&] {
    coop::run([&] {
      for (auto _ : state) {
        coop::timeout t(10s);
        benchmark::DoNotOptimize(&t);
      }
    });
  });
}

void asio_timer(benchmark::State& state) {
  on_fresh_thread([&] {
    boost::asio::io_context io(1);
    boost::asio::steady_timer timer(io);
    for (auto _ : state) {
      timer.expires_after(10s);
      timer.async_wait([](boost::system::error_code) {});
      timer.cancel();
      io.poll();
      io.restart();
    }
  });
}

// --- wait_readable on a pipe that is already readable, against poll(2) ----

/// A pipe with a byte in it: readable for as long as nobody reads.
struct ready_pipe {
  int fds[2] = {-1, -1};
  ready_pipe() {
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0 || ::write(fds[1], "x", 1) != 1) std::abort();
  }
  ~ready_pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
};

void coop_wait_readable(benchmark::State& state) {
  on_fresh_thread([&] {
    coop::run_options opts;
    opts.stall_threshold = std::chrono::milliseconds(0); // the loop never yields: no stall reports
    coop::run(
        [&] {
          ready_pipe p;
          for (auto _ : state)
            coop::wait_readable(p.fds[0]);
        },
        opts);
  });
}

void poll_readable(benchmark::State& state) {
  ready_pipe p;
  for (auto _ : state) {
    pollfd pfd{p.fds[0], POLLIN, 0};
    benchmark::DoNotOptimize(::poll(&pfd, 1, 0));
  }
}

// --- select: a partner waits in select over two channels, answers ----------
// One iteration: push to one of the two channels (alternating), the partner's
// select takes it and answers on a third. Its reference is the same ping-pong
// with a plain pop over Boost.Fiber's unbuffered_channel.

void coop_select(benchmark::State& state) {
  on_fresh_thread([&] {
    coop::run([&] {
      coop::channel<int> a(0), b(0), reply(0);
      auto partner = coop::spawn([&] {
        std::optional<int> x, y;
        for (;;) {
          auto r = coop::select(coop::recv(a, x), coop::recv(b, y));
          if (r.status != coop::channel_status::success) return;
          reply.push(r.index == 0 ? *x : *y);
        }
      });
      int i = 0;
      for (auto _ : state) {
        (i % 2 == 0 ? a : b).push(i);
        ++i;
        benchmark::DoNotOptimize(reply.pop());
      }
      a.close();
      partner.join();
    });
  });
}

void raw_select_reference(benchmark::State& state) {
  on_fresh_thread([&] {
    boost::fibers::unbuffered_channel<int> ping, pong;
    raw_ping_pong(state, ping, pong, false);
  });
}

// --- park / wake: two fibers hand a turn back and forth ---------------------
// coop: two semaphores (each acquire parks, each release wakes: the park path
// every coop blocking call goes through). Raw: Boost.Fiber's mutex and
// condition_variable with a turn flag.

void coop_park_wake(benchmark::State& state) {
  on_fresh_thread([&] {
    coop::run([&] {
      coop::semaphore to_partner(0), to_main(0);
      bool done = false;
      auto partner = coop::spawn([&] {
        for (;;) {
          to_partner.acquire();
          if (done) return;
          to_main.release();
        }
      });
      for (auto _ : state) {
        to_partner.release();
        to_main.acquire();
      }
      done = true;
      to_partner.release();
      partner.join();
    });
  });
}

void raw_park_wake(benchmark::State& state) {
  on_fresh_thread([&] {
    boost::fibers::mutex m;
    boost::fibers::condition_variable cv;
    int turn = 0; // 0: main, 1: partner, 2: partner stops
    boost::fibers::fiber partner([&] {
      std::unique_lock lock(m);
      for (;;) {
        cv.wait(lock, [&] { return turn != 0; });
        if (turn == 2) return;
        turn = 0;
        cv.notify_all();
      }
    });
    for (auto _ : state) {
      std::unique_lock lock(m);
      turn = 1;
      cv.notify_all();
      cv.wait(lock, [&] { return turn == 0; });
    }
    {
      std::lock_guard lock(m);
      turn = 2;
    }
    cv.notify_all();
    partner.join();
  });
}

// --- mutex: lock + unlock, a short critical section ------------------------
// coop::mutex against std::mutex. Uncontended: one fiber (one thread) locks
// and unlocks in a loop. Two threads: a fiber on each of two runtime threads
// (std: two OS threads) takes the lock around a counter increment, with a
// little work outside it, so the lock is mostly free when asked for; the
// figure is the measuring side's wall-clock time per iteration.

/// Work outside the lock that is not optimised away: `steps` steps of about
/// a nanosecond each.
inline void outside_work(long steps) {
  for (long i = 0; i < steps; ++i)
    benchmark::DoNotOptimize(i);
}

/// state.range(0): steps of work outside the lock per iteration (0 when absent).
template <class Mutex> void lock_loop(benchmark::State& state, Mutex& m, long& counter) {
  const long steps = state.range(0);
  for (auto _ : state) {
    m.lock();
    ++counter;
    m.unlock();
    outside_work(steps);
  }
}

/// The partner's loop: the same, until `stop`.
template <class Mutex> void partner_lock_loop(Mutex& m, long& counter, long steps, const std::atomic<bool>& stop) {
  while (!stop.load(std::memory_order_relaxed)) {
    m.lock();
    ++counter;
    m.unlock();
    outside_work(steps);
  }
}

void coop_mutex_uncontended(benchmark::State& state) {
  on_fresh_thread([&] {
    coop::run([&] {
      coop::mutex m;
      long counter = 0;
      lock_loop(state, m, counter);
      benchmark::DoNotOptimize(counter);
    });
  });
}

void std_mutex_uncontended(benchmark::State& state) {
  on_fresh_thread([&] {
    std::mutex m;
    long counter = 0;
    lock_loop(state, m, counter);
    benchmark::DoNotOptimize(counter);
  });
}

void coop_mutex_two_threads(benchmark::State& state) {
  on_fresh_thread([&] {
    coop::runtime other(1); // the partner's runtime thread
    coop::run([&] {
      coop::mutex m;
      long counter = 0;
      std::atomic<bool> stop{false}, started{false};
      auto partner = other.spawn_on(0, [&] {
        started = true;
        partner_lock_loop(m, counter, state.range(0), stop);
      });
      while (!started.load())
        coop::this_fiber::yield();
      lock_loop(state, m, counter);
      stop = true;
      partner.join();
      benchmark::DoNotOptimize(counter);
    });
  });
}

void std_mutex_two_threads(benchmark::State& state) {
  on_fresh_thread([&] {
    std::mutex m;
    long counter = 0;
    std::atomic<bool> stop{false}, started{false};
    std::thread partner([&] {
      started = true;
      partner_lock_loop(m, counter, state.range(0), stop);
    });
    while (!started.load())
      std::this_thread::yield();
    lock_loop(state, m, counter);
    stop = true;
    partner.join();
    benchmark::DoNotOptimize(counter);
  });
}

// --- pipelined lines: a peer sends "PING\r\n" back to back ------------------
// One iteration: one line parsed. A writer fiber of the same thread sends
// exactly as many lines as the run needs, 64 KiB at a time, over a Unix
// socket pair; the reader takes them one by one:
//   coop/pipelined_lines             coop::net::buffered_reader::read_line
//   coop/pipelined_lines_read_until  unix_stream::read_until into a std::string, erasing each line
//   hand/pipelined_lines(_read_until) the reference: a hand-written buffer
//                                    (read_some into 16 KiB, memchr, move the rest to the front)

/// A connected pair of Unix stream sockets of the calling runtime thread.
std::pair<coop::net::unix_stream, coop::net::unix_stream> unix_pair() {
  boost::asio::local::stream_protocol::socket a(coop::this_thread_io()), b(coop::this_thread_io());
  boost::asio::local::connect_pair(a, b);
  return {coop::net::unix_stream(std::move(a)), coop::net::unix_stream(std::move(b))};
}

/// Runs `parse(stream)` once per iteration (it must take exactly one line)
/// while a writer fiber sends `state.max_iterations` lines.
template <class Setup> void pipelined(benchmark::State& state, Setup setup) {
  on_fresh_thread([&] {
    coop::run([&] {
      auto [out, in] = unix_pair();
      const auto total = static_cast<std::size_t>(state.max_iterations);
      auto writer = coop::spawn([&out = out, total] {
        std::string chunk;
        for (int i = 0; i < 64 * 1024 / 6; ++i)
          chunk += "PING\r\n";
        const std::size_t per_chunk = chunk.size() / 6;
        for (std::size_t sent = 0; sent < total; sent += per_chunk)
          out.write_all(boost::asio::buffer(chunk.data(), (std::min)(per_chunk, total - sent) * 6));
        out.shutdown_send();
      });
      auto parse = setup(in);
      for (auto _ : state)
        benchmark::DoNotOptimize(parse());
      writer.join();
    });
  });
}

void coop_pipelined_lines(benchmark::State& state) {
  pipelined(state, [](coop::net::unix_stream& s) {
    return [reader = coop::net::buffered_reader(s)]() mutable { return reader.read_line().size(); };
  });
}

void coop_pipelined_read_until(benchmark::State& state) {
  pipelined(state, [](coop::net::unix_stream& s) {
    return [&s, buffer = std::string()]() mutable {
      std::size_t n = s.read_until(buffer, "\r\n");
      buffer.erase(0, n);
      return n;
    };
  });
}

/// What a server written without a buffered reader does.
class hand_parser {
public:
  explicit hand_parser(coop::net::unix_stream& s) : s_(&s), buf_(std::make_unique<char[]>(size)) {}
  std::size_t next_line() {
    for (;;) {
      if (auto* nl = static_cast<char*>(std::memchr(buf_.get() + begin_, '\n', end_ - begin_))) {
        std::size_t n = static_cast<std::size_t>(nl + 1 - (buf_.get() + begin_));
        begin_ += n;
        return n;
      }
      std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
      end_ += s_->read_some(boost::asio::buffer(buf_.get() + end_, size - end_));
    }
  }

private:
  static constexpr std::size_t size = 16384;
  coop::net::unix_stream* s_;
  std::unique_ptr<char[]> buf_;
  std::size_t begin_ = 0, end_ = 0;
};

void hand_pipelined_lines(benchmark::State& state) {
  pipelined(state, [](coop::net::unix_stream& s) {
    return [parser = std::make_shared<hand_parser>(s)] { return parser->next_line(); };
  });
}

// --- parked-fiber RSS: N fibers, each waiting on an event --------------------
// Reports KiB of resident memory per parked fiber (VmRSS after they all
// parked minus before). Both sides use 128 KiB stacks (coop's default;
// Boost.Fiber's default fixedsize_stack is the same size).

void coop_parked_rss(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  double per_fiber = 0;
  for (auto _ : state) {
    on_fresh_thread([&] {
      coop::run([&] {
        coop::event go;
        std::size_t parked = 0;
        std::vector<coop::task<void>> fibers;
        fibers.reserve(n);
        long before = rss_kib();
        for (std::size_t i = 0; i < n; ++i)
          fibers.push_back(coop::spawn([&] {
            ++parked;
            go.wait();
          }));
        while (parked < n)
          coop::this_fiber::yield();
        per_fiber = static_cast<double>(rss_kib() - before) / static_cast<double>(n);
        go.set();
        coop::join_all(fibers);
      });
    });
  }
  state.counters["rss_kib_per_fiber"] = per_fiber;
}

void raw_parked_rss(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  double per_fiber = 0;
  for (auto _ : state) {
    on_fresh_thread([&] {
      boost::fibers::mutex m;
      boost::fibers::condition_variable cv;
      bool go = false;
      std::size_t parked = 0;
      std::vector<boost::fibers::fiber> fibers;
      fibers.reserve(n);
      long before = rss_kib();
      for (std::size_t i = 0; i < n; ++i)
        fibers.emplace_back([&] {
          std::unique_lock lock(m);
          ++parked;
          cv.wait(lock, [&] { return go; });
        });
      while (parked < n)
        boost::this_fiber::yield();
      per_fiber = static_cast<double>(rss_kib() - before) / static_cast<double>(n);
      {
        std::lock_guard lock(m);
        go = true;
      }
      cv.notify_all();
      for (auto& f : fibers)
        f.join();
    });
  }
  state.counters["rss_kib_per_fiber"] = per_fiber;
}

/// Two threads taking one lock: almost always (16 steps of work outside the
/// lock) and now and then (1,000 steps, about a microsecond).
void outside_steps(benchmark::internal::Benchmark* b) {
  b->ArgName("work")->Arg(16)->Arg(1000);
}

void capacities(benchmark::internal::Benchmark* b) {
  b->ArgName("capacity")->Arg(0)->Arg(1)->Arg(1024);
}

} // namespace

BENCHMARK(context_switch<coop_side>)->Name("coop/context_switch");
BENCHMARK(context_switch<raw_side>)->Name("raw/context_switch");
BENCHMARK(yield<coop_side>)->Name("coop/yield");
BENCHMARK(yield<raw_side>)->Name("raw/yield");
BENCHMARK(spawn_join<coop_side>)->Name("coop/spawn_join");
BENCHMARK(spawn_join<raw_side>)->Name("raw/spawn_join");
BENCHMARK(coop_channel_same_thread)->Name("coop/channel_same_thread")->Apply(capacities);
BENCHMARK(raw_channel_same_thread)->Name("raw/channel_same_thread")->Apply(capacities);
BENCHMARK(mutex_condvar_same_thread)->Name("mutex_condvar/channel_same_thread");
// Across threads the work is on two threads: wall-clock time per round trip.
BENCHMARK(coop_channel_two_threads)->Name("coop/channel_two_threads")->Apply(capacities)->UseRealTime();
BENCHMARK(raw_channel_two_threads)->Name("raw/channel_two_threads")->Apply(capacities)->UseRealTime();
BENCHMARK(mutex_condvar_two_threads)->Name("mutex_condvar/channel_two_threads")->UseRealTime();
BENCHMARK(coop_timeout)->Name("coop/timeout_set_clear");
BENCHMARK(asio_timer)->Name("asio/timeout_set_clear");
BENCHMARK(coop_select)->Name("coop/select");
BENCHMARK(raw_select_reference)->Name("raw/select");
BENCHMARK(coop_mutex_uncontended)->Name("coop/mutex_uncontended")->Arg(0)->ArgName("work");
BENCHMARK(std_mutex_uncontended)->Name("std/mutex_uncontended")->Arg(0)->ArgName("work");
BENCHMARK(coop_mutex_two_threads)->Name("coop/mutex_two_threads")->Apply(outside_steps)->UseRealTime();
BENCHMARK(std_mutex_two_threads)->Name("std/mutex_two_threads")->Apply(outside_steps)->UseRealTime();
BENCHMARK(coop_pipelined_lines)->Name("coop/pipelined_lines");
BENCHMARK(hand_pipelined_lines)->Name("hand/pipelined_lines");
BENCHMARK(coop_pipelined_read_until)->Name("coop/pipelined_lines_read_until");
BENCHMARK(hand_pipelined_lines)->Name("hand/pipelined_lines_read_until");
BENCHMARK(coop_park_wake)->Name("coop/park_wake");
BENCHMARK(coop_wait_readable)->Name("coop/wait_readable_ready");
BENCHMARK(poll_readable)->Name("poll/wait_readable_ready");
BENCHMARK(raw_park_wake)->Name("raw/park_wake");

/// Runs the benchmarks; `--fibers=N` (default 100,000) sets how many parked
/// fibers the RSS benchmarks start (the ctest smoke run uses fewer).
int main(int argc, char** argv) {
  long fibers = 100'000;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--fibers=", 0) == 0) {
      char* end = nullptr;
      fibers = std::strtol(arg.c_str() + 9, &end, 10);
      if (*end != '\0' || fibers < 1 || fibers > 10'000'000) {
        std::cerr << "micro_bench: error: --fibers: must be a number between 1 and 10000000\n";
        return 2;
      }
    } else {
      rest.push_back(argv[i]);
    }
  }
  for (auto [name, fn] : {std::pair{"coop/parked_rss", &coop_parked_rss}, {"raw/parked_rss", &raw_parked_rss}})
    benchmark::RegisterBenchmark(name, fn)->Arg(fibers)->ArgName("fibers")->Iterations(1)->Repetitions(1);
  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_argc, rest.data())) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
