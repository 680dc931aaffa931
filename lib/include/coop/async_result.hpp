// coop/async_result.hpp — a value (or an exception) that is set once and
// waited for by any number of fibers and threads (gevent's AsyncResult).
#pragma once

#include <coop/detail/sync_wait.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace coop {

namespace detail {

/// The part of `async_result<T>` that does not depend on T: the state, the
/// exception and the waiting. Its public members are `async_result`'s.
class async_result_base {
public:
  async_result_base(const async_result_base&) = delete;
  async_result_base& operator=(const async_result_base&) = delete;

  /// True once a value or an exception has been set.
  bool ready() const noexcept;

  /// Stores an exception that `get()` will rethrow, and wakes every waiter.
  /// Throws `usage_error` if a result was already set, or if `error` is null.
  void set_exception(std::exception_ptr error);

  /// Waits until a result (value or exception) is set; does not rethrow it.
  /// Throws `timeout_error` / `cancelled`.
  void wait();
  /// Like wait(), reporting an interruption in `ec` instead.
  void wait(boost::system::error_code& ec);
  /// Waits at most `d`: true when a result is set, false when `d` passed.
  template <class Rep, class Period> bool wait_for(std::chrono::duration<Rep, Period> d) {
    return wait_until(deadline_after(d));
  }
  /// Like wait_for; false with `ec` set when interrupted, false with `ec` clear when `d` passed.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d, boost::system::error_code& ec) {
    return wait_until(deadline_after(d), ec);
  }
  bool wait_until(std::chrono::steady_clock::time_point deadline);
  bool wait_until(std::chrono::steady_clock::time_point deadline, boost::system::error_code& ec);

protected:
  async_result_base() = default;
  ~async_result_base() = default;

  /// Claims the right to set the result; `usage_error` naming `what` when it
  /// was already set (or is being set).
  void begin_set(const char* what);
  /// Gives the claim back (storing the value threw).
  void abandon_set() noexcept;
  /// Publishes the result (the value is stored, or `error` is the exception)
  /// and wakes every waiter.
  void finish_set(std::exception_ptr error) noexcept;
  /// Once ready: rethrows the stored exception, if any.
  void rethrow_error() const;

private:
  park_result wait_impl(steady_time deadline, boost::system::error_code& ec);

  enum class state : unsigned char { empty, setting, ready };
  mutable spinlock lock_;
  state state_ = state::empty;
  std::exception_ptr error_; // written before state_ becomes ready, then constant
  wait_queue waiters_;       // non-empty only until ready
};

} // namespace detail

/// A result delivered once — a value or an exception — and read by any
/// number of fibers and threads, each waiting for it (gevent's AsyncResult,
/// a `std::shared_future` whose promise is built in).
///
/// `get()` waits, then returns a `const T&` to the stored value, or rethrows
/// the stored exception. The value is never moved out, so several waiters
/// (on several threads) may `get()` it, as often as they like; the reference
/// is valid as long as the `async_result` lives (copy it if you need it
/// longer). `set` and `set_exception` may be called once in all; a second
/// call throws `coop::usage_error`.
///
/// Waits follow coop's rules for every blocking call (docs/runtime.md): they
/// fail at entry when a timeout or cancel is due (even on a ready result), an
/// expired `coop::timeout` or a cancel ends a wait in progress, a
/// `coop::shield` defers both. The timed forms report their own deadline as
/// false (`get_for`: a null pointer), not as an exception.
///
/// Thread-safety: every member may be called concurrently from fibers of any
/// runtime thread and from plain threads (which may wait too); `set`,
/// `set_exception` and `ready` never block and may be called from Asio
/// handlers. Destroy it only when nobody waits on it.
///
/// Example:
/// @code
///   coop::async_result<std::string> page;
///   auto fetcher = coop::spawn([&] {
///     try { page.set(fetch(url)); } catch (...) { page.set_exception(std::current_exception()); }
///   });
///   std::cout << page.get().size() << '\n';   // any number of fibers may do this
/// @endcode
template <class T = void> class async_result : public detail::async_result_base {
  static_assert(!std::is_reference_v<T>, "coop::async_result<T>: T must be an object type or void");

public:
  async_result() = default;

  /// Stores the value and wakes every waiter. Throws `usage_error` if a
  /// result was already set. T's move constructor runs outside any lock.
  void set(T value) {
    begin_set("coop::async_result::set");
    try {
      value_.emplace(std::move(value));
    } catch (...) {
      abandon_set();
      throw;
    }
    finish_set(nullptr);
  }

  /// Waits, then returns the value or rethrows the stored exception.
  /// Throws `timeout_error` / `cancelled` when the wait is interrupted.
  const T& get() {
    wait();
    rethrow_error();
    return *value_;
  }
  /// Waits at most `d`: the value (or the stored exception, rethrown), or
  /// nullptr when `d` passed first. An interruption throws.
  template <class Rep, class Period> const T* get_for(std::chrono::duration<Rep, Period> d) {
    return get_until(detail::deadline_after(d));
  }
  const T* get_until(std::chrono::steady_clock::time_point deadline) {
    if (!wait_until(deadline)) return nullptr;
    rethrow_error();
    return &*value_;
  }

private:
  std::optional<T> value_; // written once before the result is published
};

/// A completion without a value: `set()`, and `get()` which returns or rethrows.
template <> class async_result<void> : public detail::async_result_base {
public:
  async_result() = default;

  /// Marks the result ready and wakes every waiter; `usage_error` if already set.
  void set() {
    begin_set("coop::async_result::set");
    finish_set(nullptr);
  }
  /// Waits, then returns or rethrows the stored exception.
  void get() {
    wait();
    rethrow_error();
  }
  /// Waits at most `d`: true when ready (or rethrows), false when `d` passed.
  template <class Rep, class Period> bool get_for(std::chrono::duration<Rep, Period> d) {
    return get_until(detail::deadline_after(d));
  }
  bool get_until(std::chrono::steady_clock::time_point deadline) {
    if (!wait_until(deadline)) return false;
    rethrow_error();
    return true;
  }
};

} // namespace coop
