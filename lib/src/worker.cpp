#include <coop/detail/scheduler.hpp>
#include <coop/detail/worker.hpp>
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

worker::worker(const worker_options& opts) : stacks(std::make_shared<stack_pool>(opts.stack_size)) {}

worker::~worker() = default;

void worker::attach() {
  if (this_thread_worker) throw usage_error("coop: this thread already runs a coop runtime (nested coop::run?)");
  boost::fibers::use_scheduling_algorithm<scheduler>(*this);
  this_thread_worker = this;
  install_overflow_handler();
}

void worker::wait_and_detach(bool until_stopped) {
  until_stopped_ = until_stopped;
  static const wait_info info{"runtime end"};
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
  boost::this_fiber::yield();
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

void worker::fiber_finished() noexcept {
  --live_fibers;
  wake_main_if_done();
}

void worker::wake_main_if_done() noexcept {
  if (live_fibers != 0 || (until_stopped_ && !stop_requested_)) return;
  if (auto* site = std::exchange(main_waiting_, nullptr)) site->complete();
}

} // namespace coop::detail
