// coop/detail/fiber_locals.hpp — the coop::fiber_local values held by one
// fiber (or one plain thread).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace coop::detail {

/// The `coop::fiber_local` values of one execution context, keyed by the
/// fiber_local's id. Ids are never reused, so a value may outlive its
/// fiber_local: it stays unreachable and is destroyed with the context.
/// Empty (no allocation) until a value is created. Touched only by its own
/// context.
class fiber_locals {
public:
  using destroy_fn = void (*)(void*) noexcept;

  fiber_locals() = default;
  fiber_locals(const fiber_locals&) = delete;
  fiber_locals& operator=(const fiber_locals&) = delete;
  ~fiber_locals() { clear(); }

  /// The value stored under `key`, or nullptr.
  void* find(std::uint64_t key) const noexcept {
    if (entries_)
      for (const entry& e : *entries_)
        if (e.key == key) return e.value;
    return nullptr;
  }
  /// Stores `value` under `key`; `destroy(value)` runs when the context ends.
  /// Throws std::bad_alloc (then the caller still owns `value`).
  void insert(std::uint64_t key, void* value, destroy_fn destroy) {
    if (!entries_) entries_ = std::make_unique<std::vector<entry>>();
    entries_->push_back({key, value, destroy});
  }
  /// Destroys every value, newest first. A destructor that creates values
  /// again (through another fiber_local) gets them destroyed too.
  void clear() noexcept {
    while (entries_ && !entries_->empty()) {
      entry e = entries_->back();
      entries_->pop_back();
      e.destroy(e.value);
    }
  }

private:
  struct entry {
    std::uint64_t key;
    void* value;
    destroy_fn destroy;
  };
  /// A pointer, not the vector itself: a fiber's state stays small (it
  /// shares the top page of the fiber's stack with Boost.Fiber's context).
  std::unique_ptr<std::vector<entry>> entries_;
};

/// The values of the calling fiber, or of the calling plain thread.
fiber_locals& current_fiber_locals() noexcept;
/// A fresh fiber_local id (never reused in the process).
std::uint64_t new_fiber_local_id() noexcept;

} // namespace coop::detail
