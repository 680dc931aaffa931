// coop/detail/stack_pool.hpp — per-thread pool of fiber stacks.
#pragma once

#include <boost/context/stack_context.hpp>

#include <cstddef>
#include <memory>
#include <vector>

namespace coop::detail {

/// Caches freed fiber stacks so a new fiber reuses already-touched memory.
/// Not thread-safe: one pool per runtime thread. Debug builds (NDEBUG unset)
/// put a guard page below each stack so an overflow faults instead of
/// corrupting memory.
class stack_pool {
public:
  explicit stack_pool(std::size_t stack_size, std::size_t max_cached = 1024);
  ~stack_pool();
  stack_pool(const stack_pool&) = delete;
  stack_pool& operator=(const stack_pool&) = delete;

  boost::context::stack_context allocate();
  void deallocate(boost::context::stack_context& sctx) noexcept;
  std::size_t stack_size() const noexcept { return size_; }

private:
  void release(boost::context::stack_context& sctx) noexcept;
  std::size_t size_;
  std::size_t max_cached_;
  std::vector<boost::context::stack_context> free_;
};

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
