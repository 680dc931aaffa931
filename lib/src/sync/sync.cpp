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

#include <boost/fiber/context.hpp>
#include <boost/fiber/scheduler.hpp>

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
  const detail::wait_info info{wait_kind::sync, "event wait", this, -1, true};
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
  const detail::wait_info info{wait_kind::sync, "semaphore acquire", this, -1, true};
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
//
// state_ holds the holder (its wait context's address) and the `queued` bit.
// Without the bit, lock is a compare-and-swap from 0 and unlock one back to
// 0. Callers that must wait set the bit under lock_ before they queue; while
// it is set only code under lock_ changes state_, so unlock's slow path can
// hand the mutex straight to the first waiter (it is never free in between:
// FIFO, no barging past a queued waiter).

namespace {

/// Identifies the calling thread (for `holder_thread_`).
const void* this_thread_id() noexcept {
  static thread_local const char marker = 0;
  return &marker;
}

/// `holder_thread_` of a mutex handed to a waiter that has not run yet.
const char handed_over = 0;

void spin_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

/// Whether the calling thread has nothing else to run: a spin then keeps no
/// fiber from running (Go's mutex spins only with an empty run queue too).
bool nothing_else_ready() noexcept {
  return !boost::fibers::context::active()->get_scheduler()->has_ready_fibers();
}

/// How many times a caller checks a mutex held on another thread before it
/// queues (each check after a pause instruction: 100 are about 1 to 5 us).
constexpr int mutex_spins = 100;

[[noreturn]] void already_held() {
  throw usage_error("coop::mutex::lock: the calling fiber (or thread) already holds this mutex "
                    "(coop::mutex is not recursive)");
}

} // namespace

detail::park_result mutex::lock_impl(detail::steady_time deadline, boost::system::error_code& ec) {
  detail::wait_context& self = detail::current_wait_context();
  if (self.checkpoint(ec)) return detail::park_result::interrupted;
  std::uintptr_t seen = 0;
  if (state_.compare_exchange_strong(seen, reinterpret_cast<std::uintptr_t>(&self), std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
    holder_thread_.store(this_thread_id(), std::memory_order_relaxed);
    return detail::park_result::completed;
  }
  return lock_slow(self, seen, deadline, ec);
}

detail::park_result mutex::lock_slow(detail::wait_context& self, std::uintptr_t seen, detail::steady_time deadline,
                                     boost::system::error_code& ec) {
  const auto me = reinterpret_cast<std::uintptr_t>(&self);
  if ((seen & ~queued) == me) already_held();
  auto take = [&](std::uintptr_t& s) {
    if (!state_.compare_exchange_weak(s, me, std::memory_order_acquire, std::memory_order_relaxed)) return false;
    holder_thread_.store(this_thread_id(), std::memory_order_relaxed);
    return true;
  };
  // A holder running on another thread may release it any moment: a short
  // spin costs less than queueing and a wake-up across threads. Pointless
  // when callers already queue (they get it first), when the holder is on
  // this thread (it cannot run while we spin) or was just handed the mutex
  // (its thread is still waking up); and while other fibers of this thread
  // are ready, they had better run instead.
  const void* holder_thread = holder_thread_.load(std::memory_order_relaxed);
  if (!(seen & queued) && holder_thread != this_thread_id() && holder_thread != &handed_over && nothing_else_ready()) {
    for (int i = 0; i < mutex_spins; ++i) {
      spin_pause();
      std::uintptr_t s = state_.load(std::memory_order_relaxed);
      if (s == 0 && take(s)) return detail::park_result::completed;
      if (s & queued) break;
    }
  }
  const detail::wait_info info{wait_kind::sync, "mutex lock", this, -1, true};
  detail::waiter w;
  w.payload = &self; // the new holder, set by unlock() when it hands over
  detail::spinlock_lock lk(lock_);
  std::uintptr_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    if (s == 0) {
      if (take(s)) return detail::park_result::completed;
    } else if (s & queued) {
      break;
    } else if (state_.compare_exchange_weak(s, s | queued, std::memory_order_relaxed)) {
      break;
    }
  }
  auto r = waiters_.wait(lk, w, info, ec, deadline);
  if (r == detail::park_result::completed)
    holder_thread_.store(this_thread_id(), std::memory_order_relaxed);
  else
    left_queue();
  return r;
}

void mutex::left_queue() noexcept {
  detail::spinlock_lock lk(lock_);
  std::uintptr_t s = state_.load(std::memory_order_relaxed);
  // While `queued` is set, state_ changes only under lock_: a plain store is exact.
  if ((s & queued) && waiters_.empty()) state_.store(s & ~queued, std::memory_order_relaxed);
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
  std::uintptr_t seen = 0;
  if (!state_.compare_exchange_strong(seen, reinterpret_cast<std::uintptr_t>(&detail::current_wait_context()),
                                      std::memory_order_acquire, std::memory_order_relaxed))
    return false;
  holder_thread_.store(this_thread_id(), std::memory_order_relaxed);
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
  const auto me = reinterpret_cast<std::uintptr_t>(&detail::current_wait_context());
  std::uintptr_t seen = me;
  if (state_.compare_exchange_strong(seen, 0, std::memory_order_release, std::memory_order_relaxed)) return;
  unlock_slow(me, seen);
}

void mutex::unlock_slow(std::uintptr_t self, std::uintptr_t seen) {
  if (seen == 0) throw usage_error("coop::mutex::unlock: the mutex is not locked");
  if ((seen & ~queued) != self)
    throw usage_error("coop::mutex::unlock: the calling fiber (or thread) does not hold the mutex");
  // `queued` is set: nobody else changes state_ while we hold lock_.
  detail::spinlock_lock lk(lock_);
  if (detail::waiter* w = waiters_.pop()) {
    // Handed over, never free: the waiter holds it when it wakes.
    holder_thread_.store(&handed_over, std::memory_order_relaxed);
    state_.store(reinterpret_cast<std::uintptr_t>(w->payload) | (waiters_.empty() ? 0 : queued),
                 std::memory_order_release);
    w->wake();
  } else {
    state_.store(0, std::memory_order_release); // the waiters left (timed out, cancelled)
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
  const detail::wait_info info{wait_kind::sync, "wait_group wait", this, -1, true};
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
  const wait_info info{wait_kind::sync, "async_result wait", this};
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
