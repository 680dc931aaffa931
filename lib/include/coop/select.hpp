// coop/select.hpp — wait on several channel operations (and a timer) at
// once; the first that can complete does, the others do not happen.
#pragma once

#include <coop/channel.hpp>
#include <coop/detail/deadline.hpp>
#include <coop/detail/select.hpp>
#include <coop/error.hpp>

#include <chrono>
#include <optional>
#include <tuple>
#include <utility>

namespace coop {

/// A `select` case: receive from `ch` into `out` (left empty if the channel
/// turns out closed and drained).
template <class T> detail::recv_case<T> recv(channel<T>& ch, std::optional<T>& out) {
  return {&ch, out};
}
/// Like `recv(ch, out)`; a null `ch` disables the case (Go's nil channel):
/// it never completes. Use it to stop selecting on a channel that closed.
template <class T> detail::recv_case<T> recv(channel<T>* ch, std::optional<T>& out) {
  return {ch, out};
}
/// A `select` case: push `item` into `ch`. `item` is moved from only if this
/// case is the one that completes.
template <class T> detail::send_case<T> send(channel<T>& ch, T& item) {
  return {&ch, item};
}
/// Like `send(ch, item)`; a null `ch` disables the case.
template <class T> detail::send_case<T> send(channel<T>* ch, T& item) {
  return {ch, item};
}
/// A `select` case that completes (status `success`) once `d` has passed,
/// if nothing else completed first (Go's `time.After`).
template <class Rep, class Period> detail::after_case after(std::chrono::duration<Rep, Period> d) {
  return detail::after_case(detail::deadline_after(d));
}
/// A `select` case that completes once `deadline` has passed.
inline detail::after_case at(std::chrono::steady_clock::time_point deadline) {
  return detail::after_case(deadline);
}

/// Waits until one of the cases can complete, completes exactly that one and
/// returns which (`index` in argument order) and how (`success`, or `closed`
/// when its channel was closed). No case polls: the fiber parks in every
/// channel's wait queue at once (and sleeps until the earliest `after`).
///
/// - Cases that can complete at once are tried from a rotating position, so
///   none starves.
/// - A closed channel's case is always ready: `recv` completes with `closed`
///   once the channel is drained, `send` with `closed`. To stop selecting on
///   it, disable the case by passing a null channel pointer.
/// - With every case disabled (and no `after`), it waits until interrupted.
/// - Like every blocking call it throws `timeout_error`/`cancelled` when
///   interrupted (at entry if already due). With a trailing
///   `boost::system::error_code&` it reports that into it instead and returns
///   an empty optional.
///
/// Thread-safety: the channels may be used concurrently from any thread.
///
/// Example:
/// @code
///   std::optional<job> j; std::optional<int> stop;
///   switch (coop::select(coop::recv(jobs, j), coop::recv(control, stop), coop::after(1s)).index) { ... }
/// @endcode
template <class... Args> auto select(Args&&... args) {
  static_assert((detail::is_error_code_ref<Args&&>::value + ... + 0) <=
                    (detail::last_is_error_code<Args&&...>() ? 1 : 0),
                "coop::select: the error_code& argument comes last, after the cases");
  if constexpr (detail::last_is_error_code<Args&&...>()) {
    return detail::select_with_ec(std::forward_as_tuple(std::forward<Args>(args)...),
                                  std::make_index_sequence<sizeof...(Args) - 1>{});
  } else {
    boost::system::error_code ec;
    auto r = detail::select_impl(true, ec, args...);
    throw_on_error(ec, "coop::select");
    return *r;
  }
}

/// Completes one case that can complete now, or returns empty without waiting.
template <class... Cases> std::optional<select_result> try_select(Cases... cases) {
  boost::system::error_code ec;
  return detail::select_impl(false, ec, cases...);
}

} // namespace coop
