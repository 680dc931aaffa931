// coop/channel.hpp — channels between fibers, on one runtime thread or several.
#pragma once

#include <coop/detail/deadline.hpp>
#include <coop/detail/wait_queue.hpp>
#include <coop/error.hpp>

#include <chrono>
#include <cstddef>
#include <deque>
#include <iterator>
#include <optional>
#include <utility>

namespace coop {

template <class T> class channel;
namespace detail {
template <class T> class recv_case;
template <class T> class send_case;
} // namespace detail

/// Outcome of a channel operation that is not an exception.
enum class channel_status {
  success,   ///< the item was pushed or popped
  empty,     ///< try_pop: nothing to take now
  full,      ///< try_push: no room now
  closed,    ///< the channel is closed (and, for pops, drained)
  timeout,   ///< a deadline passed: the call's own (`pop_for`...), or in the
             ///< `error_code` forms an expired `coop::timeout`
  cancelled, ///< `error_code` forms: the calling fiber was cancelled
};

/// A FIFO channel with exactly the capacity asked for: `capacity` items wait
/// in the channel; 0 makes every push wait for a pop (a rendezvous, as Go's
/// unbuffered channel). After `close()`, pushes fail with `closed` and pops
/// drain what is left, then report `closed`.
///
/// Blocking calls park only the calling fiber (a plain OS thread may block on
/// one too). Like every blocking call they fail with `timeout_error` /
/// `cancelled` when the fiber's `coop::timeout` expires or the fiber is
/// cancelled — at entry if that is already due, even if the call could
/// complete at once (so a cancelled consumer of a busy channel still ends).
/// An operation that completed is never undone: the item of a failed push
/// stays with the caller, a popped item is returned (nothing is lost).
///
/// Thread-safety: every member may be called concurrently from fibers of any
/// runtime thread and from plain threads. Destroy it only when nobody waits.
///
/// Example:
/// @code
///   coop::channel<int> ch(16);
///   auto producer = coop::spawn([&] { for (int i = 0; i < 3; ++i) ch.push(i); ch.close(); });
///   for (int v : ch) std::cout << v << '\n';
/// @endcode
template <class T> class channel {
public:
  explicit channel(std::size_t capacity = 0) : capacity_(capacity) {}
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;

  /// Waits for room (or a receiver) and pushes. `success` or `closed`.
  channel_status push(T&& item) { return checked(push_impl(item, true)); }
  channel_status push(const T& item) {
    T copy(item);
    return push(std::move(copy));
  }
  /// Like push, reporting interruption in `ec` (status `timeout` or
  /// `cancelled`) instead of throwing.
  channel_status push(T&& item, boost::system::error_code& ec) {
    auto r = push_impl(item, true);
    ec = r.ec;
    return r.status;
  }
  /// Pushes only if it can do so at once: `success`, `full` or `closed`. Never interrupted.
  channel_status try_push(T&& item) { return push_impl(item, false).status; }
  channel_status try_push(const T& item) {
    T copy(item);
    return try_push(std::move(copy));
  }
  /// Like push, but gives up with `timeout` after `d` (the item stays with the caller).
  template <class Rep, class Period> channel_status push_for(T&& item, std::chrono::duration<Rep, Period> d) {
    return push_until(std::move(item), after_now(d));
  }
  channel_status push_until(T&& item, std::chrono::steady_clock::time_point deadline) {
    return checked(push_impl(item, true, deadline));
  }

  /// Waits for an item. Empty once the channel is closed and drained.
  std::optional<T> pop() {
    std::optional<T> out;
    checked(pop_impl(out, true));
    return out;
  }
  /// Like pop(), reporting interruption in `ec` instead of throwing.
  std::optional<T> pop(boost::system::error_code& ec) {
    std::optional<T> out;
    ec = pop_impl(out, true).ec;
    return out;
  }
  /// Takes an item only if one is there now. Never interrupted.
  std::optional<T> try_pop() {
    std::optional<T> out;
    pop_impl(out, false);
    return out;
  }
  /// Takes an item into `out` if one is there now: `success`, `empty` or `closed`.
  channel_status try_pop(T& out) {
    std::optional<T> o;
    auto st = pop_impl(o, false).status;
    if (o) out = std::move(*o);
    return st;
  }
  /// Waits up to `d` for an item: `success`, `closed` or `timeout`.
  template <class Rep, class Period> channel_status pop_for(T& out, std::chrono::duration<Rep, Period> d) {
    return pop_until(out, after_now(d));
  }
  channel_status pop_until(T& out, std::chrono::steady_clock::time_point deadline) {
    std::optional<T> o;
    auto st = checked(pop_impl(o, true, deadline));
    if (o) out = std::move(*o);
    return st;
  }

  /// Closes the channel: waiting and later pushes fail with `closed`; pops
  /// drain the items already inside. Idempotent.
  void close() noexcept {
    detail::spinlock_lock lk(lock_);
    closed_ = true;
    receivers_.wake_all();
    while (detail::waiter* w = senders_.pop()) {
      w->status = sender_closed;
      w->wake();
    }
  }
  bool is_closed() const noexcept {
    detail::spinlock_lock lk(lock_);
    return closed_;
  }
  /// Items waiting in the channel now.
  std::size_t size() const noexcept {
    detail::spinlock_lock lk(lock_);
    return items_.size();
  }
  std::size_t capacity() const noexcept { return capacity_; }

  /// Input iteration: pops until the channel is closed and drained.
  class iterator {
  public:
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(channel* ch) : ch_(ch) { ++*this; }
    T& operator*() noexcept { return *current_; }
    iterator& operator++() {
      current_ = ch_->pop();
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const noexcept { return !current_; }

  private:
    channel* ch_ = nullptr;
    std::optional<T> current_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() noexcept { return {}; }

private:
  static constexpr int sender_taken = 1;
  static constexpr int sender_closed = 2;

  struct result {
    channel_status status;
    boost::system::error_code ec;
  };

  static channel_status checked(const result& r) {
    throw_on_error(r.ec, "coop::channel");
    return r.status;
  }
  template <class Rep, class Period> static detail::steady_time after_now(std::chrono::duration<Rep, Period> d) {
    return detail::deadline_after(d);
  }
  static result interrupted(const boost::system::error_code& ec) {
    return {ec == errc::cancelled ? channel_status::cancelled : channel_status::timeout, ec};
  }

  // Under lock_: completes a push at once if it can; nullopt when it would wait.
  std::optional<channel_status> push_now(T& item) {
    if (closed_) return channel_status::closed;
    if (detail::waiter* r = receivers_.pop()) {
      static_cast<std::optional<T>*>(r->payload)->emplace(std::move(item));
      r->wake();
      return channel_status::success;
    }
    if (items_.size() < capacity_) {
      items_.push_back(std::move(item));
      return channel_status::success;
    }
    return std::nullopt;
  }

  result push_impl(T& item, bool block, detail::steady_time deadline = detail::no_deadline) {
    boost::system::error_code ec;
    if (block && detail::current_wait_context().checkpoint(ec)) return interrupted(ec);
    detail::spinlock_lock lk(lock_);
    if (auto st = push_now(item)) return {*st, {}};
    if (!block) return {channel_status::full, {}};
    detail::waiter w;
    w.payload = &item;
    const detail::wait_info info{wait_kind::channel, "channel push", this, -1, true};
    switch (senders_.wait(lk, w, info, ec, deadline)) {
    case detail::park_result::completed:
      return {w.status == sender_taken ? channel_status::success : channel_status::closed, {}};
    case detail::park_result::deadline:
      return {channel_status::timeout, {}};
    default:
      return interrupted(ec);
    }
  }

  // Under lock_: completes a pop at once if it can; nullopt when it would wait.
  std::optional<channel_status> pop_now(std::optional<T>& out) {
    if (!items_.empty()) {
      out.emplace(std::move(items_.front()));
      items_.pop_front();
      // Room freed: the longest-waiting sender moves its item in.
      if (detail::waiter* s = senders_.pop()) {
        items_.push_back(std::move(*static_cast<T*>(s->payload)));
        s->status = sender_taken;
        s->wake();
      }
      return channel_status::success;
    }
    if (detail::waiter* s = senders_.pop()) { // rendezvous: take straight from the sender
      out.emplace(std::move(*static_cast<T*>(s->payload)));
      s->status = sender_taken;
      s->wake();
      return channel_status::success;
    }
    if (closed_) return channel_status::closed;
    return std::nullopt;
  }

  result pop_impl(std::optional<T>& out, bool block, detail::steady_time deadline = detail::no_deadline) {
    boost::system::error_code ec;
    if (block && detail::current_wait_context().checkpoint(ec)) return interrupted(ec);
    detail::spinlock_lock lk(lock_);
    if (auto st = pop_now(out)) return {*st, {}};
    if (!block) return {channel_status::empty, {}};
    detail::waiter w;
    w.payload = &out;
    const detail::wait_info info{wait_kind::channel, "channel pop", this, -1, true};
    switch (receivers_.wait(lk, w, info, ec, deadline)) {
    case detail::park_result::completed:
      return {out ? channel_status::success : channel_status::closed, {}};
    case detail::park_result::deadline:
      return {channel_status::timeout, {}};
    default:
      return interrupted(ec);
    }
  }

  // The parts `coop::select` uses; the caller holds lock_ where noted.
  template <class U> friend class detail::recv_case;
  template <class U> friend class detail::send_case;

  mutable detail::spinlock lock_;
  std::deque<T> items_;
  std::size_t capacity_;
  bool closed_ = false;
  detail::wait_queue receivers_;
  detail::wait_queue senders_;
};

} // namespace coop
