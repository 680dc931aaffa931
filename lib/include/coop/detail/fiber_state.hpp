// coop/detail/fiber_state.hpp — what coop keeps for every fiber it schedules.
#pragma once

#include <coop/error.hpp>

#include <boost/asio/cancellation_signal.hpp>
#include <boost/fiber/context.hpp>
#include <boost/fiber/properties.hpp>

#include <chrono>

namespace coop::detail {

struct worker;
class task_base;

/// Something a parked fiber can be pulled out of early (a pending Asio
/// operation, a place in a wait queue). Called on the fiber's own thread.
class interrupter {
public:
  virtual void interrupt() noexcept = 0;

protected:
  ~interrupter() = default;
};

/// One entry of a fiber's stack of `coop::timeout` scopes.
struct timeout_node {
  timeout_node* outer = nullptr;
  std::chrono::steady_clock::time_point deadline{};
  bool expired = false; ///< set by the timer, or found when a blocking call looks
  bool disarmed = false;
  int shield_depth = 0; ///< the fiber's shield depth when the scope began
};

/// Per-fiber state, attached to every fiber our scheduler runs (as Boost.Fiber
/// properties). Touched only on the fiber's own thread.
class fiber_state final : public boost::fibers::fiber_properties {
public:
  explicit fiber_state(boost::fibers::context* ctx) noexcept : fiber_properties(ctx) {}

  worker* owner = nullptr;   ///< the runtime thread the fiber lives on
  task_base* task = nullptr; ///< the task control block, for spawned fibers
  bool cancel_requested = false;
  int shield_depth = 0;
  timeout_node* timeouts = nullptr;
  interrupter* parked = nullptr; ///< set while the fiber waits in a blocking call
  /// Reused for every Asio operation of this fiber (one at a time), so that
  /// per-operation cancellation costs no allocation per call.
  boost::asio::cancellation_signal signal;

  /// The error a blocking call must fail with now, or success.
  boost::system::error_code pending_interrupt() const noexcept {
    if (cancel_requested && shield_depth == 0) return make_error_code(errc::cancelled);
    if (!timeouts) return {};
    // Look at the clock too: the timer's handler may not have run yet (a fiber
    // that computed past its deadline without blocking).
    auto now = std::chrono::steady_clock::now();
    for (timeout_node* t = timeouts; t; t = t->outer) {
      if (!t->expired && !t->disarmed && now >= t->deadline) t->expired = true;
      if (t->expired && t->shield_depth >= shield_depth) return make_error_code(errc::timed_out);
    }
    return {};
  }

  /// Pulls the fiber out of its current wait, if it waits in an interruptible one.
  void interrupt() noexcept {
    if (parked) parked->interrupt();
  }
};

/// The coop state of the running fiber, or nullptr when the calling context is
/// not a fiber of a coop runtime (a plain thread, a foreign scheduler).
fiber_state* current_fiber_state() noexcept;

/// Like current_fiber_state(), but throws `usage_error` naming `what`.
fiber_state& require_fiber(const char* what);

} // namespace coop::detail
