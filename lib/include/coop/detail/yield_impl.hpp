// coop/detail/yield_impl.hpp — how coop::yield suspends a fiber on an Asio operation.
#pragma once

#include <coop/detail/fiber_state.hpp>
#include <coop/detail/park.hpp>
#include <coop/error.hpp>

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/query.hpp>

#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace coop::detail {

inline const wait_info asio_operation_wait{wait_kind::other, "asio operation"};

/// What a fiber's cancellation slot holds between operations.
struct ignore_cancellation {
  void operator()(boost::asio::cancellation_type) const noexcept {}
};

/// What a suspended fiber waits for: the result of one Asio operation. Lives
/// on the fiber's stack for the duration of the call; it is also the `park`
/// site of that wait. Interrupting it cancels the operation (Asio
/// per-operation cancellation) and waits for the handler, so the operation's
/// buffers are never left in use.
template <class... Ts> class op_state {
public:
  explicit op_state(fiber_state& fs) noexcept : fs_(fs) {}

  void complete(const boost::system::error_code& ec, Ts... vs) {
    ec_ = ec;
    values_.emplace(std::move(vs)...);
    finish();
  }
  /// The handler was destroyed without being called (its io_context went away,
  /// or the operation was dropped): resume the fiber with an error.
  void abandon() noexcept {
    if (done_) return; // never started, or already complete
    ec_ = boost::asio::error::operation_aborted;
    finish();
  }

  fiber_state& fs() noexcept { return fs_; }

  /// Starts nothing when an interruption is due; otherwise runs `init` and
  /// parks the fiber until the handler has run.
  template <class Init, class Handler, class... Args>
  void run(const wait_info& info, Init&& init, Handler&& handler, Args&&... args) {
    // An I/O object's initiation knows its executor: one of another runtime
    // thread would complete there, racing with this fiber's. coop's own calls
    // (which publish their own wait_info) have made that check already.
    if constexpr (requires { init.get_executor(); }) {
      if (&info == &asio_operation_wait) {
        auto ex = init.get_executor();
        if constexpr (requires { boost::asio::query(ex, boost::asio::execution::context); })
          require_own_io(fs_, boost::asio::query(ex, boost::asio::execution::context),
                         "coop::yield: an Asio operation");
      }
    }
    if (fs_.checkpoint(ec_)) {
      done_ = true;
      return;
    }
    std::forward<Init>(init)(std::forward<Handler>(handler), std::forward<Args>(args)...);
    spinlock unused; // the handler runs on this thread: nothing to guard
    spinlock_lock lk(unused);
    boost::system::error_code never; // the site never withdraws at once: the wait always completes
    park(fs_, lk, *this, info, no_deadline, never);
    // An operation we aborted reports why we aborted it.
    if (ec_ == boost::asio::error::operation_aborted && interrupted_by_) ec_ = interrupted_by_;
  }

  const boost::system::error_code& error() const noexcept { return ec_; }
  std::optional<std::tuple<Ts...>>& values() noexcept { return values_; }

  // The `park` site interface.
  bool completed() const noexcept { return done_; }
  void arm(const boost::fibers::waker& w) noexcept {
    waker_ = w;
    armed_ = true;
  }
  bool withdraw(spinlock_lock&, const boost::system::error_code& why) noexcept {
    interrupt_now(why);
    return false; // wait for the handler (it may still complete successfully)
  }
  void interrupt_now(const boost::system::error_code& why) noexcept {
    interrupted_by_ = why;
    fs_.signal.emit(boost::asio::cancellation_type::terminal);
  }

private:
  void finish() noexcept {
    done_ = true;
    // The operation's cancellation handler must not outlive it (it may point
    // into a destroyed I/O object). Replacing it with one that does nothing,
    // rather than clearing the slot, keeps its memory for the next operation.
    fs_.signal.slot().template emplace<ignore_cancellation>();
    if (armed_) waker_.wake();
  }

  fiber_state& fs_;
  boost::system::error_code ec_;
  boost::system::error_code interrupted_by_; ///< the interruption that cancelled the operation, if one did
  std::optional<std::tuple<Ts...>> values_;
  boost::fibers::waker waker_;
  bool done_ = false;
  bool armed_ = false;
};

/// The completion handler coop::yield turns into. Move-only; exactly one of
/// call or destruction reports to the waiting fiber.
template <class... Ts> class yield_handler {
public:
  using cancellation_slot_type = boost::asio::cancellation_slot;
  using allocator_type = op_allocator<void>;

  explicit yield_handler(op_state<Ts...>* st) noexcept : st_(st), mem_(&st->fs().ops) {}
  yield_handler(yield_handler&& other) noexcept : st_(std::exchange(other.st_, nullptr)), mem_(other.mem_) {}
  yield_handler& operator=(yield_handler&&) = delete;
  ~yield_handler() {
    if (st_) st_->abandon();
  }

  cancellation_slot_type get_cancellation_slot() const noexcept {
    return st_ ? st_->fs().signal.slot() : cancellation_slot_type();
  }

  /// The fiber's reusable operation memory (kept by a moved-from handler
  /// too: Asio may free through either).
  allocator_type get_allocator() const noexcept { return allocator_type(mem_); }

  void operator()(boost::system::error_code ec, Ts... vs) {
    std::exchange(st_, nullptr)->complete(ec, std::move(vs)...);
  }

private:
  op_state<Ts...>* st_;
  op_memory* mem_;
};

template <class... Ts> struct yield_return { using type = std::tuple<Ts...>; };
template <> struct yield_return<> { using type = void; };
template <class T> struct yield_return<T> { using type = T; };
template <class... Ts> using yield_return_t = typename yield_return<Ts...>::type;

/// Runs an Asio initiation with a coop::yield handler and reports its result:
/// into `*ec_out` when given, otherwise as an exception.
template <class... Ts, class Init, class... Args>
yield_return_t<Ts...> yield_initiate(boost::system::error_code* ec_out, const wait_info& info, Init&& init,
                                     Args&&... args) {
  op_state<Ts...> st(require_fiber("an operation with the coop::yield token"));
  st.run(info, std::forward<Init>(init), yield_handler<Ts...>(&st), std::forward<Args>(args)...);
  if (ec_out)
    *ec_out = st.error();
  else
    throw_on_error(st.error(), "coop::yield");
  if constexpr (sizeof...(Ts) != 0) {
    using R = yield_return_t<Ts...>;
    auto& v = st.values();
    if (!v) {
      // Not started (an interruption was due) or abandoned: no value to return.
      if constexpr (std::is_default_constructible_v<R>)
        return R{};
      else {
        throw_on_error(st.error(), "coop::yield");
        throw usage_error("coop::yield: an operation ended without a result");
      }
    }
    if constexpr (sizeof...(Ts) == 1)
      return std::move(std::get<0>(*v));
    else
      return std::move(*v);
  }
}

} // namespace coop::detail
