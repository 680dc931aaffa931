// test/core/support.hpp — run test bodies inside a coop runtime, as users write code.
#pragma once

#include <coop/coop.hpp>

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <string>

using namespace std::chrono_literals;

/// A test case whose body runs in a fiber of a fresh single-thread runtime.
#define COOP_TEST_CASE(name)                                                                                           \
  static void name##_body();                                                                                           \
  BOOST_AUTO_TEST_CASE(name) {                                                                                         \
    coop::run([] { name##_body(); });                                                                                  \
  }                                                                                                                    \
  static void name##_body()

/// Thread counts that multi-thread tests run with.
inline constexpr unsigned runtime_sizes[] = {1, 2, 4};

namespace test_support {

inline boost::asio::ip::tcp::endpoint loopback() {
  return {boost::asio::ip::make_address("127.0.0.1"), 0};
}

/// Elapsed time of `fn`, for assertions about ordering (never about speed).
template <class F> std::chrono::steady_clock::duration elapsed(F&& fn) {
  auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::steady_clock::now() - t0;
}

} // namespace test_support
