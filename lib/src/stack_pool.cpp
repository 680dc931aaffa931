#include <coop/detail/stack_pool.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <new>

namespace coop::detail {
namespace {

#ifdef NDEBUG
constexpr bool guard_pages = false;
#else
constexpr bool guard_pages = true;
#endif

std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

} // namespace

stack_pool::stack_pool(std::size_t stack_size, std::size_t max_cached)
    : size_((stack_size + page_size() - 1) / page_size() * page_size()), max_cached_(max_cached) {}

stack_pool::~stack_pool() {
  for (auto& s : free_)
    release(s);
}

boost::context::stack_context stack_pool::allocate() {
  if (!free_.empty()) {
    auto s = free_.back();
    free_.pop_back();
    return s;
  }
  boost::context::stack_context sctx;
  if constexpr (guard_pages) {
    // One page below the stack stays inaccessible: an overflow faults at once.
    std::size_t total = size_ + page_size();
    void* p = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    ::mprotect(p, page_size(), PROT_NONE);
    sctx.sp = static_cast<char*>(p) + total;
  } else {
    void* p = std::malloc(size_);
    if (!p) throw std::bad_alloc();
    sctx.sp = static_cast<char*>(p) + size_;
  }
  sctx.size = size_;
  return sctx;
}

void stack_pool::deallocate(boost::context::stack_context& sctx) noexcept {
  if (free_.size() < max_cached_) {
    try {
      free_.push_back(sctx);
      return;
    } catch (...) {
    }
  }
  release(sctx);
}

void stack_pool::release(boost::context::stack_context& sctx) noexcept {
  if constexpr (guard_pages) {
    std::size_t total = size_ + page_size();
    ::munmap(static_cast<char*>(sctx.sp) - total, total);
  } else {
    std::free(static_cast<char*>(sctx.sp) - size_);
  }
}

} // namespace coop::detail
