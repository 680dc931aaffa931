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
#include <memory>
#include <new>
#include <string>
#include <string_view>

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

/// A fiber's name (`coop::this_fiber::set_name`): nothing is allocated until
/// it is named, and the state keeps only a pointer.
class fiber_name {
public:
  bool empty() const noexcept { return !text_; }
  const std::string& str() const noexcept { return text_ ? *text_ : none(); }
  /// An empty name frees the text.
  void assign(std::string_view name) {
    if (name.empty())
      text_.reset();
    else if (text_)
      text_->assign(name);
    else
      text_ = std::make_unique<std::string>(name);
  }

private:
  static const std::string& none() noexcept {
    static const std::string empty;
    return empty;
  }
  std::unique_ptr<std::string> text_;
};

class fiber_state final : public boost::fibers::fiber_properties, public wait_context {
public:
  explicit fiber_state(boost::fibers::context* ctx) noexcept : fiber_properties(ctx), wait_context(ctx) {}
  ~fiber_state() override;
  /// Boost.Fiber deletes a context's properties when the context ends: a
  /// state `launch_fiber` placed at the top of the fiber's stack (`on_stack`)
  /// is only destroyed, its memory going back with the stack just after; the
  /// others (a thread's main and dispatcher contexts) came from `new`.
  static void operator delete(fiber_state* self, std::destroying_delete_t) noexcept {
    const bool placed = self->on_stack;
    self->~fiber_state();
    if (!placed) ::operator delete(self);
  }

  /// The top of the fiber's stack, for its high-water mark in the admin
  /// endpoint's /fibers (nullptr for the contexts Boost.Fiber made).
  void* stack_top() const noexcept;

  worker* owner = nullptr;   ///< the runtime thread the fiber lives on
  task_base* task = nullptr; ///< the task control block, for spawned fibers
  /// Reused for every Asio operation of this fiber (one at a time), so that
  /// per-operation cancellation costs no allocation per call.
  boost::asio::cancellation_signal signal;
  /// The memory of its Asio operations, reused from one to the next.
  op_memory ops;
  /// `scheduler::ticks()` when the fiber last became ready; the scheduler
  /// measures the scheduling delay from it.
  std::uint64_t ready_since = 0;
  /// `coop::this_fiber::set_name`. Changed only under the worker's registry
  /// lock once registered.
  fiber_name name;
  /// Process-wide number of a fiber launched by coop (1, 2, ...); 0 for the
  /// contexts Boost.Fiber creates itself (a thread's main, the dispatcher).
  std::uint64_t id = 0;
  /// Links in the registry of live fibers of `owner` (`worker::adopt`).
  fiber_state* registry_prev = nullptr;
  fiber_state* registry_next = nullptr;
  /// `coop::fiber_local` values; destroyed when the fiber's function has
  /// returned (`task_base::finish`), what remains with this state.
  fiber_locals locals;
  /// The canary below the fiber's stack when that has no guard region
  /// (`stack_pool::canary_of`, set by `launch_fiber`), else nullptr.
  std::uint64_t* stack_canary = nullptr;
  /// Where it waited when the diagnostics last asked (`wake_to_trace`):
  /// made at the first such request, written under the registry lock.
  where_record* where = nullptr;
  /// The request `where` is to answer (diagnostics/where.cpp).
  std::uint64_t trace_generation = 0;
  /// I/O calls that completed without waiting since the scheduler last
  /// resumed the fiber (reset by `scheduler::pick_next`); see `direct_io_budget`.
  std::uint32_t direct_io_streak = 0;
  /// The usable size of the fiber's stack below `stack_top()`.
  std::uint32_t stack_size = 0;
  /// Set by `yield_now` just before the fiber yields: the scheduler then
  /// queues it behind the fibers that were woken (`scheduler::awakened`).
  bool yielded = false;
  /// Placed at the top of its fiber's stack by `launch_fiber`.
  bool on_stack = false;
  /// In its worker's registry of live fibers (`worker::adopt`).
  bool registered = false;
};

/// The bytes at the top of a fiber's stack where `launch_fiber` places its
/// state. It must fit in the room Boost.Fiber leaves free there anyway when
/// it aligns its own context record down to 256 bytes (lib/src/core/task.cpp
/// checks that at compile time): a parked fiber then keeps the one stack page
/// it had, and its state costs neither memory nor a heap block.
inline constexpr std::size_t fiber_state_room =
    (sizeof(fiber_state) + alignof(fiber_state) - 1) & ~(alignof(fiber_state) - 1);

inline void* fiber_state::stack_top() const noexcept {
  return on_stack ? const_cast<char*>(reinterpret_cast<const char*>(this)) + fiber_state_room : nullptr;
}

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
