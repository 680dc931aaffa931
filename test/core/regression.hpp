// test/core/regression.hpp — the harness of the regression tests
// (regression_*_test.cpp): tests for known bugs, each checking the CORRECT
// behaviour and failing (or hanging, which its watchdog turns into a
// failure) while the bug is there. Every case has a watchdog, so a hang ends
// the process with "<case>: hung (bug present)" on stderr; run the cases of
// a file one at a time to see each verdict:
//
//   for t in $(test_regression_net --list_content 2>&1 | sed -n 's/^\([a-z_0-9]*\)\*$/\1/p'); do
//     test_regression_net --run_test=$t >/dev/null 2>&1 && echo "pass $t" || echo "FAIL $t"; done
#pragma once

#include "support.hpp"

#include <boost/asio/read.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

namespace regression_support {

/// Ends the process with "<name>: hung (bug present)" unless destroyed within `limit`.
class watchdog {
public:
  explicit watchdog(std::string name, std::chrono::seconds limit = std::chrono::seconds(8))
      : name_(std::move(name)), thread_([this, limit] {
          std::unique_lock lk(m_);
          if (!cv_.wait_for(lk, limit, [this] { return disarmed_; })) give_up(name_, "hung (bug present)");
        }) {}
  ~watchdog() {
    {
      std::lock_guard lk(m_);
      disarmed_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  /// For a case that found a hang it cannot undo (a fiber stuck for good):
  /// reports it and ends the process at once.
  [[noreturn]] static void give_up(const std::string& name, const std::string& why) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), why.c_str());
    std::fflush(stderr);
    std::_Exit(1);
  }

private:
  std::string name_;
  std::mutex m_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  std::thread thread_;
};

inline std::string current_case() {
  return boost::unit_test::framework::current_test_case().p_name;
}

/// A test case whose body runs in a fiber of a fresh single-thread runtime, under a watchdog.
#define REGRESSION_CASE(name)                                                                                          \
  static void name##_body();                                                                                           \
  BOOST_AUTO_TEST_CASE(name) {                                                                                         \
    watchdog dog(#name);                                                                                               \
    coop::run([] { name##_body(); });                                                                                  \
  }                                                                                                                    \
  static void name##_body()

/// A test case whose body runs on the test's own (plain) thread, under a watchdog.
#define REGRESSION_PLAIN_CASE(name)                                                                                    \
  static void name##_body();                                                                                           \
  BOOST_AUTO_TEST_CASE(name) {                                                                                         \
    watchdog dog(#name);                                                                                               \
    name##_body();                                                                                                     \
  }                                                                                                                    \
  static void name##_body()

using test_support::connected_pair;

/// Describes how a call ended, for checks on fibers (where BOOST_TEST of the
/// exception type would be awkward) and on plain threads (where Boost.Test
/// must not be called).
template <class F> std::string outcome_of(F&& fn) {
  try {
    fn();
    return "returned";
  } catch (const coop::timeout_error&) {
    return "timeout_error";
  } catch (const coop::cancelled&) {
    return "cancelled";
  } catch (const coop::usage_error& e) {
    return std::string("usage_error: ") + e.what();
  } catch (const std::exception& e) {
    return std::string("exception: ") + e.what();
  }
}

/// Parks the calling fiber until it is cancelled (error_code form: no exception).
inline void wait_for_cancel(bool& parked) {
  parked = true;
  boost::system::error_code ec;
  coop::sleep_for(std::chrono::seconds(10), ec);
  BOOST_TEST((ec == coop::errc::cancelled), "expected the park to end by cancellation, got " << ec.message());
}

/// Lets other fibers run until `flag` is set (no timing assumptions).
inline void yield_until(const bool& flag) {
  while (!flag)
    coop::this_fiber::yield();
}

inline std::chrono::milliseconds ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
}

} // namespace regression_support

using namespace regression_support;
