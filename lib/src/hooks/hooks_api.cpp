// lib/src/hooks/hooks_api.cpp — what libcoop_hooks.so asks of coop
// (hooks_api.hpp): whether the caller is a fiber, the parks its hooked
// calls make, and the offload its name lookups use. Each is one public coop call; errors become errno values, as
// C callers expect them.
#include "hooks/hooks_api.hpp"
#include "net/fd_table.hpp"

#include <coop/detail/fiber_state.hpp>
#include <coop/error.hpp>
#include <coop/fd.hpp>
#include <coop/offload.hpp>
#include <coop/this_fiber.hpp>

#include <boost/asio/error.hpp>

#include <cerrno>
#include <chrono>
#include <functional>
#include <memory>

namespace {

using clock = std::chrono::steady_clock; // CLOCK_MONOTONIC on Linux

clock::time_point from_ns(long long ns) {
  return ns < 0 ? clock::time_point::max() : clock::time_point(std::chrono::nanoseconds(ns));
}

/// How a coop wait failed, as an errno value.
int errno_of(const boost::system::error_code& ec) {
  if (ec == coop::errc::timed_out) return ETIMEDOUT;
  if (ec == coop::errc::cancelled) return ECANCELED;
  if (ec == boost::asio::error::bad_descriptor || ec == boost::asio::error::operation_aborted) return EBADF;
  if (ec.category() == boost::system::system_category()) return ec.value();
  return EIO;
}

int in_fiber() {
  return coop::detail::current_fiber_state() != nullptr;
}

int wait_fd(int fd, int for_write, long long deadline_ns) {
  boost::system::error_code ec;
  const bool ready = coop::detail::wait_fd_for_hooks(fd, for_write != 0, from_ns(deadline_ns), ec);
  if (ready) return 0;
  return ec ? errno_of(ec) : EAGAIN;
}

int sleep_until(long long deadline_ns) {
  boost::system::error_code ec;
  coop::sleep_until(from_ns(deadline_ns), ec);
  return ec ? errno_of(ec) : 0;
}

void forget_fd(int fd) {
  coop::forget_fd(fd);
}

int offload(void (*fn)(void*), void* arg, void (*release)(void*)) {
  std::shared_ptr<void> owner(arg, release); // the pool's reference, whatever becomes of the job
  boost::system::error_code ec;
  try {
    auto job =
        std::make_shared<coop::detail::offload_fn_job<std::function<int()>, int>>(std::function<int()>([fn, owner] {
          fn(owner.get());
          return 0;
        }));
    owner.reset();
    coop::detail::run_offload(job, ec);
  } catch (...) { // no memory, no pool thread: nothing ran
    return ENOMEM;
  }
  return ec ? errno_of(ec) : 0;
}

const coop_hooks_api api{&in_fiber, &wait_fd, &sleep_until, &forget_fd, &offload};

} // namespace

extern "C" __attribute__((visibility("default"), used)) const coop_hooks_api* coop_hooks_api_v1(void) {
  return &api;
}
