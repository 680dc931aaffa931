// coop/this_fiber.hpp — sleeping, yielding and naming in the calling fiber.
#pragma once

#include <coop/detail/deadline.hpp>

#include <boost/system/error_code.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace coop {

/// Suspends the calling fiber until `deadline` (other fibers run meanwhile);
/// on a plain thread, blocks the thread. Throws `timeout_error`/`cancelled`
/// when interrupted. A deadline already past only yields.
void sleep_until(std::chrono::steady_clock::time_point deadline);
void sleep_until(std::chrono::steady_clock::time_point deadline, boost::system::error_code& ec);

/// Suspends the calling fiber for `d` (gevent.sleep). `sleep_for(0s)` yields.
template <class Rep, class Period> void sleep_for(std::chrono::duration<Rep, Period> d) {
  sleep_until(detail::deadline_after(d));
}
template <class Rep, class Period> void sleep_for(std::chrono::duration<Rep, Period> d, boost::system::error_code& ec) {
  sleep_until(detail::deadline_after(d), ec);
}

namespace this_fiber {
/// Lets every other ready fiber of this thread run, then continues. Like
/// every blocking call, fails at once when an interruption is due
/// (`timeout_error`/`cancelled`). Throws `usage_error` outside a runtime fiber.
void yield();
void yield(boost::system::error_code& ec);

/// Names the calling fiber, for logs and diagnostics (`set_name("conn 42")`);
/// an empty name removes it. A fiber that is never named costs nothing.
/// Called on a plain thread, names that thread for coop (a thread-local
/// string; the operating system's thread name is left alone). Only the
/// calling fiber or thread reads or changes its own name.
void set_name(std::string_view name);
/// The name given by `set_name` to the calling fiber (or plain thread);
/// empty when it was never named.
std::string name();
} // namespace this_fiber

} // namespace coop
