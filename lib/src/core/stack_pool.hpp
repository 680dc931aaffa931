// coop/detail/stack_pool.hpp — per-thread pool of fiber stacks.
#pragma once

#include "core/counters.hpp"

#include <coop/detail/fiber_state.hpp>

#include <boost/context/stack_context.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

namespace coop::detail {

/// Canary below a fiber stack that has no guard region: `stack_canary_words`
/// words of a per-process random value at the stack's lowest addresses,
/// checked as the scheduler switches away from the fiber
/// (`check_stack_canary`, coop/detail/fiber_state.hpp) and when the fiber
/// faults.
inline constexpr std::size_t stack_canary_words = 8; // one cache line
std::uint64_t stack_canary_secret() noexcept;

inline bool stack_canary_intact(const std::uint64_t* canary) noexcept {
  const std::uint64_t secret = stack_canary_secret();
  std::uint64_t changed = 0;
  for (std::size_t i = 0; i < stack_canary_words; ++i)
    changed |= canary[i] ^ secret;
  return changed == 0;
}

/// Hands out fiber stacks from `mmap` (an idle fiber costs only the pages it
/// touched) and caches freed ones so a new fiber starts on warm memory.
///
/// Below every stack lies a guard region of `guard_size` bytes (64 KiB by
/// default, `run_options::stack_guard_size`), in every build type, so an
/// overflow faults at once instead of corrupting a neighbour; a SIGSEGV
/// handler on an alternate signal stack (`install_overflow_handler`) turns
/// such a fault into a one-line message naming the fiber and the stack size.
/// The region is made inaccessible with `MADV_GUARD_INSTALL` where the kernel
/// has it (Linux 6.13+: no extra memory mapping), else with `mprotect`, which
/// costs a second mapping per stack; Linux allows `vm.max_map_count` (65,530
/// by default) per process, so `mprotect` guards stop at a budget that leaves
/// a quarter of that (at most 16,384) to the rest of the program, and when
/// `mprotect` fails because the program's own mappings used them up. A stack
/// without guard gets a canary instead (`stack_canary_intact`), after one
/// warning on stderr; the unprotected region under it stays mapped as a
/// buffer, and such mappings merge and cost no mapping. When even `mmap`
/// fails, `allocate` throws `boost::system::system_error` saying why.
/// Stacks are registered with valgrind when the program runs under it.
///
/// Not thread-safe: one pool per runtime thread.
class stack_pool {
public:
  stack_pool(std::size_t stack_size, std::size_t guard_size, std::size_t max_cached = 1024);
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
  std::size_t guard_size() const noexcept { return guard_; }
  /// The canary of a stack `allocate` returned, or nullptr when that stack
  /// has a guard region (a stack without one is the canary shorter: how the
  /// two are told apart). `launch_fiber` hands it to the fiber's state.
  std::uint64_t* canary_of(const boost::context::stack_context& sctx) const noexcept {
    return sctx.size == size_ ? nullptr : reinterpret_cast<std::uint64_t*>(static_cast<char*>(sctx.sp) - size_);
  }

  /// Stacks waiting to be unmapped (`trim`).
  bool has_excess() const noexcept { return !excess_.empty(); }
  /// Unmaps up to `n` of the stacks waiting for it. The scheduler calls it a
  /// batch at a time (`trim_batch`) between fibers and before it sleeps.
  void trim(std::size_t n) noexcept;
  static constexpr std::size_t trim_batch = 32;
  /// The newest cached stacks keep the second page their fiber's end
  /// touched (`deallocate`); older ones give it back, once. The kept pages
  /// stay in the process's RSS (256 KiB: 0.26 KiB per connection of
  /// `echo_server` at 1,000 connections), and they keep a loop that spawns
  /// and joins fibers free of system calls: Boost.Fiber destroys ended
  /// contexts in batches (about 50 in micro_bench's spawn + join loop), so
  /// stacks come back to the cache dozens at a time. With 16, such a loop
  /// paid an madvise and a page fault for most fibers (spawn + join 9 µs
  /// instead of 0.3).
  static constexpr std::size_t keep_second_pages = 64;

  /// For coop::metrics_snapshot, from any thread: stacks mapped, of which
  /// cached unused, and of which without a guard region.
  struct counts {
    std::uint64_t mapped, cached, unguarded;
  };
  counts count() const noexcept { return {mapped_.get(), cached_.get(), unguarded_.get()}; }

  /// True when `addr` lies in the guard region of one of this pool's stacks.
  /// Called from the SIGSEGV handler on the pool's own thread.
  bool in_guard_region(const void* addr) const noexcept;

private:
  enum class guard_kind : unsigned char { none, marker, mprotect };
  struct mapping {
    std::size_t length;   ///< bytes mapped, guard region included
    guard_kind guard;     ///< how the lowest `guard_` bytes are protected
    unsigned valgrind_id; ///< VALGRIND_STACK_REGISTER's id, or 0
  };
  void release(boost::context::stack_context& sctx) noexcept;
  void give_back_second_page(const boost::context::stack_context& sctx) noexcept;
  guard_kind protect(void* base) noexcept;

  std::size_t size_;
  std::size_t guard_;
  std::size_t max_cached_;
  std::vector<boost::context::stack_context> free_;
  /// free_[0, clean_below_) have given their second page back.
  std::size_t clean_below_ = 0;
  std::vector<boost::context::stack_context> excess_; ///< beyond max_cached_: to unmap (still usable)
  std::map<std::uintptr_t, mapping> mappings_;        ///< by the mapping's lowest address
  owned_counter mapped_, cached_, unguarded_;         ///< see `count()`
};

/// For tests: whether stacks may get `MADV_GUARD_INSTALL` guards, and how
/// many `mprotect` guards the process may hold (negative: the default budget
/// from vm.max_map_count). Process-wide; affects stacks mapped afterwards.
void set_stack_guards_for_testing(bool markers, long mprotect_budget) noexcept;

/// Installs (once per process) the SIGSEGV handler that reports fiber stack
/// overflows, and gives the calling thread an alternate signal stack for it
/// (kept until `remove_overflow_stack`). Other faults keep their previous
/// handling.
void install_overflow_handler();
void remove_overflow_stack() noexcept;

/// The stack allocator handed to Boost.Fiber for one fiber, with a stack
/// taken from the pool beforehand: it hands Boost.Fiber that stack less
/// `room` bytes at its top, where `launch_fiber` placed the fiber's
/// `fiber_state` (so that a fiber costs no heap block of its own), and gives
/// the whole stack back. It shares ownership of the pool because a finished
/// fiber's context (and so its stack) may be released after the runtime
/// thread that ran it has stopped.
class reserved_stack {
public:
  reserved_stack(std::shared_ptr<stack_pool> pool, const boost::context::stack_context& whole,
                 std::size_t room) noexcept
      : pool_(std::move(pool)), whole_(whole), room_(room) {}
  boost::context::stack_context allocate() const noexcept {
    boost::context::stack_context below = whole_;
    below.sp = static_cast<char*>(whole_.sp) - room_;
    below.size = whole_.size - room_;
    return below;
  }
  void deallocate(boost::context::stack_context&) noexcept { pool_->deallocate(whole_); }

private:
  std::shared_ptr<stack_pool> pool_;
  boost::context::stack_context whole_;
  std::size_t room_;
};

/// Reports an overflow of `fs`'s stack that its canary shows, and ends the
/// process (SIGABRT).
[[noreturn]] void stack_canary_broken(const fiber_state& fs) noexcept;

/// Called by `scheduler::pick_next` with the context it switches away from:
/// when that fiber's stack has no guard region and its canary changed, the
/// fiber overflowed, and the process ends with a message before any other
/// fiber runs. For a guarded stack, a null pointer test.
inline void check_stack_canary(const boost::fibers::context* ctx) noexcept {
  const auto* fs = ctx ? static_cast<const fiber_state*>(ctx->get_properties()) : nullptr;
  if (fs && fs->stack_canary && !stack_canary_intact(fs->stack_canary)) [[unlikely]]
    stack_canary_broken(*fs);
}

} // namespace coop::detail
