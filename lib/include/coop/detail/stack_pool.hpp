// coop/detail/stack_pool.hpp — per-thread pool of fiber stacks.
#pragma once

#include <boost/context/stack_context.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

namespace coop::detail {

/// Hands out fiber stacks from `mmap` (an idle fiber costs only the pages it
/// touched) and caches freed ones so a new fiber starts on warm memory.
///
/// Every stack has an inaccessible guard page below it, in every build type,
/// so an overflow faults at once instead of corrupting a neighbour; a SIGSEGV
/// handler on an alternate signal stack (`install_overflow_handler`) turns
/// such a fault into a one-line message naming the fiber and the stack size.
/// A guarded stack costs two memory mappings and Linux allows
/// `vm.max_map_count` (65,530 by default) per process, so past a budget of a
/// quarter of that, further stacks come without a guard page (after one
/// warning on stderr); unguarded anonymous mappings merge and cost nothing.
/// Stacks are registered with valgrind when the program runs under it.
///
/// Not thread-safe: one pool per runtime thread.
class stack_pool {
public:
  explicit stack_pool(std::size_t stack_size, std::size_t max_cached = 1024);
  ~stack_pool();
  stack_pool(const stack_pool&) = delete;
  stack_pool& operator=(const stack_pool&) = delete;

  boost::context::stack_context allocate();
  /// Keeps the stack for reuse (up to `max_cached`); a stack beyond that is
  /// unmapped later, by `trim`: when thousands of fibers end at once (every
  /// client of a server leaving together), unmapping all their stacks in the
  /// one dispatcher pass that frees them would stall the thread for about
  /// 10 µs a stack (100 ms for 10,000 here).
  void deallocate(boost::context::stack_context& sctx) noexcept;
  std::size_t stack_size() const noexcept { return size_; }

  /// Stacks waiting to be unmapped (`trim`).
  bool has_excess() const noexcept { return !excess_.empty(); }
  /// Unmaps up to `n` of the stacks waiting for it. The scheduler calls it a
  /// batch at a time (`trim_batch`) between fibers and before it sleeps.
  void trim(std::size_t n) noexcept;
  static constexpr std::size_t trim_batch = 32;

  /// True when `addr` lies in the guard page of one of this pool's stacks.
  /// Called from the SIGSEGV handler on the pool's own thread.
  bool in_guard_page(const void* addr) const noexcept;

private:
  struct mapping {
    std::size_t length;   ///< bytes mapped, guard page included
    bool guarded;         ///< the lowest page is PROT_NONE
    unsigned valgrind_id; ///< VALGRIND_STACK_REGISTER's id, or 0
  };
  void release(boost::context::stack_context& sctx) noexcept;

  std::size_t size_;
  std::size_t max_cached_;
  std::vector<boost::context::stack_context> free_;
  std::vector<boost::context::stack_context> excess_; ///< beyond max_cached_: to unmap (still usable)
  std::map<std::uintptr_t, mapping> mappings_;        ///< by the mapping's lowest address
};

/// Installs (once per process) the SIGSEGV handler that reports fiber stack
/// overflows, and gives the calling thread an alternate signal stack for it
/// (kept until `remove_overflow_stack`). Other faults keep their previous
/// handling.
void install_overflow_handler();
void remove_overflow_stack() noexcept;

/// The stack allocator handed to Boost.Fiber. It shares ownership of the pool
/// because a finished fiber's context (and so its stack) may be released after
/// the runtime thread that ran it has stopped.
class pool_allocator {
public:
  explicit pool_allocator(std::shared_ptr<stack_pool> pool) noexcept : pool_(std::move(pool)) {}
  boost::context::stack_context allocate() { return pool_->allocate(); }
  void deallocate(boost::context::stack_context& sctx) noexcept { pool_->deallocate(sctx); }

private:
  std::shared_ptr<stack_pool> pool_;
};

} // namespace coop::detail
