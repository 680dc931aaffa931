// coop/select.hpp — wait on several channel operations at once; the first
// that can complete does, the others do not happen.
#pragma once

#include <coop/channel.hpp>
#include <coop/detail/wait_queue.hpp>
#include <coop/error.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <optional>
#include <tuple>
#include <utility>

namespace coop {

/// Which case of a `select` completed, and how (`success` or `closed`).
struct select_result {
  std::size_t index;
  channel_status status;
};

namespace detail {

template <class T> class recv_case {
public:
  recv_case(channel<T>& ch, std::optional<T>& out) noexcept : ch_(&ch), out_(&out) {}
  spinlock& lock() const noexcept { return ch_->lock_; }
  std::optional<channel_status> now() { return ch_->pop_now(*out_); }
  void enqueue(waiter& w) {
    w.payload = out_;
    ch_->receivers_.enqueue(w);
  }
  void remove(waiter& w) noexcept {
    spinlock_lock lk(ch_->lock_);
    ch_->receivers_.remove(w);
  }
  channel_status after_wait(const waiter&) const noexcept {
    return *out_ ? channel_status::success : channel_status::closed;
  }

private:
  channel<T>* ch_;
  std::optional<T>* out_;
};

template <class T> class send_case {
public:
  send_case(channel<T>& ch, T& item) noexcept : ch_(&ch), item_(&item) {}
  spinlock& lock() const noexcept { return ch_->lock_; }
  std::optional<channel_status> now() { return ch_->push_now(*item_); }
  void enqueue(waiter& w) {
    w.payload = item_;
    w.status = 0;
    ch_->senders_.enqueue(w);
  }
  void remove(waiter& w) noexcept {
    spinlock_lock lk(ch_->lock_);
    ch_->senders_.remove(w);
  }
  channel_status after_wait(const waiter& w) const noexcept {
    return w.status == channel<T>::sender_taken ? channel_status::success : channel_status::closed;
  }

private:
  channel<T>* ch_;
  T* item_;
};

std::size_t next_select_start() noexcept;

template <class... Cases>
std::optional<select_result> select_impl(bool block, boost::system::error_code& ec, Cases&... cases) {
  constexpr std::size_t n = sizeof...(Cases);
  static_assert(n > 0, "coop::select needs at least one case");
  ec.clear();
  fiber_state* fs = current_fiber_state();
  if (fs && block)
    if ((ec = fs->pending_interrupt())) return std::nullopt;

  // Lock every channel involved, in address order (once each), so that the
  // check "can a case complete now?" and the queueing are one atomic step.
  std::array<spinlock*, n> locks{&cases.lock()...};
  std::sort(locks.begin(), locks.end());
  auto last = std::unique(locks.begin(), locks.end());
  auto lock_all = [&] {
    for (auto it = locks.begin(); it != last; ++it)
      (*it)->lock();
  };
  auto unlock_all = [&] {
    for (auto it = last; it != locks.begin();)
      (*--it)->unlock();
  };

  lock_all();
  // Try the cases starting at a rotating position, so no case starves.
  std::size_t start = next_select_start() % n;
  std::optional<select_result> done;
  for (std::size_t k = 0; k < n && !done; ++k) {
    std::size_t i = (start + k) % n;
    std::size_t j = 0;
    ((j++ == i && !done ? (void)(done = [&]() -> std::optional<select_result> {
       if (auto st = cases.now()) return select_result{i, *st};
       return std::nullopt;
     }())
                        : (void)0),
     ...);
  }
  if (done || !block) {
    unlock_all();
    return done;
  }

  select_state st(fs);
  std::array<waiter, n> waiters;
  {
    int index = 0;
    ((st.attach(waiters[static_cast<std::size_t>(index)], index),
      cases.enqueue(waiters[static_cast<std::size_t>(index)]), ++index),
     ...);
  }
  unlock_all();

  struct unlinker {
    std::tuple<Cases&...> cs;
    std::array<waiter, n>& ws;
    static void unlink(void* self, int i) noexcept {
      auto& u = *static_cast<unlinker*>(self);
      std::size_t j = 0;
      std::apply(
          [&](auto&... c) {
            ((j++ == static_cast<std::size_t>(i) ? c.remove(u.ws[static_cast<std::size_t>(i)]) : void()), ...);
          },
          u.cs);
    }
  } u{std::tuple<Cases&...>(cases...), waiters};
  st.wait(n, &unlinker::unlink, &u);
  for (std::size_t i = 0; i < n; ++i)
    unlinker::unlink(&u, static_cast<int>(i));

  int w = st.winner();
  if (w == select_state::interrupted) {
    ec = fs ? fs->pending_interrupt() : boost::system::error_code{};
    if (!ec) ec = make_error_code(errc::timed_out);
    return std::nullopt;
  }
  select_result r{static_cast<std::size_t>(w), channel_status::success};
  std::size_t j = 0;
  ((j++ == r.index ? (void)(r.status = cases.after_wait(waiters[r.index])) : (void)0), ...);
  return r;
}

} // namespace detail

/// A `select` case: receive from `ch` into `out` (left empty if the channel
/// turns out closed and drained).
template <class T> detail::recv_case<T> recv(channel<T>& ch, std::optional<T>& out) {
  return {ch, out};
}
/// A `select` case: push `item` into `ch`. `item` is moved from only if this
/// case is the one that completes.
template <class T> detail::send_case<T> send(channel<T>& ch, T& item) {
  return {ch, item};
}

/// Waits until one of the cases can complete, completes exactly that one and
/// returns which (`index` in argument order) and how (`success`, or `closed`
/// when its channel was closed). No case polls: the fiber parks in every
/// channel's wait queue at once. Cases that can complete at once are tried
/// from a rotating position, so none starves. Throws `timeout_error` /
/// `cancelled` like any blocking call.
///
/// Thread-safety: the channels may be used concurrently from any thread.
///
/// Example:
/// @code
///   std::optional<job> j; std::optional<int> stop;
///   switch (coop::select(coop::recv(jobs, j), coop::recv(control, stop)).index) { ... }
/// @endcode
template <class... Cases> select_result select(Cases... cases) {
  boost::system::error_code ec;
  auto r = detail::select_impl(true, ec, cases...);
  throw_on_error(ec, "coop::select");
  return *r;
}
/// Like `select`, reporting interruption into `ec` (the result is then empty).
template <class... Cases> std::optional<select_result> select(boost::system::error_code& ec, Cases... cases) {
  return detail::select_impl(true, ec, cases...);
}
/// Completes one case that can complete now, or returns empty without waiting.
template <class... Cases> std::optional<select_result> try_select(Cases... cases) {
  boost::system::error_code ec;
  return detail::select_impl(false, ec, cases...);
}

} // namespace coop
