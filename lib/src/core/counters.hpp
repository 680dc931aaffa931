// lib/src/core/counters.hpp — counters that one thread writes and any thread
// reads (coop::metrics_snapshot), without a read-modify-write on the writer's
// path: a relaxed load and a relaxed store, two plain moves on x86.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace coop::detail {

/// Written by its owner thread only.
class owned_counter {
public:
  void add(std::uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(std::uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  void set(std::uint64_t n) noexcept { v_.store(n, std::memory_order_relaxed); }
  std::uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

private:
  std::atomic<std::uint64_t> v_{0};
};

/// Durations in nanoseconds, in buckets whose upper bounds (inclusive) grow
/// by 4 from 1,024 ns: 1.0 us, 4.1 us, 16 us, 66 us, 262 us, 1.05 ms,
/// 4.2 ms, 17 ms, 67 ms, 268 ms, 1.07 s, then unbounded. Finding the bucket
/// is a shift and a bit count.
class owned_histogram {
public:
  static constexpr std::size_t bounded = 11;
  static constexpr std::size_t buckets = bounded + 1;
  /// The upper bound of bucket `i` (< bounded), in ns: 1024 * 4^i, inclusive.
  static constexpr std::uint64_t upper_bound_ns(std::size_t i) noexcept { return std::uint64_t{1024} << (2 * i); }

  void record(std::uint64_t ns) noexcept {
    const std::uint64_t q = ns == 0 ? 0 : (ns - 1) >> 10;
    std::size_t i = q == 0 ? 0 : (static_cast<std::size_t>(std::bit_width(q)) + 1) / 2;
    if (i > bounded) i = bounded;
    counts_[i].add();
    sum_ns_.add(ns);
  }
  std::uint64_t count(std::size_t i) const noexcept { return counts_[i].get(); }
  std::uint64_t sum_ns() const noexcept { return sum_ns_.get(); }

private:
  owned_counter counts_[buckets];
  owned_counter sum_ns_;
};

/// The counters of one runtime thread (`worker::counters`). Each is written
/// by one thread: the runtime thread, except `stalls` and
/// `longest_stall_ns`, which the watchdog writes.
struct worker_counters {
  owned_counter spawned;
  owned_counter finished;
  owned_counter parks;
  owned_counter reactor_visits;
  owned_counter handlers_run;
  owned_counter ready_queue;
  owned_histogram scheduling_delay;
  owned_histogram reactor_lag;
  owned_counter stalls;
  owned_counter longest_stall_ns;
  owned_counter serve_accepted;
  owned_counter serve_open;
  owned_counter serve_limit_waits;
};

} // namespace coop::detail
