// coop/detail/fiber_state.hpp — what coop keeps for every fiber it schedules.
#pragma once

#include <coop/detail/fiber_locals.hpp>
#include <coop/detail/op_memory.hpp>
#include <coop/detail/wait_context.hpp>

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/fiber/context.hpp>
#include <boost/fiber/properties.hpp>

#include <cstdint>
#include <string>

namespace coop::detail {

struct worker;
class task_base;
struct where_record; // lib/src/diagnostics/where.hpp

/// Per-fiber state, attached to every fiber our scheduler runs (as Boost.Fiber
/// properties): its wait context (cancellation, shields, timeouts) and its
/// runtime thread. Touched only on the fiber's own thread, except what the
/// diagnostics read from other threads under the worker's registry lock
/// (`id`, `name`, `task`, the wait snapshot).
/// How many reads in a row a fiber may complete without waiting before it
/// yields, letting the other fibers of its thread and the reactor run (a
/// peer that always has data ready cannot monopolise the thread).
inline constexpr std::uint32_t direct_io_budget = 16;

/// Lets the other fibers of the calling runtime thread run: the calling
/// fiber goes to the back of the queue of fibers that yielded, behind every
/// fiber woken by I/O, a timer or another fiber (see `scheduler`).
void yield_now();

class fiber_state final : public boost::fibers::fiber_properties, public wait_context {
public:
  explicit fiber_state(boost::fibers::context* ctx) noexcept : fiber_properties(ctx), wait_context(ctx) {}
  ~fiber_state() override;

  worker* owner = nullptr;   ///< the runtime thread the fiber lives on
  task_base* task = nullptr; ///< the task control block, for spawned fibers
  /// Reused for every Asio operation of this fiber (one at a time), so that
  /// per-operation cancellation costs no allocation per call.
  boost::asio::cancellation_signal signal;
  /// The memory of its Asio operations, reused from one to the next.
  op_memory ops;
  /// I/O calls that completed without waiting since the scheduler last
  /// resumed the fiber (reset by `scheduler::pick_next`); see `direct_io_budget`.
  std::uint32_t direct_io_streak = 0;
  /// Set by `yield_now` just before the fiber yields: the scheduler then
  /// queues it behind the fibers that were woken (`scheduler::awakened`).
  bool yielded = false;
  /// `scheduler::ticks()` when the fiber last became ready; the scheduler
  /// measures the scheduling delay from it.
  std::uint64_t ready_since = 0;
  /// `coop::this_fiber::set_name`; empty (and unallocated) until named.
  /// Changed only under the worker's registry lock once registered.
  std::string name;
  /// Process-wide number of a fiber launched by coop (1, 2, ...); 0 for the
  /// contexts Boost.Fiber creates itself (a thread's main, the dispatcher).
  std::uint64_t id = 0;
  /// Links in the worker's registry of live fibers (`worker::adopt`).
  worker* registry = nullptr;
  fiber_state* registry_prev = nullptr;
  fiber_state* registry_next = nullptr;
  /// `coop::fiber_local` values; destroyed when the fiber's function has
  /// returned (`task_base::finish`), what remains with this state.
  fiber_locals locals;
  /// The canary below the fiber's stack when that has no guard region
  /// (`stack_pool::last_canary`, set by `launch_fiber`), else nullptr.
  std::uint64_t* stack_canary = nullptr;
  /// The fiber's stack (the top, and the usable size below it), for its
  /// high-water mark in the admin endpoint's /fibers.
  void* stack_top = nullptr;
  std::size_t stack_size = 0;
  /// Where it waited when the diagnostics last asked (`wake_to_trace`):
  /// made at the first such request, written under the registry lock.
  where_record* where = nullptr;
  /// The request `where` is to answer (diagnostics/where.cpp).
  std::uint64_t trace_generation = 0;
};

/// The coop state of the running fiber, or nullptr when the calling context is
/// not a fiber of a coop runtime (a plain thread, a foreign scheduler).
fiber_state* current_fiber_state() noexcept;

/// Like current_fiber_state(), but throws `usage_error` naming `what`.
fiber_state& require_fiber(const char* what);

/// The runtime thread of the caller; throws `usage_error` naming `what`
/// outside a runtime.
worker& require_worker(const char* what);

/// Throws `usage_error` (naming `what`) unless `ctx` is the io_context of
/// `fs`'s runtime thread: an I/O object is used only where it was made.
void require_own_io(const fiber_state& fs, const boost::asio::execution_context& ctx, const char* what);

} // namespace coop::detail
