// coop/greenlet.hpp — Python greenlet's explicit, symmetric switching between
// stackful functions, on Boost.Context fibers (no scheduler involved).
#pragma once

#include <coop/detail/greenlet_record.hpp>

#include <boost/context/fiber.hpp> // forced_unwind, for either Boost.Context backend
#include <boost/context/fixedsize_stack.hpp>

#include <concepts>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace coop {

/// Ways to misuse a greenlet; see `greenlet_error::code()`.
enum class greenlet_errc {
  empty = 1,     ///< the handle holds no greenlet (default-constructed or moved from)
  dead,          ///< switched to a greenlet whose function has ended
  wrong_thread,  ///< switched to a greenlet that belongs to another thread
  type_mismatch, ///< the value switched in is not of the type the receiver waits for
  parent_cycle,  ///< set_parent() would make a greenlet its own ancestor
};

/// Thrown when a greenlet is used in a way that has no meaning (a bug in the
/// calling code). A `type_mismatch` raised by a finishing greenlet is thrown
/// in the parent that receives its result.
class greenlet_error : public std::logic_error {
public:
  greenlet_error(greenlet_errc code, const char* what) : std::logic_error(what), code_(code) {}

  /// Which misuse it was.
  greenlet_errc code() const noexcept { return code_; }

private:
  greenlet_errc code_;
};

/// A function running on its own stack that gives up control only by naming
/// the greenlet to run next: `other.switch_to(value)`. Nothing is scheduled
/// behind the user's back (that is what coop's fibers add).
///
/// @tparam T type of the values passed by switches, or `void` for none. The
///           function has the signature `T(T)` (its argument is the value of
///           the switch that starts it) or `void()`. All greenlets that switch
///           among each other should share `T`; a mismatch is detected at run
///           time (greenlet_error(type_mismatch)).
///
/// Each thread has an implicit main greenlet: the code that runs outside all
/// greenlets. A greenlet's *parent* is the greenlet that was running when it
/// was created (or the one given to set_parent()); when the function returns,
/// its result is switched to the parent (to the parent's parent if the parent
/// is dead, and so on); when it throws, the exception is rethrown in the
/// parent's pending switch_to().
///
/// @code
/// coop::greenlet<> gr1, gr2;
/// gr1 = coop::greenlet<>([&] { puts("12"); gr2.switch_to(); puts("34"); gr2.switch_to(); });
/// gr2 = coop::greenlet<>([&] { puts("56"); gr1.switch_to(); puts("78"); });
/// gr1.switch_to(); // prints 12 56 34 78, then returns here when gr2 ends
/// @endcode
///
/// Ownership: the handle shares ownership of the greenlet's stack with the
/// greenlet's children (each child keeps its parent alive). When the last owner
/// goes, a parked greenlet's stack is unwound with Boost.Context's forced
/// unwinding, so every destructor on it runs; its function must not swallow
/// exceptions with `catch (...)` without rethrowing. A greenlet that is running
/// when its handle goes away lives on until it switches away or ends.
///
/// Thread safety: none. A greenlet belongs to the thread that created it and
/// is switched to, and destroyed, only on that thread (switching from another
/// thread throws greenlet_error(wrong_thread)). Do not mix greenlets of one
/// thread across several Boost.Fiber fibers.
template <class T = void> class greenlet {
  static_assert(std::is_void_v<T> || (std::is_object_v<T> && !std::is_const_v<T>),
                "coop::greenlet: T must be void or a non-const object type");

  template <class U> friend class greenlet;

  struct no_value {};
  using value_slot =
      std::conditional_t<std::is_void_v<T>, no_value, std::optional<std::conditional_t<std::is_void_v<T>, int, T>>>;

  struct record : detail::greenlet_record {
    value_slot start_; ///< the argument of the switch that starts it
  };

public:
  /// An empty handle: switch_to() throws greenlet_error(empty); dead() is true.
  greenlet() noexcept = default;

  /// Creates a greenlet that will run `fn` when first switched to. Its parent
  /// is the greenlet running now.
  template <class Fn>
  requires(!std::same_as<std::remove_cvref_t<Fn>, greenlet>) explicit greenlet(Fn&& fn)
      : greenlet(std::allocator_arg, boost::context::fixedsize_stack(), std::forward<Fn>(fn)) {}

  /// Same, with the stack taken from a Boost.Context stack allocator.
  template <class StackAlloc, class Fn> greenlet(std::allocator_arg_t, StackAlloc&& salloc, Fn&& fn) {
    if constexpr (std::is_void_v<T>)
      static_assert(std::is_invocable_v<std::decay_t<Fn>&>, "coop::greenlet<void>: the function takes no arguments");
    else
      static_assert(std::is_invocable_r_v<T, std::decay_t<Fn>&, T&&>,
                    "coop::greenlet<T>: the function takes and returns a T");
    detail::greenlet_thread& t = detail::greenlet_this_thread();
    auto rec = std::make_unique<record>();
    record* r = rec.get();
    r->root_ = &t.root_;
    r->inbox_type_ = &detail::greenlet_type_tag<T>;
    if constexpr (!std::is_void_v<T>) r->inbox_ = &r->start_;
    r->ctx_ = boost::context::fiber(
        std::allocator_arg, std::forward<StackAlloc>(salloc),
        [r, fn = std::forward<Fn>(fn)](boost::context::fiber&& from) mutable { return run(r, fn, std::move(from)); });
    r->parent_ = t.current_;
    detail::greenlet_add_ref(r->parent_);
    rec_ = rec.release();
  }

  greenlet(greenlet&& other) noexcept : rec_(std::exchange(other.rec_, nullptr)) {}

  /// Drops this handle's greenlet (see the class comment), then takes over
  /// `other`'s.
  greenlet& operator=(greenlet&& other) noexcept {
    if (this != &other) {
      reset();
      rec_ = std::exchange(other.rec_, nullptr);
    }
    return *this;
  }

  ~greenlet() { reset(); }

  /// Parks the running greenlet and runs this one: starts its function with
  /// `value`, or makes its pending switch_to() return `value`.
  /// @returns the value with which some greenlet later switches back to the
  ///          caller (or the result of a child whose parent the caller is).
  /// @throws the exception a child of the caller's ended with;
  ///         greenlet_error if this one is empty, dead, of another thread, or
  ///         waits for another type.
  template <class U = T>
  requires(!std::is_void_v<U>) U switch_to(std::type_identity_t<U> value) {
    detail::greenlet_thread& t = detail::greenlet_this_thread();
    detail::greenlet_record* target = checked_target(t);
    detail::greenlet_record* self = t.current_;
    if (target == self) return value;
    static_cast<std::optional<T>*>(target->inbox_)->emplace(std::move(value));
    std::optional<T> inbox;
    self->inbox_ = &inbox;
    self->inbox_type_ = &detail::greenlet_type_tag<T>;
    detail::greenlet_switch(t, target);
    wake(self);
    return std::move(*inbox);
  }

  /// Same, for greenlets that pass no values.
  template <class U = T>
  requires std::is_void_v<U>
  void switch_to() {
    detail::greenlet_thread& t = detail::greenlet_this_thread();
    detail::greenlet_record* target = checked_target(t);
    detail::greenlet_record* self = t.current_;
    if (target == self) return;
    self->inbox_ = nullptr;
    self->inbox_type_ = &detail::greenlet_type_tag<void>;
    detail::greenlet_switch(t, target);
    wake(self);
  }

  /// Makes `parent` the greenlet that receives this one's result.
  /// @throws greenlet_error(parent_cycle) if this one would be its own
  ///         ancestor; greenlet_error(empty) if either handle is empty.
  template <class U> void set_parent(const greenlet<U>& parent) {
    if (rec_ == nullptr || parent.rec_ == nullptr)
      throw greenlet_error(greenlet_errc::empty, "coop::greenlet::set_parent: empty handle");
    if (rec_->is_root_)
      throw greenlet_error(greenlet_errc::parent_cycle, "coop::greenlet::set_parent: the main greenlet has no parent");
    for (detail::greenlet_record* p = parent.rec_; p != nullptr; p = p->parent_)
      if (p == rec_)
        throw greenlet_error(greenlet_errc::parent_cycle, "coop::greenlet::set_parent: cyclic parent chain");
    detail::greenlet_add_ref(parent.rec_);
    detail::greenlet_release(detail::greenlet_this_thread(), std::exchange(rec_->parent_, parent.rec_));
  }

  /// A handle on the greenlet running now: the thread's main greenlet when
  /// called outside all greenlets (Python's `greenlet.getcurrent()`). Use it
  /// to switch back later, e.g. `auto main = coop::greenlet<>::current();`.
  static greenlet current() {
    detail::greenlet_record* r = detail::greenlet_this_thread().current_;
    detail::greenlet_add_ref(r);
    return greenlet(r);
  }

  /// A handle on the greenlet that receives this one's result (Python's
  /// `g.parent`); empty for the main greenlet and an empty handle.
  greenlet parent() const {
    if (rec_ == nullptr || rec_->parent_ == nullptr) return greenlet();
    detail::greenlet_add_ref(rec_->parent_);
    return greenlet(rec_->parent_);
  }

  /// True once the function has returned or thrown, or the greenlet was
  /// unwound; true for an empty handle. A greenlet not yet started is not dead.
  bool dead() const noexcept { return rec_ == nullptr || rec_->status_ == detail::greenlet_status::dead; }

  /// True once the greenlet has been switched to at least once.
  bool started() const noexcept { return rec_ != nullptr && rec_->status_ != detail::greenlet_status::fresh; }

  /// True if the handle holds a greenlet.
  explicit operator bool() const noexcept { return rec_ != nullptr; }

private:
  template <class Fn> static boost::context::fiber run(record* r, Fn& fn, boost::context::fiber&& from) {
    if (r->discard_) return std::move(from); // destroyed before it ever ran
    detail::greenlet_thread& t = detail::greenlet_this_thread();
    detail::greenlet_arrive(t, std::move(from));
    value_slot result;
    std::exception_ptr error;
    try {
      if (r->error_) std::rethrow_exception(std::exchange(r->error_, nullptr));
      r->inbox_ = nullptr;
      r->inbox_type_ = nullptr;
      if constexpr (std::is_void_v<T>) {
        std::invoke(fn);
      } else {
        T arg = std::move(*r->start_);
        r->start_.reset();
        result.emplace(std::invoke(fn, std::move(arg)));
      }
    } catch (const boost::context::detail::forced_unwind&) {
      throw; // Boost.Context is unwinding this stack: let it finish
    } catch (...) {
      error = std::current_exception();
    }
    detail::greenlet_thread& here = detail::greenlet_this_thread();
    detail::greenlet_record* parent = detail::greenlet_live_parent(r);
    if (!error) {
      if (parent->inbox_type_ != &detail::greenlet_type_tag<T>)
        error = std::make_exception_ptr(greenlet_error(
            greenlet_errc::type_mismatch, "coop::greenlet: a child ended with a value of another type than its "
                                          "parent waits for"));
      else if constexpr (!std::is_void_v<T>)
        static_cast<std::optional<T>*>(parent->inbox_)->emplace(std::move(*result));
    }
    if (error) parent->error_ = error;
    return detail::greenlet_leave(here, r, parent);
  }

  explicit greenlet(detail::greenlet_record* r) noexcept : rec_(r) {}

  detail::greenlet_record* checked_target(detail::greenlet_thread& t) const {
    if (rec_ == nullptr) throw greenlet_error(greenlet_errc::empty, "coop::greenlet::switch_to: empty handle");
    if (rec_->root_ != &t.root_)
      throw greenlet_error(greenlet_errc::wrong_thread,
                           "coop::greenlet::switch_to: the greenlet belongs to another thread");
    if (rec_->status_ == detail::greenlet_status::dead)
      throw greenlet_error(greenlet_errc::dead, "coop::greenlet::switch_to: the greenlet is dead");
    if (rec_->status_ != detail::greenlet_status::running && rec_->inbox_type_ != &detail::greenlet_type_tag<T>)
      throw greenlet_error(greenlet_errc::type_mismatch,
                           "coop::greenlet::switch_to: the greenlet waits for a value of another type");
    return rec_;
  }

  /// Back in `self` after a switch: raise what a child ended with.
  static void wake(detail::greenlet_record* self) {
    self->inbox_ = nullptr;
    self->inbox_type_ = nullptr;
    if (self->error_) std::rethrow_exception(std::exchange(self->error_, nullptr));
  }

  void reset() noexcept {
    if (rec_ != nullptr) detail::greenlet_release(detail::greenlet_this_thread(), std::exchange(rec_, nullptr));
  }

  detail::greenlet_record* rec_ = nullptr;
};

} // namespace coop
