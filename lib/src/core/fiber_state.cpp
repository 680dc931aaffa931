#include "core/worker.hpp"
#include "diagnostics/where.hpp"
#include <coop/detail/fiber_state.hpp>

#include <boost/fiber/operations.hpp>

#include <atomic>
#include <cassert>
#include <string>

#include <time.h>

namespace coop::detail {
namespace {
/// The wait context of a plain thread (and of a runtime thread's contexts
/// that have no fiber_state yet).
thread_local wait_context thread_wait_context;
/// The fiber_local values of a plain thread, destroyed when it exits.
thread_local fiber_locals thread_locals;
std::atomic<std::uint64_t> last_fiber_local_id{0};
} // namespace

fiber_state::~fiber_state() {
  if (registered) owner->forget(*this);
  delete where;
}

fiber_state* current_fiber_state() noexcept {
  worker* w = current_worker();
  if (!w) return nullptr;
  // Inside a runtime every context passes through our scheduler, whose
  // properties are fiber_state; the main context may not have them yet.
  boost::fibers::context* ctx = w->current_known ? w->current_context : boost::fibers::context::active();
  assert(ctx == boost::fibers::context::active());
  return static_cast<fiber_state*>(ctx->get_properties());
}

fiber_state& require_fiber(const char* what) {
  if (fiber_state* fs = current_fiber_state()) return *fs;
  throw usage_error(std::string("coop: ") + what +
                    " must be called from a fiber of a coop runtime (inside coop::run, "
                    "coop::runtime or coop::spawn)");
}

std::int64_t coarse_now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

wait_context& current_wait_context() noexcept {
  if (fiber_state* fs = current_fiber_state()) return *fs;
  return thread_wait_context;
}

fiber_locals& current_fiber_locals() noexcept {
  if (fiber_state* fs = current_fiber_state()) return fs->locals;
  return thread_locals;
}

std::uint64_t new_fiber_local_id() noexcept {
  return last_fiber_local_id.fetch_add(1, std::memory_order_relaxed) + 1;
}

boost::system::error_code wait_context::timeout_due() noexcept {
  // Look at the clock: a fiber may have computed past its deadline without
  // blocking, and a plain thread has no timer at all.
  auto now = std::chrono::steady_clock::now();
  for (timeout_node* t = timeouts; t; t = t->outer) {
    if (!t->expired && !t->disarmed && now >= t->deadline) t->expired = true;
    if (t->expired && t->shield_depth >= shield_depth) {
      last_fired = {t->duration, t == timeouts};
      return make_error_code(errc::timed_out);
    }
  }
  return {};
}

void wait_context::yield_after_failure() noexcept {
  // Only fibers of a runtime share their thread; a plain thread starves nobody.
  if (this != &thread_wait_context && current_worker()) yield_now();
}

void yield_now() {
  if (fiber_state* fs = current_fiber_state()) fs->yielded = true;
  boost::this_fiber::yield();
}

} // namespace coop::detail
