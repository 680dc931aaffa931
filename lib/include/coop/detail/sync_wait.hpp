// coop/detail/sync_wait.hpp — the common shape of the waits of coop's
// synchronisation primitives (event, semaphore, mutex, wait_group,
// async_result): the entry check, then the lock, then complete at once or
// queue and park. Nothing here suspends by itself; `wait_queue::wait` parks.
#pragma once

#include <coop/detail/wait_queue.hpp>
#include <coop/error.hpp>

#include <chrono>

namespace coop::detail {

/// Passes the entry check, takes `lock`, and calls `try_now()` under it: when
/// that returns true the call completed without waiting; otherwise queues `w`
/// on `q` and parks until a completer pops it, an interruption is due, or
/// `deadline` passes. `try_now` may throw (misuse); the lock is then released.
template <class TryNow>
park_result sync_wait(spinlock& lock, wait_queue& q, waiter& w, const wait_info& info, steady_time deadline,
                      boost::system::error_code& ec, TryNow&& try_now) {
  if (current_wait_context().checkpoint(ec)) return park_result::interrupted;
  spinlock_lock lk(lock);
  if (try_now()) return park_result::completed;
  return q.wait(lk, w, info, ec, deadline);
}

/// The throwing form of a timed wait: true when it completed, false when its
/// own deadline passed; an interruption (in `r`'s `ec`) throws.
inline bool timed_outcome(park_result r, const boost::system::error_code& ec, const char* what) {
  throw_on_error(ec, what);
  return r == park_result::completed;
}

} // namespace coop::detail
