// coop/error.hpp — coop's error codes and the exceptions its blocking calls throw.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <stdexcept>
#include <string_view>
#include <type_traits>

namespace coop {

/// Error conditions raised by coop itself (not by the operating system).
enum class errc {
  timed_out = 1, ///< a `coop::timeout` scope or a deadline expired
  cancelled,     ///< the fiber was cancelled with `task::cancel()`
};

/// The category of `coop::errc` values; its name is "coop".
const boost::system::error_category& coop_category() noexcept;

/// Makes an error code of coop's category.
inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), coop_category()};
}

/// Thrown by a blocking call inside an expired `coop::timeout` scope.
/// `code()` is `coop::errc::timed_out`. It says which scope fired: its
/// duration, and whether it was the innermost one around the call (an
/// outer scope firing means the call's own, shorter bound did not) — also
/// in `what()`: "coop::timeout of 50 ms (the innermost scope): operation
/// timed out".
class timeout_error : public boost::system::system_error {
public:
  /// A timeout whose scope is not known.
  timeout_error() : boost::system::system_error(make_error_code(errc::timed_out)) {}
  /// A timeout of the scope of `duration` (from its construction to its
  /// deadline), `innermost` or not.
  timeout_error(std::chrono::nanoseconds duration, bool innermost);

  /// The fired scope's duration; negative when not known.
  std::chrono::nanoseconds duration() const noexcept { return duration_; }
  /// Whether the fired scope was the innermost `coop::timeout` around the call.
  bool innermost() const noexcept { return innermost_; }

private:
  std::chrono::nanoseconds duration_{-1};
  bool innermost_ = true;
};

/// Thrown by the blocking calls of a fiber that was cancelled.
/// `code()` is `coop::errc::cancelled`.
class cancelled : public boost::system::system_error {
public:
  cancelled() : boost::system::system_error(make_error_code(errc::cancelled)) {}
};

/// Thrown when a blocking call is made where it cannot block: outside a
/// runtime, or on an object that belongs to another runtime thread.
class usage_error : public std::logic_error {
public:
  using std::logic_error::logic_error;
};

/// Throws the exception that matches `ec`: `timeout_error`, `cancelled`, or
/// `boost::system::system_error` for everything else. Does nothing for success.
void throw_on_error(const boost::system::error_code& ec, const char* what = "");

namespace detail {
/// `throw_on_error` naming the call `type::call`
/// ("coop::net::tcp_stream::read_exact"); nothing when `ec` is clear.
void throw_call_error(const boost::system::error_code& ec, std::string_view type, std::string_view call);
} // namespace detail

} // namespace coop

namespace boost::system {
template <> struct is_error_code_enum<coop::errc> : std::true_type {};
} // namespace boost::system
