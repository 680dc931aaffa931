// coop/detail/deadline.hpp — deadlines, and the one way a duration becomes one.
#pragma once

#include <chrono>

namespace coop::detail {

using steady_time = std::chrono::steady_clock::time_point;
inline constexpr steady_time no_deadline = (steady_time::max)();

/// The deadline `d` from now, with saturating arithmetic: a duration too
/// long to represent from now (`duration::max()`, `hours::max()`) means no
/// deadline; zero or a negative one means now. Every `_for` call of coop
/// computes its deadline here.
template <class Rep, class Period> steady_time deadline_after(std::chrono::duration<Rep, Period> d) noexcept {
  const auto now = std::chrono::steady_clock::now();
  if (d <= d.zero()) return now;
  if (std::chrono::duration<double>(d) >= std::chrono::duration<double>(no_deadline - now)) return no_deadline;
  return now + std::chrono::ceil<std::chrono::steady_clock::duration>(d);
}

/// `d` in nanoseconds, saturating: 0 at least, `nanoseconds::max()` at most.
template <class Rep, class Period>
std::chrono::nanoseconds saturated_ns(std::chrono::duration<Rep, Period> d) noexcept {
  if (d <= d.zero()) return std::chrono::nanoseconds::zero();
  if (std::chrono::duration<double>(d) >= std::chrono::duration<double>(std::chrono::nanoseconds::max()))
    return std::chrono::nanoseconds::max();
  return std::chrono::ceil<std::chrono::nanoseconds>(d);
}

} // namespace coop::detail
