// coop/detail/greenlet_record.hpp — the type-independent core of coop::greenlet:
// per-thread bookkeeping, the switch itself, and record lifetime.
// Internal: include <coop/greenlet.hpp> instead.
#pragma once

#include <boost/context/fiber.hpp>

#include <cstddef>
#include <exception>
#include <utility>

namespace coop::detail {

/// Where a greenlet stands.
enum class greenlet_status : unsigned char {
  fresh,     ///< created, function not entered yet
  suspended, ///< parked in a switch_to()
  running,   ///< the thread is executing it
  dead,      ///< its function returned or threw, or it was unwound
};

/// One address per type, so that a switch can check that the value it
/// delivers is of the type the receiver waits for.
template <class T> inline constexpr char greenlet_type_tag = 0;

/// A greenlet as the switching machinery sees it: its parked context, its
/// parent, and the "inbox" where a switch delivers a value. Records are
/// reference counted (single-threaded counts): the handle holds one reference
/// and every child holds one on its parent. Each thread has one root record,
/// its main greenlet, which is never freed.
struct greenlet_record {
  greenlet_record() noexcept = default;
  greenlet_record(const greenlet_record&) = delete;
  greenlet_record& operator=(const greenlet_record&) = delete;
  virtual ~greenlet_record() = default;

  boost::context::fiber ctx_;         ///< parked context (fresh or suspended)
  greenlet_record* parent_ = nullptr; ///< resumed when this one ends (counted reference)
  greenlet_record* root_ = nullptr;   ///< the main greenlet of the owning thread
  std::exception_ptr error_;          ///< raised here when this greenlet wakes up
  void* inbox_ = nullptr;             ///< `std::optional<T>*` awaiting a value, or null
  const void* inbox_type_ = nullptr;  ///< &greenlet_type_tag<T> of that inbox
  std::size_t refs_ = 1;
  greenlet_status status_ = greenlet_status::fresh;
  bool discard_ = false; ///< unwound before it ever ran: its function must not start
  bool is_root_ = false;
};

/// Per-thread greenlet bookkeeping.
struct greenlet_thread {
  greenlet_thread() noexcept {
    root_.root_ = &root_;
    root_.status_ = greenlet_status::running;
    root_.is_root_ = true;
  }
  greenlet_record root_;              ///< the thread's main greenlet
  greenlet_record* current_ = &root_; ///< the greenlet executing now
  greenlet_record* from_ = nullptr;   ///< the one that just switched away: gets its context on arrival
};

/// The calling thread's bookkeeping (one instance per thread for the whole
/// program: an inline function's static, not a header-defined object).
inline greenlet_thread& greenlet_this_thread() noexcept {
  static thread_local greenlet_thread t;
  return t;
}

inline void greenlet_release(greenlet_thread& t, greenlet_record* r) noexcept;

/// Unwinds a parked greenlet's stack with Boost.Context's forced unwinding
/// (every destructor on it runs) and marks it dead.
inline void greenlet_unwind(greenlet_thread& t, greenlet_record* r) noexcept {
  greenlet_record* self = t.current_;
  // Boost.Context's ucontext backend enters a never-started fiber to unwind
  // it (fcontext does not): tell the entry function not to run the body.
  if (r->status_ == greenlet_status::fresh) r->discard_ = true;
  t.current_ = r;
  r->status_ = greenlet_status::running;
  r->ctx_ = {}; // ~fiber throws forced_unwind on r's stack, which comes back here
  t.current_ = self;
  r->status_ = greenlet_status::dead;
}

/// Frees a record nobody refers to: unwinds it if parked, drops its parent.
inline void greenlet_destroy(greenlet_thread& t, greenlet_record* r) noexcept {
  if (r->ctx_) greenlet_unwind(t, r);
  greenlet_record* parent = r->parent_;
  delete r;
  if (parent != nullptr) greenlet_release(t, parent);
}

inline void greenlet_add_ref(greenlet_record* r) noexcept {
  if (!r->is_root_) ++r->refs_;
}

/// Drops one reference. The record of the running greenlet survives until it
/// switches away (see greenlet_arrive).
inline void greenlet_release(greenlet_thread& t, greenlet_record* r) noexcept {
  if (r->is_root_ || --r->refs_ != 0 || r->status_ == greenlet_status::running) return;
  greenlet_destroy(t, r);
}

/// First thing a greenlet does whenever it gains control: file the context of
/// the greenlet that switched to it (null if that one just ended).
inline void greenlet_arrive(greenlet_thread& t, boost::context::fiber&& from) noexcept {
  greenlet_record* prev = std::exchange(t.from_, nullptr);
  if (prev == nullptr) return;
  prev->ctx_ = std::move(from);
  if (prev->refs_ == 0 && !prev->is_root_) greenlet_destroy(t, prev);
}

/// Parks the current greenlet and runs `target` (which must be fresh or
/// suspended, on this thread); returns when some greenlet switches back.
inline void greenlet_switch(greenlet_thread& t, greenlet_record* target) {
  greenlet_record* self = t.current_;
  self->status_ = greenlet_status::suspended;
  target->status_ = greenlet_status::running;
  t.from_ = self;
  t.current_ = target;
  boost::context::fiber from = std::move(target->ctx_).resume();
  greenlet_arrive(greenlet_this_thread(), std::move(from));
}

/// The first live ancestor of `r`: the greenlet that receives its result.
inline greenlet_record* greenlet_live_parent(greenlet_record* r) noexcept {
  greenlet_record* p = r->parent_;
  while (p->status_ == greenlet_status::dead)
    p = p->parent_;
  return p;
}

/// Marks `r` dead and returns the context to end its stack with: its live
/// parent's, which then runs.
inline boost::context::fiber greenlet_leave(greenlet_thread& t, greenlet_record* r, greenlet_record* parent) noexcept {
  r->status_ = greenlet_status::dead;
  parent->status_ = greenlet_status::running;
  t.from_ = r;
  t.current_ = parent;
  return std::move(parent->ctx_);
}

} // namespace coop::detail
