#include "core/worker.hpp"
#include <coop/detail/fiber_state.hpp>
#include <coop/detail/park.hpp>
#include <coop/this_fiber.hpp>

#include <boost/fiber/operations.hpp>

namespace coop {
namespace {
/// The name of a plain thread (or of a runtime thread's context without a fiber_state).
thread_local detail::fiber_name thread_name;
} // namespace

void sleep_until(std::chrono::steady_clock::time_point deadline, boost::system::error_code& ec) {
  auto& wc = detail::current_wait_context();
  if (wc.checkpoint(ec)) return;
  if (deadline <= std::chrono::steady_clock::now()) {
    if (detail::current_fiber_state()) detail::yield_now();
    return;
  }
  static const detail::wait_info info{wait_kind::sleep, "sleep"};
  detail::spinlock unused;
  detail::spinlock_lock lk(unused);
  detail::time_site site;
  detail::park(wc, lk, site, info, deadline, ec); // `deadline` is the normal end
}

void sleep_until(std::chrono::steady_clock::time_point deadline) {
  boost::system::error_code ec;
  sleep_until(deadline, ec);
  throw_on_error(ec, "coop::sleep_until");
}

namespace this_fiber {
void yield(boost::system::error_code& ec) {
  auto& fs = detail::require_fiber("coop::this_fiber::yield");
  if (fs.checkpoint(ec)) return;
  detail::yield_now();
}

void yield() {
  boost::system::error_code ec;
  yield(ec);
  throw_on_error(ec, "coop::this_fiber::yield");
}

void set_name(std::string_view name) {
  detail::fiber_state* fs = detail::current_fiber_state();
  if (!fs) {
    thread_name.assign(name);
    return;
  }
  std::unique_lock<std::mutex> lk;
  if (fs->registered) lk = std::unique_lock(fs->owner->registry_mutex); // coop::dump_fibers reads it
  fs->name.assign(name);
}

std::string name() {
  detail::fiber_state* fs = detail::current_fiber_state();
  return (fs ? fs->name : thread_name).str();
}
} // namespace this_fiber

} // namespace coop
