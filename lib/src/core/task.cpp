#include "core/worker.hpp"
#include <coop/detail/sync_wait.hpp>
#include <coop/task.hpp>
#include <coop/timeout.hpp>

#include <boost/asio/post.hpp>
#include <boost/fiber/context.hpp>
#include <boost/fiber/fiber.hpp>

#include <iostream>

namespace coop::detail {

namespace {
/// What a coop fiber runs: the task's function, then the bookkeeping of its end.
struct fiber_main {
  worker* w;
  std::shared_ptr<task_base> task;
  void operator()() {
    task->start();
    task.reset();
    w->fiber_finished();
  }
};
// Boost.Fiber places its context record for the fiber (a worker_context) at
// the top of the stack it is given, aligned down to 256 bytes: the fiber's
// state goes in the room that alignment leaves unused above it.
using fiber_context = boost::fibers::worker_context<fiber_main>;
constexpr std::size_t context_slack = (sizeof(fiber_context) + 255) / 256 * 256 - sizeof(fiber_context);
static_assert(fiber_state_room <= context_slack,
              "coop::detail::fiber_state has outgrown the room Boost.Fiber's context leaves at the top of a stack: "
              "every parked fiber would take 256 more bytes of its stack");
} // namespace

void launch_fiber(worker& w, std::shared_ptr<task_base> st) {
  boost::context::stack_context stack = w.stacks->allocate();
  auto* fs = new (static_cast<char*>(stack.sp) - fiber_state_room) fiber_state(nullptr);
  fs->on_stack = true;
  fs->owner = &w;
  fs->task = st.get();
  fs->stack_canary = w.stacks->canary_of(stack);
  fs->stack_size = static_cast<std::uint32_t>(stack.size);
  st->bind(w, fs);
  try {
    boost::fibers::fiber f(boost::fibers::launch::post, static_cast<boost::fibers::fiber_properties*>(fs),
                           std::allocator_arg, reserved_stack(w.stacks, stack, fiber_state_room),
                           fiber_main{&w, std::move(st)});
    f.detach();
  } catch (...) {
    // Nothing in Boost.Fiber 1.81 throws once it has the stack (the context
    // is placed on it); before that, the stack is still ours.
    fs->~fiber_state();
    w.stacks->deallocate(stack);
    throw;
  }
  w.adopt(*fs); // the fiber's context owns its properties now
  w.fiber_started();
}

task_base::~task_base() {
  if (!error_ || observed_) return;
  try {
    std::rethrow_exception(error_);
  } catch (const cancelled&) {
    // the normal end of a cancelled fiber
  } catch (const std::exception& e) {
    std::cerr << "coop: a fiber ended with an exception nobody retrieved: " << e.what() << std::endl;
  } catch (...) {
    std::cerr << "coop: a fiber ended with a non-standard exception nobody retrieved" << std::endl;
  }
}

park_result task_base::wait(boost::system::error_code& ec, steady_time deadline) {
  if (fiber_state* self = current_fiber_state(); self && self->task == this)
    throw usage_error("coop::task::join: a fiber cannot wait for itself");
  const wait_info info{wait_kind::join, "join", this, -1, true};
  waiter w;
  return sync_wait(lock_, waiters_, w, info, deadline, ec, [&] { return done_; });
}

bool task_base::done() const noexcept {
  spinlock_lock lk(lock_);
  return done_;
}

void task_base::finish(std::exception_ptr error) noexcept {
  // On the fiber, its function done: its fiber_local values end with it,
  // before anyone joining it resumes.
  if (fs_) fs_->locals.clear();
  spinlock_lock lk(lock_);
  error_ = std::move(error);
  done_ = true;
  fs_ = nullptr;
  waiters_.wake_all();
}

void task_base::cancel(std::shared_ptr<task_base> self) {
  spinlock_lock lk(lock_);
  if (done_) return;
  if (current_worker() == owner_ && fs_) {
    // Same thread, fiber launched: it cannot finish while we run.
    lk.unlock();
    cancel_here();
  } else {
    // The fiber's state belongs to its thread (and may not exist yet: a
    // spawn_on whose launch is still queued there): deliver the request on
    // that thread, after the launch. Posting under the lock keeps the worker
    // alive (the fiber has not finished).
    boost::asio::post(owner_->io, [self = std::move(self)] { self->cancel_here(); });
  }
}

void task_base::cancel_here() noexcept {
  if (fs_) fs_->request_cancel(); // null once finished: nothing to do
}

void task_base::drop(std::shared_ptr<task_base> self) noexcept {
  if (self->done()) return;
  // A runtime thread's scheduler context (running Asio handlers) must not
  // park: it cancels and lets the fiber end on its own.
  const bool can_wait =
      !(current_worker() && boost::fibers::context::active()->is_context(boost::fibers::type::dispatcher_context));
  // Its own handle, destroyed by the fiber itself: waiting would never end.
  if (fiber_state* me = can_wait ? current_fiber_state() : nullptr; me && me->task == self.get()) return;
  try {
    self->cancel(self);
  } catch (const std::exception& e) { // posting the request to another thread failed (memory)
    std::cerr << "coop: a task handle was dropped and its fiber could not be cancelled (" << e.what()
              << "); the fiber runs on, detached" << std::endl;
    return;
  }
  if (!can_wait) return;
  // The clean-up wait, as task_group's destructor: even a cancelled fiber or
  // one past its timeout waits here (the shield defers both), and nothing
  // else ends the wait (the fiber's own exception is not rethrown).
  shield s;
  boost::system::error_code ignored;
  self->wait(ignored);
}

void task_base::rethrow() {
  spinlock_lock lk(lock_);
  observed_ = true;
  if (error_) {
    auto e = error_;
    lk.unlock();
    std::rethrow_exception(e);
  }
}

} // namespace coop::detail
