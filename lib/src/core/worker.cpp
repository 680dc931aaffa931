#include "core/worker.hpp"
#include "core/scheduler.hpp"
#include "diagnostics/admin.hpp"
#include "diagnostics/watchdog.hpp"
#include <coop/timeout.hpp>

#include <boost/asio/post.hpp>
#include <boost/fiber/algo/round_robin.hpp>
#include <boost/fiber/operations.hpp>

#include <string>

namespace coop::detail {
namespace {
thread_local worker* this_thread_worker = nullptr;
}

worker* current_worker() noexcept {
  return this_thread_worker;
}

worker& require_worker(const char* what) {
  if (this_thread_worker) return *this_thread_worker;
  throw usage_error(std::string("coop: ") + what +
                    " must be called on a coop runtime thread (inside coop::run or coop::runtime)");
}

worker::worker(const run_options& opts)
    : stacks(std::make_shared<stack_pool>(opts.stack_size, opts.stack_guard_size)), options(with_environment(opts)),
      delay_report_ticks(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(options.scheduling_delay_threshold).count())) {}

worker::~worker() = default;

void worker::attach() {
  if (this_thread_worker) throw usage_error("coop: this thread already runs a coop runtime (nested coop::run?)");
  boost::fibers::use_scheduling_algorithm<scheduler>(*this);
  this_thread_worker = this;
  current_context = boost::fibers::context::active();
  current_known = true;
  thread = ::pthread_self();
  install_overflow_handler();
  watch_worker(*this);
  admin = hold_admin_endpoint(options.admin_socket);
}

void worker::adopt(fiber_state& fs) noexcept {
  static std::atomic<std::uint64_t> last_id{0};
  fs.id = last_id.fetch_add(1, std::memory_order_relaxed) + 1;
  std::lock_guard lk(registry_mutex);
  fs.registered = true;
  fs.registry_next = fibers;
  if (fibers) fibers->registry_prev = &fs;
  fibers = &fs;
  ++fiber_count;
}

void worker::forget(fiber_state& fs) noexcept {
  std::lock_guard lk(registry_mutex);
  if (registry_cursor == &fs) registry_cursor = fs.registry_next;
  if (trace_cursor == &fs) trace_cursor = fs.registry_next;
  if (fs.registry_prev)
    fs.registry_prev->registry_next = fs.registry_next;
  else
    fibers = fs.registry_next;
  if (fs.registry_next) fs.registry_next->registry_prev = fs.registry_prev;
  fs.registered = false;
  --fiber_count;
}

void worker::wait_and_detach(bool until_stopped) {
  until_stopped_ = until_stopped;
  static const wait_info info{wait_kind::other, "runtime end"};
  // The main context waits through park like every fiber; nothing interrupts it.
  while (live_fibers != 0 || (until_stopped_ && !stop_requested_)) {
    wait_context& wc = current_wait_context();
    spinlock unused; // every party runs on this thread
    spinlock_lock lk(unused);
    flag_site site;
    main_waiting_ = &site;
    boost::system::error_code ignored;
    shield s;
    park(wc, lk, site, info, no_deadline, ignored);
    main_waiting_ = nullptr;
  }
  // Let the dispatcher release the contexts of fibers that just ended, so
  // their stacks go back to the pool while this worker still exists.
  yield_now();
  admin.reset();
  unwatch_worker(*this);
  detaching = true;
  current_known = false;
  boost::fibers::use_scheduling_algorithm<boost::fibers::algo::round_robin>();
  this_thread_worker = nullptr;
  remove_overflow_stack();
}

void worker::request_stop() {
  boost::asio::post(io, [this] {
    stop_requested_ = true;
    wake_main_if_done();
  });
}

void worker::note_delay(std::uint64_t delay, std::uint64_t id) noexcept {
  delays_over.store(delays_over.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (delay <= worst_delay.load(std::memory_order_relaxed)) return;
  worst_delay_fiber.store(id, std::memory_order_relaxed);
  worst_delay.store(delay, std::memory_order_relaxed);
}

void worker::fiber_finished() noexcept {
  --live_fibers;
  counters.finished.add();
  wake_main_if_done();
}

void worker::wake_main_if_done() noexcept {
  if (live_fibers != 0 || (until_stopped_ && !stop_requested_)) return;
  if (auto* site = std::exchange(main_waiting_, nullptr)) site->complete();
}

} // namespace coop::detail
