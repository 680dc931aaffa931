#include "core/worker.hpp"
#include <coop/detail/fiber_state.hpp>
#include <coop/detail/park.hpp>
#include <coop/this_fiber.hpp>

#include <boost/fiber/operations.hpp>

namespace coop {
namespace {
/// The name of a plain thread (or of a runtime thread's context without a fiber_state).
thread_local std::string thread_name;

std::string& current_name() noexcept {
  if (detail::fiber_state* fs = detail::current_fiber_state()) return fs->name;
  return thread_name;
}
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
  std::unique_lock<std::mutex> lk;
  if (detail::fiber_state* fs = detail::current_fiber_state(); fs && fs->registry)
    lk = std::unique_lock(fs->registry->registry_mutex); // coop::dump_fibers reads it
  std::string& slot = current_name();
  if (name.empty())
    std::string().swap(slot); // back to no allocation
  else
    slot.assign(name);
}

std::string name() {
  return current_name();
}
} // namespace this_fiber

} // namespace coop
