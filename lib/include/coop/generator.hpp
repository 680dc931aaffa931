// coop/generator.hpp — Python-style generators (yield, send, close, yield from)
// on stackful Boost.Context fibers, independent of coop's fiber scheduler.
#pragma once

#include <coop/detail/generator_state.hpp>

#include <boost/context/fiber.hpp> // forced_unwind, for either Boost.Context backend
#include <boost/context/fixedsize_stack.hpp>

#include <concepts>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace coop {

/// Ways to misuse a generator; see `generator_error::code()`.
enum class generator_errc {
  empty = 1,       ///< the handle holds no generator (default-constructed or moved from)
  already_running, ///< resumed from inside its own body (Python: ValueError)
  send_to_fresh,   ///< a value was sent before the first next() (Python: TypeError)
  ignored_exit,    ///< the body yielded again after close() (Python: RuntimeError)
  no_return_value, ///< return_value() asked before the body returned a value
};

/// Thrown when a generator is used in a way that has no meaning. It signals a
/// bug in the calling code, never a normal outcome.
class generator_error : public std::logic_error {
public:
  generator_error(generator_errc code, const char* what) : std::logic_error(what), code_(code) {}

  /// Which misuse it was.
  generator_errc code() const noexcept { return code_; }

private:
  generator_errc code_;
};

/// Thrown inside a generator's body, at the yield where it is parked, by
/// `generator::close()` and by the destructor of a parked generator (Python's
/// `GeneratorExit`). It deliberately does not derive from `std::exception`, so
/// `catch (const std::exception&)` in a body does not swallow it. A body may
/// catch it to clean up or to return a final value, but must not yield again.
struct generator_exit {};

template <class Yield, class Send = void, class Return = void> class generator;

namespace detail {
template <class T> struct is_generator : std::false_type {};
template <class Y, class S, class R> struct is_generator<generator<Y, S, R>> : std::true_type {};

/// Whether what is sent to a generator accepting `Send` can be passed on to a
/// sub-generator accepting `S2` (trivially so when nothing is sent).
template <class Send, class S2> constexpr bool can_forward_send() {
  if constexpr (std::is_void_v<Send>)
    return true;
  else if constexpr (std::is_void_v<S2>)
    return false;
  else
    return std::is_constructible_v<S2, Send&&>;
}
} // namespace detail

/// A lazy sequence computed by a function that runs on its own stack and
/// suspends itself at every `co.yield(value)`, as a Python generator does.
///
/// @tparam Yield  type of the values the body yields (an object type).
/// @tparam Send   type of the values `send()` passes in, or `void` for none.
///                The body's `co.yield(x)` then returns `std::optional<Send>`:
///                empty when it was resumed by `next()` (Python's `None`).
/// @tparam Return type the body returns (Python's `StopIteration.value`),
///                read with `return_value()`; `void` for none.
///
/// The body is any callable taking `yielder&` (usually `auto& co`) and
/// returning `Return`. It runs only when the caller asks for a value:
///
/// @code
/// coop::generator<int> lazy_range(int up_to) {
///   return coop::generator<int>([up_to](auto& co) {
///     for (int index = 0; index < up_to; ++index) co.yield(index);
///   });
/// }
/// for (int i : lazy_range(3)) std::cout << i << '\n'; // 0 1 2
/// @endcode
///
/// Ownership: the handle owns the body's stack and everything on it. Destroying
/// (or move-assigning over) a parked generator unwinds the body's stack: it
/// throws `generator_exit` at the yield where the body is parked, and, should
/// the body yield again, falls back to Boost.Context's forced unwinding; either
/// way every destructor on that stack runs. A body must therefore not swallow
/// exceptions with `catch (...)` without rethrowing.
///
/// Thread safety: none. A generator is a plain object: no two calls on it may
/// overlap, and it should be resumed on the thread that created it (a compiler
/// may keep `thread_local` addresses across a yield). Different generators are
/// independent. The body must not resume its own generator, and `co` must be
/// used only on the body's own stack (not from a generator the body resumes).
///
/// Fibers: a generator is not a fiber and needs no runtime. Resumed from a
/// coop fiber, its body may block (sleep, socket calls): that fiber parks
/// with it while the others run.
///
/// Cost: one `next()` is two stack switches and no allocation. Creating one
/// allocates the shared state and the stack (`fixedsize_stack` by default;
/// pass any Boost.Context stack allocator with `std::allocator_arg`).
template <class Yield, class Send, class Return> class generator {
  static_assert(std::is_object_v<Yield> && !std::is_const_v<Yield> && !std::is_array_v<Yield>,
                "coop::generator: Yield must be a non-const object type");
  static_assert(std::is_void_v<Send> || std::is_object_v<Send>, "coop::generator: Send must be void or an object type");
  static_assert(std::is_void_v<Return> || std::is_object_v<Return>,
                "coop::generator: Return must be void or an object type");

  using state = detail::generator_state<Yield, Send, Return>;
  using status = detail::generator_status;

public:
  using yield_type = Yield;
  using send_type = Send;
  using return_type = Return;

  /// What `co.yield()` returns: the sent value, if any.
  using sent_type = std::conditional_t<std::is_void_v<Send>, void,
                                       std::optional<std::conditional_t<std::is_void_v<Send>, int, Send>>>;

  /// The body's handle on its generator (`co` in the examples): the only way
  /// to yield. Passed to the body by reference; valid only inside the body, on
  /// the body's own stack. Not copyable.
  class yielder {
  public:
    yielder(const yielder&) = delete;
    yielder& operator=(const yielder&) = delete;

    /// Hands `value` to the caller of next()/send() and parks the body until
    /// the caller resumes it.
    /// @returns the value passed by `send()`, or an empty optional when the
    ///          body was resumed by `next()`; nothing when `Send` is void.
    /// @throws generator_exit when the generator is being closed.
    template <class U>
    requires std::constructible_from<Yield, U&&> sent_type yield(U&& value) {
      state* st = st_;
      st->value_.emplace(std::forward<U>(value));
      st->status_ = status::suspended;
      st->caller_ = std::move(st->caller_).resume();
      if (st->exit_requested_) [[unlikely]] {
        st->exit_requested_ = false;
        throw generator_exit{};
      }
      if constexpr (!std::is_void_v<Send>) {
        if (Send* sent = std::exchange(st->sent_, nullptr)) return sent_type(std::move(*sent));
        return std::nullopt;
      }
    }

    /// Python's `yield from sub`: runs `sub` to its end, passing each value it
    /// yields up to this generator's caller and each value sent to this
    /// generator down to `sub`. If this generator is closed meanwhile, `sub`
    /// is closed first.
    /// @returns `sub`'s return value (nothing when its `Return` is void).
    /// @throws whatever `sub`'s body throws; generator_error when `sub` ends
    ///         without the return value its type promises (it was closed).
    template <class Y2, class S2, class R2> R2 yield_from(generator<Y2, S2, R2>& sub) {
      static_assert(std::is_constructible_v<Yield, Y2&&>,
                    "yield_from: the sub-generator's values must convert to this generator's Yield");
      static_assert(detail::can_forward_send<Send, S2>(),
                    "yield_from: values sent to this generator must be passable to the sub-generator");
      std::optional<Y2> item = sub.next();
      try {
        while (item) {
          if constexpr (std::is_void_v<Send>) {
            yield(std::move(*item));
            item = sub.next();
          } else {
            auto sent = yield(std::move(*item));
            item = sent ? sub.send(std::move(*sent)) : sub.next();
          }
        }
      } catch (const generator_exit&) {
        sub.close();
        throw;
      }
      if constexpr (!std::is_void_v<R2>) return std::move(sub.return_value());
    }

    /// Same, for a temporary: `co.yield_from(middle())`.
    template <class Y2, class S2, class R2> R2 yield_from(generator<Y2, S2, R2>&& sub) { return yield_from(sub); }

    /// Yields every element of a range that is not a generator (sent values
    /// are ignored, as when Python delegates to a plain iterator).
    template <std::ranges::input_range R>
    requires(!detail::is_generator<std::remove_cvref_t<R>>::value) void yield_from(R&& range) {
      for (auto&& element : range)
        yield(std::forward<decltype(element)>(element));
    }

  private:
    friend class generator;
    explicit yielder(state* st) noexcept : st_(st) {}
    state* st_;
  };

  /// Input iterator for range-for: each increment resumes the body once.
  class iterator {
  public:
    using value_type = Yield;
    using difference_type = std::ptrdiff_t;
    using reference = Yield&;
    using iterator_concept = std::input_iterator_tag;

    iterator() noexcept = default;

    /// The value the body yielded last; valid until the next increment.
    Yield& operator*() const noexcept { return *gen_->state_->value_; }
    Yield* operator->() const noexcept { return &*gen_->state_->value_; }

    /// Resumes the body. @throws what the body throws.
    iterator& operator++() {
      gen_->advance();
      return *this;
    }
    void operator++(int) { ++*this; }

    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept { return it.at_end(); }

  private:
    bool at_end() const noexcept { return gen_ == nullptr || gen_->done(); }

    friend class generator;
    explicit iterator(generator* gen) noexcept : gen_(gen) {}
    generator* gen_ = nullptr;
  };

  /// An empty handle; every operation but destruction, assignment and
  /// `done()` throws generator_error(empty).
  generator() noexcept = default;

  /// Creates a generator whose body is `body(co)`; the body does not start
  /// until the first `next()` (or range-for).
  template <class Fn>
  requires(!std::same_as<std::remove_cvref_t<Fn>, generator>) &&
      std::invocable<std::decay_t<Fn>&, yielder&> explicit generator(Fn&& body)
      : generator(std::allocator_arg, boost::context::fixedsize_stack(), std::forward<Fn>(body)) {}

  /// Same, with the body's stack taken from a Boost.Context stack allocator
  /// (`fixedsize_stack`, `protected_fixedsize_stack`, `pooled_fixedsize_stack`).
  template <class StackAlloc, class Fn>
  requires std::invocable < std::decay_t<Fn>
  &, yielder& > generator(std::allocator_arg_t, StackAlloc&& salloc, Fn&& body) : state_(std::make_unique<state>()) {
    static_assert(std::is_void_v<Return> ||
                      std::is_convertible_v<std::invoke_result_t<std::decay_t<Fn>&, yielder&>, Return>,
                  "coop::generator: the body must return Return");
    state* st = state_.get();
    st->body_ = boost::context::fiber(std::allocator_arg, std::forward<StackAlloc>(salloc),
                                      [st, fn = std::forward<Fn>(body)](boost::context::fiber&& caller) mutable {
                                        return run_body(st, fn, std::move(caller));
                                      });
  }

  generator(generator&& other) noexcept = default;

  /// Unwinds the body this handle held (as the destructor does), then takes
  /// over `other`'s.
  generator& operator=(generator&& other) noexcept {
    if (this != &other) {
      destroy();
      state_ = std::move(other.state_);
    }
    return *this;
  }

  /// Unwinds a parked body (see the class comment); exceptions it throws
  /// while unwinding are dropped, as Python drops them.
  ~generator() { destroy(); }

  /// Python's `next(g)` (and `g.send(None)`): runs the body to its next yield.
  /// @returns the yielded value, or an empty optional once the body has ended
  ///          (then `return_value()` holds what it returned).
  /// @throws what the body throws (the generator is then done);
  ///         generator_error when empty or called from its own body.
  std::optional<Yield> next() {
    if (!advance()) return std::nullopt;
    return std::optional<Yield>(std::move(*state_->value_));
  }

  /// Python's `g.send(value)`: resumes the body, whose pending `co.yield()`
  /// returns `value`, and runs it to its next yield.
  /// @returns as next().
  /// @throws generator_error(send_to_fresh) if the body has not been started
  ///         with next() yet (there is no yield to receive the value); as next().
  template <class S = Send>
  requires(!std::is_void_v<S>) std::optional<Yield> send(std::type_identity_t<S> value) {
    state* st = live_state();
    if (st->status_ != status::suspended) [[unlikely]] {
      if (st->status_ == status::fresh)
        throw generator_error(generator_errc::send_to_fresh,
                              "coop::generator::send: cannot send a value to a just-started generator; "
                              "start it with next() first");
      if (st->status_ == status::running) throw_running();
      return std::nullopt; // done
    }
    st->sent_ = &value;
    resume(st);
    if (st->status_ == status::done) return std::nullopt;
    return std::optional<Yield>(std::move(*st->value_));
  }

  /// Python's `g.close()`: throws generator_exit into the parked body so its
  /// stack unwinds; afterwards `done()` is true. A body that catches it and
  /// returns a value makes that value available through `return_value()`.
  /// Closing a fresh, finished or empty generator does nothing but mark it
  /// done.
  /// @throws what the body throws while unwinding (other than generator_exit);
  ///         generator_error(ignored_exit) if the body yields again (it stays
  ///         parked; destroying it then force-unwinds it);
  ///         generator_error(already_running) when called from its own body.
  void close() {
    state* st = state_.get();
    if (st == nullptr || st->status_ == status::done) return;
    if (st->status_ == status::running) throw_running();
    if (st->status_ == status::fresh) {
      st->status_ = status::done;
      st->body_ = {}; // never entered: nothing of the body's runs
      return;
    }
    st->exit_requested_ = true;
    resume(st);
    if (st->status_ != status::done) {
      st->value_.reset();
      throw generator_error(generator_errc::ignored_exit,
                            "coop::generator::close: the body yielded again after generator_exit");
    }
  }

  /// True once the body has returned, thrown or been closed (and for an
  /// empty handle).
  bool done() const noexcept { return !state_ || state_->status_ == status::done; }

  /// True once next() has entered the body.
  bool started() const noexcept { return state_ && state_->status_ != status::fresh; }

  /// The value the body returned (Python's `StopIteration.value`).
  /// @throws generator_error(no_return_value) unless the body has returned.
  template <class R = Return>
  requires(!std::is_void_v<R>) R& return_value() {
    state* st = live_state();
    if (!st->result_)
      throw generator_error(generator_errc::no_return_value,
                            "coop::generator::return_value: the body has not returned a value");
    return *st->result_;
  }

  /// Resumes the body once and returns an iterator on the value it yielded
  /// (or the end): like Python, a partly consumed generator continues.
  iterator begin() {
    advance();
    return iterator(this);
  }
  std::default_sentinel_t end() const noexcept { return {}; }

private:
  template <class Fn> static boost::context::fiber run_body(state* st, Fn& fn, boost::context::fiber&& caller) {
    // Boost.Context's ucontext backend enters a never-started fiber to unwind
    // it when it is destroyed (fcontext does not): the body must not run then.
    if (st->status_ != status::running) return std::move(caller);
    st->caller_ = std::move(caller);
    try {
      yielder co(st);
      if constexpr (std::is_void_v<Return>)
        std::invoke(fn, co);
      else
        st->result_.emplace(std::invoke(fn, co));
    } catch (const boost::context::detail::forced_unwind&) {
      throw; // Boost.Context is unwinding this stack: let it finish
    } catch (const generator_exit&) {
      // closed: ends without a return value
    } catch (...) {
      st->error_ = std::current_exception();
    }
    st->status_ = status::done;
    return std::move(st->caller_);
  }

  /// Switches into the body until it yields or ends.
  static void resume(state* st) {
    st->status_ = status::running;
    st->body_ = std::move(st->body_).resume();
    if (st->error_) [[unlikely]]
      std::rethrow_exception(std::exchange(st->error_, nullptr));
  }

  /// Resumes the body for one value. @returns false once the body has ended.
  bool advance() {
    state* st = state_.get();
    if (st == nullptr || st->status_ >= status::running) [[unlikely]] {
      live_state();
      if (st->status_ == status::running) throw_running();
      return false; // done: stays done, as Python's StopIteration does
    }
    resume(st);
    return st->status_ != status::done;
  }

  state* live_state() const {
    if (!state_) [[unlikely]]
      throw generator_error(generator_errc::empty, "coop::generator: the handle is empty");
    return state_.get();
  }

  [[noreturn]] static void throw_running() {
    throw generator_error(generator_errc::already_running, "coop::generator: resumed from inside its own body");
  }

  void destroy() noexcept {
    state* st = state_.get();
    if (st == nullptr) return;
    if (st->status_ == status::running) {
      std::fputs("coop::generator destroyed from inside its own body\n", stderr);
      std::terminate();
    }
    if (st->status_ == status::suspended) {
      try {
        close();
      } catch (...) {
        // Python ignores exceptions raised while a generator is finalised.
      }
    }
    st->body_ = {}; // still parked (ignored generator_exit) or fresh: forced unwind
    state_.reset();
  }

  std::unique_ptr<state> state_;
};

} // namespace coop
