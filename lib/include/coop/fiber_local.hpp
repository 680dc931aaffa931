// coop/fiber_local.hpp — one value per fiber (thread_local for fibers).
#pragma once

#include <coop/detail/fiber_locals.hpp>

#include <cstdint>
#include <memory>

namespace coop {

/// A variable with one value per fiber: `get()` returns the calling fiber's
/// value, default-constructed the first time that fiber asks for it. The
/// value is destroyed when its fiber ends (once its function has returned,
/// before a `join` of it resumes), on that fiber.
///
/// Lifetimes: the fiber_local object and its values are independent. A
/// fiber_local destroyed while fibers still hold values leaves them
/// unreachable; each is destroyed when its fiber ends (so a long-lived fiber
/// keeps it until then). Ids are never reused, so a new fiber_local never
/// sees an old one's value.
///
/// On a plain thread (or a runtime thread outside any fiber) `get()` returns
/// a value for that thread, destroyed when the thread exits.
///
/// Thread-safety: `get()` may be called concurrently from fibers of any
/// threads; each touches only its own value. The returned reference must not
/// be handed to another fiber that outlives this one.
///
/// Example:
/// @code
///   coop::fiber_local<std::string> request_id;   // e.g. a global
///   coop::spawn([&] { request_id.get() = "r-17"; handle(); });  // handle() reads request_id.get()
/// @endcode
template <class T> class fiber_local {
public:
  fiber_local() noexcept : id_(detail::new_fiber_local_id()) {}
  fiber_local(const fiber_local&) = delete;
  fiber_local& operator=(const fiber_local&) = delete;

  /// The calling fiber's value, created by `T()` on its first use. Throws
  /// what `T()` throws, or std::bad_alloc.
  T& get() {
    detail::fiber_locals& locals = detail::current_fiber_locals();
    if (void* v = locals.find(id_)) return *static_cast<T*>(v);
    auto value = std::make_unique<T>();
    // T() may itself have asked for this fiber_local: keep the first value.
    if (void* v = locals.find(id_)) return *static_cast<T*>(v);
    locals.insert(id_, value.get(), &destroy);
    return *value.release();
  }

private:
  static void destroy(void* p) noexcept { delete static_cast<T*>(p); }

  std::uint64_t id_;
};

} // namespace coop
