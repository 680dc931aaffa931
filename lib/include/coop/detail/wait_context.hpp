// coop/detail/wait_context.hpp — what decides whether and why a blocking call
// is interrupted: one record per fiber and one per plain thread.
#pragma once

#include <coop/detail/deadline.hpp>
#include <coop/error.hpp>
#include <coop/metrics.hpp>

#include <boost/fiber/waker.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace coop::detail {

/// One entry of a context's chain of `coop::timeout` scopes (innermost first).
struct timeout_node {
  timeout_node* outer = nullptr;
  steady_time deadline{};
  std::chrono::nanoseconds duration{}; ///< from the scope's construction to its deadline
  int shield_depth = 0;                ///< the context's shield depth when the scope began
  bool expired = false;                ///< latched the first time a wait finds the deadline passed
  bool disarmed = false;               ///< `timeout::cancel()` was called
};

/// What a parked fiber or thread waits on, published while it waits (for
/// diagnostics such as a fiber dump). Points to static strings and objects
/// that outlive the wait.
struct wait_info {
  wait_kind kind = wait_kind::other; ///< for the metrics' fibers by wait
  const char* what = "";             ///< "channel pop", "read", "sleep", ...
  const void* object = nullptr;      ///< the channel, task, socket... waited on
  int fd = -1;                       ///< the descriptor, for socket waits
  /// Only another fiber of the runtime can end this wait (a channel, a lock,
  /// a join): what the deadlock report looks for. I/O, timers, signals and
  /// offloaded work are not.
  bool internal = false;
};

/// Monotonic time in nanoseconds from the coarse clock (a few nanoseconds
/// to read, millisecond resolution): when a wait began, for diagnostics.
std::int64_t coarse_now_ns() noexcept;

/// What a context waits on, copied out of its `wait_info` when the wait
/// begins, for readers on other threads (`coop::dump_fibers`, the deadlock
/// report). Written only by the owner thread; relaxed atomics, so a reader
/// may see a mix of two successive waits, never freed memory.
struct wait_snapshot {
  std::atomic<const char*> what{nullptr}; ///< null while not waiting
  std::atomic<const void*> object{nullptr};
  std::atomic<std::int64_t> since_ns{0};  ///< coarse_now_ns() when the wait began
  std::atomic<steady_time::rep> until{0}; ///< when a timer ends it (`no_deadline`: never)
  std::atomic<int> fd{-1};
  std::atomic<wait_kind> kind{wait_kind::other};
  std::atomic<bool> internal{false};
};

/// How an interruption reaches a parked context: by default it wakes it (the
/// context then withdraws its wait itself); an Asio operation is cancelled on
/// the spot instead (see `park`).
struct wait_interrupter {
  void (*fn)(void*) = nullptr;
  void* arg = nullptr;
  void operator()() const { fn(arg); }
};

/// The interruption state of one execution context: a fiber of a coop runtime
/// (part of its `fiber_state`) or a plain thread (thread-local). This is the
/// single place that implements coop's interruption rules (docs/runtime.md):
///
/// - a blocking call fails at entry, without waiting, when `pending_interrupt()`
///   is set (and a fiber first lets the other fibers of its thread run);
/// - a waiting call is woken by a cancel or an expired timeout only when that
///   interruption is due, i.e. not covered by a `coop::shield`;
/// - a woken wait reports exactly why it ended: its own completion (which
///   always wins, so nothing is lost), or `pending_interrupt()`.
///
/// Touched only by its own thread (cross-thread cancels are posted there).
class wait_context {
public:
  wait_context() noexcept = default;
  explicit wait_context(boost::fibers::context* self) noexcept : self_context(self) {}
  /// The Boost.Fiber context this record belongs to (a fiber's); null for a
  /// plain thread's, whose context `park` asks Boost.Fiber for.
  boost::fibers::context* const self_context = nullptr;
  timeout_node* timeouts = nullptr;
  int shield_depth = 0;          ///< live `coop::shield` scopes
  bool cancel_requested = false; ///< `task::cancel()` reached this fiber
  /// Set by `wake_to_trace`, cleared by `trace_wait`.
  bool trace_requested = false;
  /// The scope the last `timed_out` came from (for `timeout_error`).
  struct fired_scope {
    std::chrono::nanoseconds duration{-1};
    bool innermost = true;
  } last_fired;

  /// The interruption a blocking call must fail with now, or success.
  /// Cancellation first (unless shielded), then the innermost expired timeout
  /// that no shield covers (a timeout created inside a shield still applies).
  boost::system::error_code pending_interrupt() noexcept {
    if (cancel_requested && shield_depth == 0) return make_error_code(errc::cancelled);
    if (!timeouts) return {};
    return timeout_due();
  }

  /// The earliest deadline at which an unshielded timeout will interrupt a
  /// wait (`no_deadline` if none).
  steady_time interrupt_deadline() const noexcept {
    steady_time earliest = no_deadline;
    for (timeout_node* t = timeouts; t; t = t->outer)
      if (!t->disarmed && t->shield_depth >= shield_depth && t->deadline < earliest) earliest = t->deadline;
    return earliest;
  }

  /// The entry check of every blocking call: true (and `ec` set) when an
  /// interruption is due. A fiber then yields once, so that a loop retrying a
  /// failing call cannot starve the other fibers of its thread.
  bool checkpoint(boost::system::error_code& ec) noexcept {
    ec = pending_interrupt();
    if (!ec) return false;
    yield_after_failure();
    return true;
  }

  /// On the owner thread: marks the fiber cancelled and, when that is due
  /// now (no shield), interrupts its current wait.
  void request_cancel() noexcept {
    cancel_requested = true;
    if (parked_ && pending_interrupt()) (*parked_)();
  }

  /// Set by `park` while the context waits: what it waits on, until when a
  /// timer would end the wait, how an interruption reaches it (null while
  /// it must not be interrupted), and the waker that ends this suspension.
  /// `again`: the same wait goes on after a wake-up (its start stays).
  void enter_wait(const wait_info& info, steady_time until, const wait_interrupter* interruptible,
                  boost::fibers::waker* waker, bool again) noexcept {
    constexpr auto r = std::memory_order_relaxed;
    snapshot.kind.store(info.kind, r);
    snapshot.object.store(info.object, r);
    snapshot.fd.store(info.fd, r);
    snapshot.internal.store(info.internal, r);
    snapshot.until.store(until.time_since_epoch().count(), r);
    if (!again) snapshot.since_ns.store(coarse_now_ns(), r);
    snapshot.what.store(info.what, std::memory_order_release);
    parked_ = interruptible;
    parked_waker_ = waker;
  }
  void leave_wait() noexcept {
    snapshot.what.store(nullptr, std::memory_order_relaxed);
    parked_ = nullptr;
    parked_waker_ = nullptr;
  }

  /// Where a parked fiber waits in the program (`coop::run_options::admin_socket`'s
  /// /fibers): on its thread, the diagnostics wake it for a moment
  /// (`wake_to_trace`); `park` sees `trace_requested` when it resumes and
  /// records its own stack (`trace_wait`, lib/src/diagnostics/where.cpp)
  /// before it waits on. The wait itself is unaffected: waits already take
  /// wake-ups that end nothing. False when the context is not parked.
  bool wake_to_trace() noexcept {
    if (!parked_waker_) return false;
    trace_requested = true;
    parked_waker_->wake();
    return true;
  }
  void trace_wait() noexcept;

  /// What the context waits on now (see `enter_wait`); readable from any thread.
  wait_snapshot snapshot;

  /// Links `t` as the innermost timeout; `unlink` removes it wherever it is
  /// (scopes held in optionals may end out of order).
  void link(timeout_node& t) noexcept {
    t.outer = timeouts;
    t.shield_depth = shield_depth;
    timeouts = &t;
  }
  void unlink(timeout_node& t) noexcept {
    for (timeout_node** p = &timeouts; *p; p = &(*p)->outer)
      if (*p == &t) {
        *p = t.outer;
        return;
      }
  }

private:
  boost::system::error_code timeout_due() noexcept;
  void yield_after_failure() noexcept;

  const wait_interrupter* parked_ = nullptr;
  boost::fibers::waker* parked_waker_ = nullptr;
};

/// The wait context of the caller: its fiber's, or its plain thread's.
wait_context& current_wait_context() noexcept;

} // namespace coop::detail
