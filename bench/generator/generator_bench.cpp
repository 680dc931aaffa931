// bench_generator — what one next() of a coop::generator<int> costs, against
// the floor it is built on: a raw boost::context::fiber round trip (resume
// into the fiber and back), measured in the same run.
//
//   bench_generator [iterations=10000000] [rounds=5]
//
// Each round times both loops, interleaved; the medians are reported as
// ns per step, and their ratio. Wall-clock timings on a shared VM vary; for
// stable figures count instructions with callgrind instead (valgrind's
// client requests are not needed for this):
//
//   valgrind --tool=callgrind --callgrind-out-file=gen.cg bench_generator 100000 1
//   callgrind_annotate --inclusive=yes gen.cg | grep -E 'raw_fiber_loop|generator_loop'
//
// The inclusive instruction counts of raw_fiber_loop and generator_loop,
// divided by the iteration count, are the instructions per step of each.
#include <coop/generator.hpp>

#include <boost/context/fiber.hpp>
#include <boost/context/fixedsize_stack.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

/// A raw fiber that publishes a counter at each switch, as a generator does.
[[gnu::noinline]] long raw_fiber_loop(long iterations) {
  namespace ctx = boost::context;
  long value = 0;
  ctx::fiber f(std::allocator_arg, ctx::fixedsize_stack(), [&value](ctx::fiber&& caller) {
    for (long i = 0;; ++i) {
      value = i;
      caller = std::move(caller).resume();
    }
    return std::move(caller);
  });
  long sum = 0;
  for (long i = 0; i < iterations; ++i) {
    f = std::move(f).resume();
    sum += value;
  }
  return sum; // f is destroyed here: forced unwinding ends its loop
}

[[gnu::noinline]] long generator_loop(long iterations) {
  coop::generator<long> g([](auto& co) {
    for (long i = 0;; ++i)
      co.yield(i);
  });
  long sum = 0;
  for (long i = 0; i < iterations; ++i)
    sum += *g.next();
  return sum;
}

template <class Loop> double ns_per_step(Loop loop, long iterations, long& check) {
  auto start = clock_type::now();
  check += loop(iterations);
  std::chrono::duration<double, std::nano> elapsed = clock_type::now() - start;
  return elapsed.count() / static_cast<double>(iterations);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

} // namespace

int main(int argc, char** argv) {
  long iterations = argc > 1 ? std::stol(argv[1]) : 10'000'000;
  int rounds = argc > 2 ? std::stoi(argv[2]) : 5;
  if (iterations <= 0 || rounds <= 0) {
    std::fputs("usage: bench_generator [iterations>0] [rounds>0]\n", stderr);
    return 2;
  }
  std::vector<double> raw, gen;
  long raw_check = 0, gen_check = 0;
  for (int r = 0; r < rounds; ++r) {
    raw.push_back(ns_per_step(raw_fiber_loop, iterations, raw_check));
    gen.push_back(ns_per_step(generator_loop, iterations, gen_check));
  }
  if (raw_check != gen_check) {
    std::fputs("bench_generator: the two loops disagree\n", stderr);
    return 1;
  }
  double raw_ns = median(raw), gen_ns = median(gen);
  std::printf("iterations per round: %ld, rounds: %d (medians)\n", iterations, rounds);
  std::printf("raw boost::context::fiber resume: %7.2f ns/step\n", raw_ns);
  std::printf("coop::generator<long>::next():    %7.2f ns/step\n", gen_ns);
  std::printf("ratio generator/raw:              %7.2f\n", gen_ns / raw_ns);
}
