// coop/pool.hpp — at most N fibers at once (gevent's Pool).
#pragma once

#include <coop/semaphore.hpp>
#include <coop/task.hpp>
#include <coop/wait_group.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <ranges>
#include <utility>
#include <vector>

namespace coop {

class pool;
namespace detail {
template <class View, class Fn> class imap_range;
}

/// A bounded group of fibers on one runtime thread: at most `capacity()` of
/// its members run at once. `spawn` waits (parks) for a free slot; `map` and
/// `imap_unordered` run a function over a range with at most that many calls
/// in flight. Like `coop::task_group` (and built the same way: a member
/// leaves the pool when it ends), `cancel()` cancels every member, `join()`
/// waits for all, and the destructor cancels the members still running and
/// waits for them (a shielded wait). A member's exception stays in its task
/// (`spawn` returns it); in `map` and `imap_unordered` it is rethrown to the
/// caller.
///
/// Thread-safety: a pool lives on one runtime thread, the one that first
/// spawns into it: call `spawn`, `map`, `imap_unordered`, `join` and `cancel`
/// from fibers of that thread (another thread gets `coop::usage_error`);
/// members run there. The tasks `spawn` returns may be used from anywhere.
/// Destroy the pool only when no fiber waits in its `spawn` or `join`, and
/// after every `imap_unordered` range taken from it.
///
/// Do not wait for a free slot from inside a member of the same full pool
/// (it would wait for itself).
///
/// Example:
/// @code
///   coop::pool p(10);                                      // 10 downloads at a time
///   std::vector<std::string> pages = p.map(urls, [](const std::string& u) { return fetch(u); });
///   for (auto& page : p.imap_unordered(urls, fetch))       // as they complete
///     std::cout << page.size() << '\n';
/// @endcode
class pool {
public:
  /// A pool of `capacity` slots; `usage_error` when it is 0.
  explicit pool(std::size_t capacity);
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;
  /// Cancels the members still running and waits for them (shielded).
  ~pool();

  /// Waits for a free slot, then starts `fn` in a new fiber of the pool.
  /// The wait is a blocking call: `timeout_error` / `cancelled` when
  /// interrupted (nothing starts then); `usage_error` off the pool's thread.
  /// Like `coop::spawn`, the new fiber first runs when the caller blocks or
  /// yields, and dropping the returned task cancels the member and waits for
  /// it (`detach()` it to let it run on in the pool).
  template <class F> task<detail::spawn_result_t<F>> spawn(F&& fn) {
    boost::system::error_code ec;
    auto t = spawn(std::forward<F>(fn), ec);
    throw_on_error(ec, "coop::pool::spawn");
    return t;
  }
  /// Like spawn, reporting an interruption in `ec` and returning an empty task.
  template <class F> task<detail::spawn_result_t<F>> spawn(F&& fn, boost::system::error_code& ec) {
    using R = detail::spawn_result_t<F>;
    detail::worker& w = bind_thread("coop::pool::spawn");
    slots_.acquire(ec);
    if (ec) return {};
    return launch<R>(w, [f = std::decay_t<F>(std::forward<F>(fn))](detail::task_state<R>& st) mutable { st.run(f); });
  }

  /// Calls `fn(x)` for every element `x` of `range` in the pool's fibers,
  /// at most `capacity()` at once, and returns the results in input order.
  /// When a call throws, the calls still running are cancelled and awaited,
  /// and the first exception (the first to happen) is rethrown; so is an
  /// interruption of the calling fiber (after the same clean-up). The range
  /// is read on the calling fiber, as calls are started; `fn` and the
  /// elements of a forward range are used in place (not copied), other
  /// elements are copied into their call. `fn` must return a value.
  template <std::ranges::input_range Range, class F>
  requires std::ranges::viewable_range<Range>
  auto map(Range&& range, F&& fn);

  /// Like `map`, but returns an input range that yields the results as the
  /// calls complete (in completion order), started lazily as it is iterated,
  /// with at most `capacity()` calls in flight (finished results included:
  /// memory stays bounded however long the input). A call's exception is
  /// rethrown from the iterator's increment (`begin()` included) when its
  /// turn comes, so none is swallowed; it ends the iteration and cancels the
  /// calls still running. Destroying the range early cancels the calls in
  /// flight and waits for them (their results are discarded). Iterate it on
  /// the pool's thread; each increment is a blocking call. The range owns an
  /// rvalue input (`p.imap_unordered(std::vector{...}, fn)` is safe) and a
  /// copy of `fn`.
  template <std::ranges::input_range Range, class F>
  requires std::ranges::viewable_range<Range>
  auto imap_unordered(Range&& range, F&& fn);

  /// Waits until every member has finished. Interruptible like any blocking call.
  void join();
  void join(boost::system::error_code& ec);
  /// Waits at most `d`: true when every member has finished, false when `d` passed.
  template <class Rep, class Period> bool join_for(std::chrono::duration<Rep, Period> d) {
    return join_until(detail::deadline_after(d));
  }
  bool join_until(std::chrono::steady_clock::time_point deadline);

  /// Cancels every member still running (see `task::cancel`). The pool stays usable.
  void cancel();

  /// Members running now.
  std::size_t size() const noexcept { return members_.size(); }
  bool empty() const noexcept { return members_.empty(); }
  /// The most members that run at once.
  std::size_t capacity() const noexcept { return capacity_; }
  /// Slots free now.
  std::size_t free_count() const noexcept { return slots_.available(); }

private:
  template <class View, class Fn> friend class detail::imap_range;
  using member_list = std::list<std::shared_ptr<detail::task_base>>;

  /// The worker of the pool's thread; binds the pool on first use.
  detail::worker& bind_thread(const char* what);
  /// Holding a slot: starts `body(task_state<R>&)` in a new member fiber.
  template <class R, class Body> task<R> launch(detail::worker& w, Body&& body);
  /// On the pool's thread, as a member ends: frees its slot.
  void left(member_list::iterator it) noexcept;

  std::size_t capacity_;
  semaphore slots_;
  wait_group running_;
  member_list members_;
  detail::worker* owner_ = nullptr;
};

} // namespace coop

#include <coop/detail/pool_imap.hpp>

namespace coop {

template <class R, class Body> task<R> pool::launch(detail::worker& w, Body&& body) {
  member_list::iterator it;
  bool inserted = false;
  std::shared_ptr<detail::task_state<R>> st;
  try {
    it = members_.insert(members_.end(), nullptr);
    inserted = true;
    // The pool is left after the task finished, whether its function ran or not.
    st = detail::make_task<R>([this, it, b = std::forward<Body>(body)](detail::task_state<R>& state) mutable {
      struct leave {
        pool* p;
        member_list::iterator it;
        ~leave() { p->left(it); }
      } on_exit{this, it};
      b(state);
    });
    *it = st;
  } catch (...) {
    if (inserted) members_.erase(it);
    slots_.release();
    throw;
  }
  running_.add(1);
  try {
    detail::launch_fiber(w, st);
  } catch (...) {
    left(it);
    throw;
  }
  return task<R>(std::move(st));
}

template <std::ranges::input_range Range, class F>
requires std::ranges::viewable_range<Range>
auto pool::map(Range&& range, F&& fn) {
  using fn_ref = std::reference_wrapper<std::remove_reference_t<F>>;
  using view = std::views::all_t<Range>;
  using R = typename detail::imap_range<view, fn_ref>::result_type;
  std::vector<std::optional<R>> results; // by input position
  if constexpr (std::ranges::sized_range<Range>) results.reserve(std::ranges::size(range));
  {
    detail::imap_range<view, fn_ref> calls(*this, std::views::all(std::forward<Range>(range)), fn_ref(fn));
    while (auto item = calls.next_item()) {
      if (results.size() <= item->index) results.resize(item->index + 1);
      results[item->index] = std::move(item->value);
    }
  }
  std::vector<R> out;
  out.reserve(results.size());
  for (auto& r : results)
    out.push_back(std::move(*r));
  return out;
}

template <std::ranges::input_range Range, class F>
requires std::ranges::viewable_range<Range>
auto pool::imap_unordered(Range&& range, F&& fn) {
  return detail::imap_range<std::views::all_t<Range>, std::decay_t<F>>(
      *this, std::views::all(std::forward<Range>(range)), std::forward<F>(fn));
}

} // namespace coop
