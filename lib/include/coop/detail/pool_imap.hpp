// coop/detail/pool_imap.hpp — the calls of pool::map and pool::imap_unordered.
// Included by coop/pool.hpp after the pool class (it uses the pool's slots).
#pragma once

#include <coop/channel.hpp>
#include <coop/timeout.hpp>

#include <cstddef>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>
#include <vector>

namespace coop::detail {

/// What one call delivers: its input position and its value or exception.
template <class R> struct pool_item {
  std::size_t index = 0;
  std::optional<R> value;
  std::exception_ptr error;
};

/// Runs `fn` over a view in a pool's fibers, at most `capacity()` calls in
/// flight, started lazily by whoever asks for the next result. Each call
/// delivers a `pool_item` into a channel with room for every call in flight,
/// so delivering never waits. Lives on the pool's thread; its calls reference
/// it until they end, so the destructor cancels and awaits them.
template <class View, class Fn> class imap_range {
  using reference = std::ranges::range_reference_t<View>;
  // Elements of a forward range stay valid while the view lives: calls use
  // them in place. Others (an input stream's cached value...) are copied.
  static constexpr bool in_place = std::ranges::forward_range<View> && std::is_lvalue_reference_v<reference>;
  using held = std::conditional_t<in_place, std::remove_reference_t<reference>*, std::ranges::range_value_t<View>>;
  using argument = std::conditional_t<in_place, reference, std::ranges::range_value_t<View>&&>;

public:
  using result_type = std::remove_cvref_t<std::invoke_result_t<Fn&, argument>>;
  static_assert(!std::is_void_v<result_type>,
                "coop::pool::map / imap_unordered: fn must return a value (use spawn and join for void calls)");

  imap_range(pool& p, View view, Fn fn)
      : pool_(p), view_(std::move(view)), next_(std::ranges::begin(view_)), fn_(std::move(fn)), results_(p.capacity()) {
    running_.reserve(p.capacity());
  }
  imap_range(const imap_range&) = delete;
  imap_range& operator=(const imap_range&) = delete;
  ~imap_range() {
    cancel_running();
    shield s; // the calls reference this object: wait for them even when cancelled
    for (auto& call : running_) {
      boost::system::error_code ignored;
      call.second.join(ignored);
    }
  }

  /// Input iteration over the results, in completion order.
  class iterator {
  public:
    using value_type = result_type;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(imap_range* r) : r_(r) { ++*this; }
    result_type& operator*() const noexcept { return *current_; }
    iterator& operator++() {
      auto item = r_->next_item();
      if (item)
        current_ = std::move(item->value);
      else
        current_.reset();
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const noexcept { return !current_; }

  private:
    imap_range* r_ = nullptr;
    mutable std::optional<result_type> current_;
  };
  /// Starts the first calls and waits for the first result: call once.
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

  /// Starts calls up to the limit, then waits for one to complete: its item,
  /// or empty when every call has been consumed. Rethrows a call's exception
  /// and the caller's interruption; either ends the iteration and cancels the
  /// calls in flight.
  std::optional<pool_item<result_type>> next_item() {
    if (finished_) return std::nullopt;
    try {
      while (running_.size() < pool_.capacity() && next_ != std::ranges::end(view_))
        start_next();
      if (running_.empty()) {
        finished_ = true;
        return std::nullopt;
      }
      auto item = results_.pop(); // never closed: a value unless interrupted (then it throws)
      forget(item->index);
      if (item->error) std::rethrow_exception(item->error);
      return item;
    } catch (...) {
      finished_ = true;
      cancel_running();
      throw;
    }
  }

private:
  void start_next() {
    worker& w = pool_.bind_thread("coop::pool::imap_unordered");
    pool_.slots_.acquire(); // the element is read only once a call can start
    std::optional<held> h;
    try {
      h.emplace(hold());
    } catch (...) {
      pool_.slots_.release();
      throw;
    }
    std::size_t index = started_;
    task<void> t = pool_.template launch<void>(
        w, [this, index, h = std::move(*h)](task_state<void>& st) mutable { deliver(st, index, h); });
    running_.emplace_back(index, std::move(t)); // reserved: cannot throw
    ++started_;
    ++next_;
  }

  held hold() {
    if constexpr (in_place)
      return std::addressof(*next_);
    else
      return held(*next_);
  }

  // In the call's fiber.
  void deliver(task_state<void>& st, std::size_t index, held& h) {
    pool_item<result_type> item;
    item.index = index;
    auto call = [&] {
      try {
        if constexpr (in_place)
          item.value.emplace(std::invoke(fn_, *h));
        else
          item.value.emplace(std::invoke(fn_, std::move(h)));
      } catch (const boost::context::detail::forced_unwind&) {
        throw;
      } catch (...) {
        item.error = std::current_exception();
      }
    };
    st.run(call);
    if (!item.value && !item.error) item.error = std::make_exception_ptr(cancelled()); // cancelled before it ran
    results_.try_push(std::move(item)); // room for every call in flight: never full, never waits
  }

  void forget(std::size_t index) noexcept {
    for (auto it = running_.begin(); it != running_.end(); ++it)
      if (it->first == index) {
        running_.erase(it);
        return;
      }
  }

  void cancel_running() {
    for (auto& call : running_)
      call.second.cancel();
  }

  pool& pool_;
  View view_;
  std::ranges::iterator_t<View> next_;
  Fn fn_;
  channel<pool_item<result_type>> results_;
  std::vector<std::pair<std::size_t, task<void>>> running_; // started and not yet consumed
  std::size_t started_ = 0;
  bool finished_ = false;
};

} // namespace coop::detail
