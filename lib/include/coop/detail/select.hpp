// coop/detail/select.hpp — the machinery behind coop::select.
#pragma once

#include <coop/channel.hpp>
#include <coop/detail/wait_queue.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace coop {

/// Which case of a `select` completed, and how (`success`, or `closed` when
/// its channel was closed).
struct select_result {
  std::size_t index;
  channel_status status;
};

namespace detail {

// A case: enabled(), lock() (nullptr: no channel), now() under the locks,
// enqueue()/remove() of its waiter, after_wait(), deadline().

template <class T> class recv_case {
public:
  recv_case(channel<T>* ch, std::optional<T>& out) noexcept : ch_(ch), out_(&out) {}
  bool enabled() const noexcept { return ch_ != nullptr; }
  spinlock* lock() const noexcept { return ch_ ? &ch_->lock_ : nullptr; }
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
  steady_time deadline() const noexcept { return no_deadline; }

private:
  channel<T>* ch_;
  std::optional<T>* out_;
};

template <class T> class send_case {
public:
  send_case(channel<T>* ch, T& item) noexcept : ch_(ch), item_(&item) {}
  bool enabled() const noexcept { return ch_ != nullptr; }
  spinlock* lock() const noexcept { return ch_ ? &ch_->lock_ : nullptr; }
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
  steady_time deadline() const noexcept { return no_deadline; }

private:
  channel<T>* ch_;
  T* item_;
};

/// A case that becomes ready at a point in time (Go's `time.After`).
class after_case {
public:
  explicit after_case(steady_time at) noexcept : at_(at) {}
  bool enabled() const noexcept { return true; }
  spinlock* lock() const noexcept { return nullptr; }
  std::optional<channel_status> now() const {
    if (std::chrono::steady_clock::now() >= at_) return channel_status::success;
    return std::nullopt;
  }
  void enqueue(waiter&) noexcept {}
  void remove(waiter&) noexcept {}
  channel_status after_wait(const waiter&) const noexcept { return channel_status::success; }
  steady_time deadline() const noexcept { return at_; }

private:
  steady_time at_;
};

std::size_t next_select_start() noexcept;

/// Calls `f(case, index)` for case `i` of `cases`.
template <class F, class... Cases> void visit_case(std::size_t i, F&& f, Cases&... cases) {
  std::size_t j = 0;
  ((j++ == i ? (void)f(cases, i) : (void)0), ...);
}

template <class... Cases>
std::optional<select_result> select_impl(bool block, boost::system::error_code& ec, Cases&... cases) {
  constexpr std::size_t n = sizeof...(Cases);
  static_assert(n > 0, "coop::select needs at least one case");
  ec.clear();
  if (block && current_wait_context().checkpoint(ec)) return std::nullopt;

  // Lock every channel involved, in address order (once each), so that the
  // check "can a case complete now?" and the queueing are one atomic step.
  std::array<spinlock*, n> locks{cases.lock()...};
  std::sort(locks.begin(), locks.end());
  auto last = std::unique(locks.begin(), locks.end());
  auto first = std::find_if(locks.begin(), last, [](spinlock* l) { return l != nullptr; });
  auto lock_all = [&] {
    for (auto it = first; it != last; ++it)
      (*it)->lock();
  };
  auto unlock_all = [&] {
    for (auto it = last; it != first;)
      (*--it)->unlock();
  };

  lock_all();
  // Try the cases starting at a rotating position, so no case starves.
  std::size_t start = next_select_start() % n;
  std::optional<select_result> done;
  for (std::size_t k = 0; k < n && !done; ++k)
    visit_case((start + k) % n,
               [&](auto& c, std::size_t i) {
                 if (!c.enabled()) return;
                 if (auto st = c.now()) done = select_result{i, *st};
               },
               cases...);
  if (done || !block) {
    unlock_all();
    return done;
  }

  std::array<waiter, n> waiters;
  struct unlinker {
    std::tuple<Cases&...> cs;
    std::array<waiter, n>& ws;
    static void unlink(void* self, std::size_t i) noexcept {
      auto& u = *static_cast<unlinker*>(self);
      std::apply(
          [&](auto&... c) {
            visit_case(
                i,
                [&](auto& one, std::size_t k) {
                  if (one.enabled()) one.remove(u.ws[k]);
                },
                c...);
          },
          u.cs);
    }
  } u{std::tuple<Cases&...>(cases...), waiters};
  select_state st(n, &unlinker::unlink, &u);
  steady_time own_deadline = no_deadline;
  std::size_t timer_case = 0;
  {
    std::size_t index = 0;
    (
        [&](auto& c) {
          waiters[index].join_select(st, static_cast<int>(index));
          if (c.enabled()) c.enqueue(waiters[index]);
          if (c.deadline() < own_deadline) {
            own_deadline = c.deadline();
            timer_case = index;
          }
          ++index;
        }(cases),
        ...);
  }
  unlock_all();

  static const wait_info info{wait_kind::select, "select", nullptr, -1, true};
  switch (st.wait(info, own_deadline, ec)) {
  case park_result::interrupted:
    return std::nullopt;
  case park_result::deadline:
    return select_result{timer_case, channel_status::success};
  case park_result::completed:
    // Also when a case won while an interruption was withdrawing the wait:
    // the completion wins (reporting the interruption would lose what the
    // case did, a received item), and the interruption stays due.
    break;
  }
  select_result r{static_cast<std::size_t>(st.winner()), channel_status::success};
  visit_case(
      r.index, [&](auto& c, std::size_t i) { r.status = c.after_wait(waiters[i]); }, cases...);
  return r;
}

template <class T> struct is_error_code_ref : std::false_type {};
template <> struct is_error_code_ref<boost::system::error_code&> : std::true_type {};

template <class... Args> constexpr bool last_is_error_code() {
  if constexpr (sizeof...(Args) == 0)
    return false;
  else
    return is_error_code_ref<std::tuple_element_t<sizeof...(Args) - 1, std::tuple<Args...>>>::value;
}

template <class Tuple, std::size_t... I>
std::optional<select_result> select_with_ec(Tuple&& args, std::index_sequence<I...>) {
  auto& ec = std::get<sizeof...(I)>(args);
  return [&](auto... cases) { return select_impl(true, ec, cases...); }(std::get<I>(args)...);
}

} // namespace detail
} // namespace coop
