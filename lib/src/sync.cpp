// The synchronisation primitives: event, semaphore, mutex, wait_group and
// async_result's common part. Each is a spinlock, a state and a FIFO
// wait_queue; every wait goes through detail::sync_wait (the entry check,
// then complete at once or park). A completer pops a waiter and wakes it with
// the lock held, so what it hands over (a semaphore unit, the mutex) is
// either taken by that waiter or, if the waiter withdrew first, never given.
#include <coop/async_result.hpp>
#include <coop/event.hpp>
#include <coop/mutex.hpp>
#include <coop/semaphore.hpp>
#include <coop/wait_group.hpp>

#include <string>

namespace coop {

// --- event ---------------------------------------------------------------------------

void event::set() noexcept {
  detail::spinlock_lock lk(lock_);
  set_ = true;
  waiters_.wake_all();
}

void event::clear() noexcept {
  detail::spinlock_lock lk(lock_);
  set_ = false;
}

bool event::is_set() const noexcept {
  detail::spinlock_lock lk(lock_);
  return set_;
}

detail::park_result event::wait_impl(detail::steady_time deadline, boost::system::error_code& ec) {
  const detail::wait_info info{"event wait", this, -1, true};
  detail::waiter w;
  return detail::sync_wait(lock_, waiters_, w, info, deadline, ec, [&] { return set_; });
}

void event::wait(boost::system::error_code& ec) {
  wait_impl(detail::no_deadline, ec);
}

void event::wait() {
  boost::system::error_code ec;
  wait(ec);
  throw_on_error(ec, "coop::event::wait");
}

bool event::wait_until(std::chrono::steady_clock::time_point deadline, boost::system::error_code& ec) {
  return wait_impl(deadline, ec) == detail::park_result::completed;
}

bool event::wait_until(std::chrono::steady_clock::time_point deadline) {
  boost::system::error_code ec;
  auto r = wait_impl(deadline, ec);
  return detail::timed_outcome(r, ec, "coop::event::wait_until");
}

// --- semaphore -----------------------------------------------------------------------

detail::park_result semaphore::acquire_impl(detail::steady_time deadline, boost::system::error_code& ec) {
  const detail::wait_info info{"semaphore acquire", this, -1, true};
  detail::waiter w; // completed = a release handed it a unit
  return detail::sync_wait(lock_, waiters_, w, info, deadline, ec, [&] {
    if (count_ == 0) return false;
    --count_;
    return true;
  });
}

void semaphore::acquire(boost::system::error_code& ec) {
  acquire_impl(detail::no_deadline, ec);
}

void semaphore::acquire() {
  boost::system::error_code ec;
  acquire(ec);
  throw_on_error(ec, "coop::semaphore::acquire");
}

bool semaphore::try_acquire() noexcept {
  detail::spinlock_lock lk(lock_);
  if (count_ == 0) return false;
  --count_;
  return true;
}

bool semaphore::acquire_until(std::chrono::steady_clock::time_point deadline, boost::system::error_code& ec) {
  return acquire_impl(deadline, ec) == detail::park_result::completed;
}

bool semaphore::acquire_until(std::chrono::steady_clock::time_point deadline) {
  boost::system::error_code ec;
  auto r = acquire_impl(deadline, ec);
  return detail::timed_outcome(r, ec, "coop::semaphore::acquire_until");
}

void semaphore::release(std::size_t n) noexcept {
  detail::spinlock_lock lk(lock_);
  for (; n > 0; --n) {
    if (detail::waiter* w = waiters_.pop())
      w->wake(); // the unit goes to the longest waiter, never through count_
    else
      break;
  }
  count_ += n;
}

std::size_t semaphore::available() const noexcept {
  detail::spinlock_lock lk(lock_);
  return count_;
}

// --- mutex ---------------------------------------------------------------------------

detail::park_result mutex::lock_impl(detail::steady_time deadline, boost::system::error_code& ec) {
  const detail::wait_info info{"mutex lock", this, -1, true};
  detail::wait_context& self = detail::current_wait_context();
  detail::waiter w;
  w.payload = &self; // the new holder, set by unlock() when it hands over
  return detail::sync_wait(lock_, waiters_, w, info, deadline, ec, [&] {
    if (owner_ == &self)
      throw usage_error("coop::mutex::lock: the calling fiber (or thread) already holds this mutex "
                        "(coop::mutex is not recursive)");
    if (owner_) return false;
    owner_ = &self;
    return true;
  });
}

void mutex::lock(boost::system::error_code& ec) {
  lock_impl(detail::no_deadline, ec);
}

void mutex::lock() {
  boost::system::error_code ec;
  lock(ec);
  throw_on_error(ec, "coop::mutex::lock");
}

bool mutex::try_lock() noexcept {
  detail::wait_context& self = detail::current_wait_context();
  detail::spinlock_lock lk(lock_);
  if (owner_) return false;
  owner_ = &self;
  return true;
}

bool mutex::try_lock_until(std::chrono::steady_clock::time_point deadline, boost::system::error_code& ec) {
  return lock_impl(deadline, ec) == detail::park_result::completed;
}

bool mutex::try_lock_until(std::chrono::steady_clock::time_point deadline) {
  boost::system::error_code ec;
  auto r = lock_impl(deadline, ec);
  return detail::timed_outcome(r, ec, "coop::mutex::try_lock_until");
}

void mutex::unlock() {
  const detail::wait_context* self = &detail::current_wait_context();
  detail::spinlock_lock lk(lock_);
  if (!owner_) throw usage_error("coop::mutex::unlock: the mutex is not locked");
  if (owner_ != self) throw usage_error("coop::mutex::unlock: the calling fiber (or thread) does not hold the mutex");
  if (detail::waiter* w = waiters_.pop()) {
    owner_ = static_cast<const detail::wait_context*>(w->payload); // handed over, never free
    w->wake();
  } else {
    owner_ = nullptr;
  }
}

// --- wait_group ----------------------------------------------------------------------

void wait_group::add(std::ptrdiff_t n) {
  detail::spinlock_lock lk(lock_);
  if (n < 0 && count_ < -n)
    throw usage_error("coop::wait_group: done() or add(" + std::to_string(n) + ") would bring the counter (" +
                      std::to_string(count_) + ") below zero");
  count_ += n;
  if (count_ == 0) waiters_.wake_all();
}

void wait_group::done() {
  add(-1);
}

std::ptrdiff_t wait_group::count() const noexcept {
  detail::spinlock_lock lk(lock_);
  return count_;
}

detail::park_result wait_group::wait_impl(detail::steady_time deadline, boost::system::error_code& ec) {
  const detail::wait_info info{"wait_group wait", this, -1, true};
  detail::waiter w;
  return detail::sync_wait(lock_, waiters_, w, info, deadline, ec, [&] { return count_ == 0; });
}

void wait_group::wait(boost::system::error_code& ec) {
  wait_impl(detail::no_deadline, ec);
}

void wait_group::wait() {
  boost::system::error_code ec;
  wait(ec);
  throw_on_error(ec, "coop::wait_group::wait");
}

bool wait_group::wait_until(std::chrono::steady_clock::time_point deadline, boost::system::error_code& ec) {
  return wait_impl(deadline, ec) == detail::park_result::completed;
}

bool wait_group::wait_until(std::chrono::steady_clock::time_point deadline) {
  boost::system::error_code ec;
  auto r = wait_impl(deadline, ec);
  return detail::timed_outcome(r, ec, "coop::wait_group::wait_until");
}

// --- async_result --------------------------------------------------------------------

namespace detail {

bool async_result_base::ready() const noexcept {
  spinlock_lock lk(lock_);
  return state_ == state::ready;
}

void async_result_base::begin_set(const char* what) {
  spinlock_lock lk(lock_);
  if (state_ != state::empty)
    throw usage_error(std::string(what) + ": the result was already set (an async_result is set once)");
  state_ = state::setting;
}

void async_result_base::abandon_set() noexcept {
  spinlock_lock lk(lock_);
  state_ = state::empty;
}

void async_result_base::finish_set(std::exception_ptr error) noexcept {
  spinlock_lock lk(lock_);
  error_ = std::move(error);
  state_ = state::ready;
  waiters_.wake_all();
}

void async_result_base::set_exception(std::exception_ptr error) {
  if (!error) throw usage_error("coop::async_result::set_exception: null exception_ptr");
  begin_set("coop::async_result::set_exception");
  finish_set(std::move(error));
}

void async_result_base::rethrow_error() const {
  // Called after a completed wait: the lock that published the result ordered
  // error_ before us, and nothing writes it again.
  if (error_) std::rethrow_exception(error_);
}

park_result async_result_base::wait_impl(steady_time deadline, boost::system::error_code& ec) {
  const wait_info info{"async_result wait", this};
  waiter w;
  return sync_wait(lock_, waiters_, w, info, deadline, ec, [&] { return state_ == state::ready; });
}

void async_result_base::wait(boost::system::error_code& ec) {
  wait_impl(no_deadline, ec);
}

void async_result_base::wait() {
  boost::system::error_code ec;
  wait(ec);
  throw_on_error(ec, "coop::async_result::wait");
}

bool async_result_base::wait_until(std::chrono::steady_clock::time_point deadline, boost::system::error_code& ec) {
  return wait_impl(deadline, ec) == park_result::completed;
}

bool async_result_base::wait_until(std::chrono::steady_clock::time_point deadline) {
  boost::system::error_code ec;
  auto r = wait_impl(deadline, ec);
  return timed_outcome(r, ec, "coop::async_result::wait_until");
}

} // namespace detail
} // namespace coop
