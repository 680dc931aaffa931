#include "core/worker.hpp"
#include <coop/detail/sync_wait.hpp>
#include <coop/task.hpp>
#include <coop/timeout.hpp>

#include <boost/asio/post.hpp>
#include <boost/fiber/context.hpp>
#include <boost/fiber/fiber.hpp>

#include <iostream>

namespace coop::detail {

void launch_fiber(worker& w, std::shared_ptr<task_base> st) {
  auto fs = std::make_unique<fiber_state>(nullptr);
  fs->owner = &w;
  fs->task = st.get();
  st->bind(w, fs.get());
  boost::fibers::fiber f(boost::fibers::launch::post, static_cast<boost::fibers::fiber_properties*>(fs.get()),
                         std::allocator_arg, pool_allocator(w.stacks), [&w, keep = std::move(st)]() mutable {
                           keep->start();
                           keep.reset();
                           w.fiber_finished();
                         });
  fs->stack_canary = w.stacks->last_canary(); // the stack the fiber's constructor just took
  fs->stack_top = w.stacks->last_stack().sp;
  fs->stack_size = w.stacks->last_stack().size;
  w.adopt(*fs.release()); // the fiber's context owns its properties now
  w.fiber_started();
  f.detach();
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
