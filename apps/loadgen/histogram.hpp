// apps/loadgen/histogram.hpp — a latency histogram with bounded relative error.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

namespace loadgen {

/// Counts values (nanoseconds) in log-linear buckets: exact below 128, then
/// 64 buckets per power of two, so a reported percentile is within 1.6% of a
/// recorded value. Recording is one increment; merging adds counts.
///
/// Thread-safety: none; keep one per runtime thread and merge at the end.
class histogram {
public:
  histogram() : counts_(bucket_count, 0) {}

  void record(std::uint64_t v) {
    ++counts_[index_of(v)];
    ++total_;
    max_ = std::max(max_, v);
  }

  void merge(const histogram& other) {
    for (std::size_t i = 0; i < counts_.size(); ++i)
      counts_[i] += other.counts_[i];
    total_ += other.total_;
    max_ = std::max(max_, other.max_);
  }

  std::uint64_t count() const noexcept { return total_; }
  std::uint64_t max() const noexcept { return max_; }

  /// The value below which fraction `q` (0..1) of the recorded values lie.
  std::uint64_t percentile(double q) const {
    if (total_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_)));
    rank = std::clamp<std::uint64_t>(rank, 1, total_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(value_of(i), max_);
    }
    return max_;
  }

private:
  static constexpr unsigned exact_bits = 7; // values below 128 have a bucket each
  static constexpr std::size_t half = std::size_t{1} << (exact_bits - 1);
  static constexpr std::size_t bucket_count = (std::size_t{1} << exact_bits) + half * (64 - exact_bits + 1);

  static std::size_t index_of(std::uint64_t v) {
    if (v < (std::uint64_t{1} << exact_bits)) return static_cast<std::size_t>(v);
    unsigned shift = static_cast<unsigned>(std::bit_width(v)) - exact_bits; // >= 1
    std::size_t top = static_cast<std::size_t>(v >> shift);                 // in [64, 128)
    return (std::size_t{1} << exact_bits) + (shift - 1) * half + (top - half);
  }
  /// The middle of bucket `i`.
  static std::uint64_t value_of(std::size_t i) {
    if (i < (std::size_t{1} << exact_bits)) return i;
    std::size_t k = i - (std::size_t{1} << exact_bits);
    unsigned shift = static_cast<unsigned>(k / half) + 1;
    std::uint64_t top = k % half + half;
    return (top << shift) + (std::uint64_t{1} << (shift - 1));
  }

  std::vector<std::uint64_t> counts_;
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
};

} // namespace loadgen
