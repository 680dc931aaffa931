// coop/detail/op_memory.hpp — the memory of a fiber's Asio operations, reused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

namespace coop::detail {

/// One block that a fiber's Asio operations (started with `coop::yield`)
/// take turns to use: a fiber waits for one operation at a time, so after
/// its first operation no other needs `operator new`. Asio's own recycling
/// does not apply here, since coop starts operations outside
/// `io_context::run()`. A second live allocation (a composed operation's
/// own state, say) falls back to `operator new`.
///
/// Used only on the fiber's own thread: Asio frees an operation's memory on
/// the thread that runs its handler, which is the fiber's.
class op_memory {
public:
  op_memory() noexcept = default;
  op_memory(const op_memory&) = delete;
  op_memory& operator=(const op_memory&) = delete;
  ~op_memory() { ::operator delete(block_); }

  void* allocate(std::size_t size, std::size_t align) {
    if (align > alignof(std::max_align_t)) return ::operator new(size, std::align_val_t(align));
    if (busy_ || size > max_block) return ::operator new(size);
    if (size > size_) {
      // Rounded up, so operations of similar sizes share the block.
      std::size_t rounded = (size + 127) & ~std::size_t(127);
      void* grown = ::operator new(rounded);
      ::operator delete(block_);
      block_ = grown;
      size_ = static_cast<std::uint32_t>(rounded);
    }
    busy_ = true;
    return block_;
  }
  void deallocate(void* p, std::size_t size, std::size_t align) noexcept {
    if (p == block_)
      busy_ = false;
    else if (align > alignof(std::max_align_t))
      ::operator delete(p, size, std::align_val_t(align));
    else
      ::operator delete(p, size);
  }

private:
  static constexpr std::size_t max_block = std::size_t{1} << 20; ///< larger ones are not kept
  void* block_ = nullptr;
  std::uint32_t size_ = 0;
  bool busy_ = false;
};

/// The allocator coop::yield's handlers associate with their operations.
template <class T> class op_allocator {
public:
  using value_type = T;

  explicit op_allocator(op_memory* m) noexcept : m_(m) {}
  template <class U> op_allocator(const op_allocator<U>& other) noexcept : m_(other.memory()) {}

  T* allocate(std::size_t n) { return static_cast<T*>(m_->allocate(n * sizeof(T), alignof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { m_->deallocate(p, n * sizeof(T), alignof(T)); }

  op_memory* memory() const noexcept { return m_; }
  template <class U> bool operator==(const op_allocator<U>& other) const noexcept { return m_ == other.memory(); }

private:
  op_memory* m_;
};

} // namespace coop::detail
