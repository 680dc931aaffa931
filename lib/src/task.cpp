#include <coop/task.hpp>

#include <boost/asio/post.hpp>

#include <iostream>

namespace coop::detail {

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

boost::system::error_code task_base::wait() noexcept {
  spinlock_lock lk(lock_);
  if (done_) return {};
  waiter w;
  return waiters_.wait(lk, w);
}

bool task_base::done() const noexcept {
  spinlock_lock lk(lock_);
  return done_;
}

void task_base::finish(std::exception_ptr error) noexcept {
  spinlock_lock lk(lock_);
  error_ = std::move(error);
  done_ = true;
  fs_ = nullptr;
  while (waiter* w = waiters_.pop())
    w->wake();
}

void task_base::cancel(std::shared_ptr<task_base> self) {
  spinlock_lock lk(lock_);
  if (done_) return;
  if (current_worker() == owner_) {
    // Same thread: the fiber cannot finish while we run.
    lk.unlock();
    cancel_here();
  } else {
    // The fiber's state belongs to its thread: deliver the request there.
    // Posting under the lock keeps the worker alive (the fiber has not finished).
    boost::asio::post(owner_->io, [self = std::move(self)] { self->cancel_here(); });
  }
}

void task_base::cancel_here() noexcept {
  cancel_pending_ = true; // a fiber not launched yet never runs
  if (!fs_) return;
  fs_->cancel_requested = true;
  fs_->interrupt();
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
