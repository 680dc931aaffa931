// coop/offload.hpp — run a blocking function on a shared pool of OS threads,
// suspending only the calling fiber.
#pragma once

#include <coop/detail/park.hpp>
#include <coop/error.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace coop {

/// Settings of the process-wide offload pool.
struct offload_options {
  /// Most threads the pool runs at once; beyond them jobs queue, first in
  /// first out. 0: the default, the environment variable
  /// `COOP_OFFLOAD_THREADS` if set to a positive number, else the number
  /// of hardware threads (`std::thread::hardware_concurrency()`), at least 2.
  std::size_t max_threads = 0;
  /// A pool thread that found no work for this long exits (0: at once).
  std::chrono::milliseconds idle_timeout{10000};
};

/// Replaces the pool's settings; thread-safe, takes effect at once: a raised
/// bound starts threads for queued jobs, surplus threads exit after their
/// current job.
void set_offload_options(const offload_options& options);
/// Sets `offload_options::max_threads` alone (0: the default).
void set_offload_threads(std::size_t n);

/// A snapshot of the pool, for diagnostics and tests.
struct offload_stats {
  std::size_t max_threads = 0; ///< the bound in force
  std::size_t threads = 0;     ///< pool threads alive now
  std::size_t idle = 0;        ///< of which waiting for work
  std::size_t queued = 0;      ///< jobs waiting for a thread
  std::size_t running = 0;     ///< jobs being run
  std::uint64_t completed = 0; ///< jobs taken off the queue and done with, since the process started
};
offload_stats get_offload_stats();

namespace detail {

/// One offloaded call, shared by its caller and the pool (see `offload`).
/// Its stage moves under `lock_`: queued → running → done, or to abandoned
/// when the caller's wait is interrupted first.
class offload_job {
public:
  offload_job() = default;
  offload_job(const offload_job&) = delete;
  offload_job& operator=(const offload_job&) = delete;
  virtual ~offload_job() = default;

  /// On a pool thread: runs the function unless the job was abandoned before
  /// it started, destroys it, and completes the caller's wait.
  void execute() noexcept;

private:
  friend void run_offload(const std::shared_ptr<offload_job>& job, boost::system::error_code& ec);
  friend struct offload_site;
  enum class stage { queued, running, done, abandoned };

  /// Calls the function, keeps its result or exception, destroys the function.
  virtual void invoke() noexcept = 0;
  /// Destroys the function without calling it.
  virtual void drop() noexcept = 0;

  spinlock lock_;
  stage stage_ = stage::queued;
  boost::fibers::waker waker_; ///< the waiting caller, while `armed_`
  bool armed_ = false;
};

/// Passes `wait_context::checkpoint`, queues `job` and parks the caller
/// until it completed (`ec` clear) or an interruption abandoned it (`ec`
/// says which). On a pool thread, runs the job inline. Throws
/// std::system_error when no pool thread can be started at all.
void run_offload(const std::shared_ptr<offload_job>& job, boost::system::error_code& ec);

template <class F> using offload_result_t = std::invoke_result_t<std::decay_t<F>&>;

template <class Fn, class R> class offload_fn_job final : public offload_job {
  static_assert(!std::is_rvalue_reference_v<R>, "coop::offload: the function must not return an rvalue reference");
  using stored = std::conditional_t<std::is_lvalue_reference_v<R>, std::remove_reference_t<R>*, R>;

public:
  template <class F> explicit offload_fn_job(F&& fn) : fn_(std::in_place, std::forward<F>(fn)) {}

  /// The caller, after a completed wait: the result, or fn's exception rethrown.
  R take() {
    if (error_) std::rethrow_exception(error_);
    if constexpr (std::is_lvalue_reference_v<R>)
      return **value_;
    else if constexpr (!std::is_void_v<R>)
      return std::move(*value_);
  }

private:
  void invoke() noexcept override {
    try {
      if constexpr (std::is_void_v<R>)
        std::invoke(*fn_);
      else if constexpr (std::is_lvalue_reference_v<R>)
        value_.emplace(std::addressof(std::invoke(*fn_)));
      else
        value_.emplace(std::invoke(*fn_));
    } catch (...) {
      error_ = std::current_exception();
    }
    fn_.reset();
  }
  void drop() noexcept override { fn_.reset(); }

  std::optional<Fn> fn_;
  std::optional<std::conditional_t<std::is_void_v<R>, char, stored>> value_;
  std::exception_ptr error_;
};

} // namespace detail

/// Runs `fn()` on a thread of a process-wide pool and returns its result (or
/// rethrows its exception); only the calling fiber waits, the other fibers
/// of its thread keep running. For calls that block in the kernel or burn
/// CPU: file I/O, `getaddrinfo`, a blocking client library, compression.
///
/// The pool has at most `offload_options::max_threads` threads, started on
/// demand; further calls queue (FIFO) until a thread is free. An idle thread
/// exits after `idle_timeout`. Pool threads never run fibers; `fn` runs
/// there as on any plain thread (coop's blocking calls work in it with
/// plain-thread rules). `fn` is moved into the pool and destroyed there,
/// right after it returns.
///
/// Interruption follows the rules of every blocking call: a cancel or a
/// `coop::timeout` of the caller abandons the wait and throws
/// `coop::cancelled` / `coop::timeout_error`. An abandoned `fn` that is
/// already running runs to completion on its thread and its result (or
/// exception) is dropped; one still queued never runs. An interruption due
/// when `offload` is called fails it at once without queuing `fn`.
///
/// Called on a plain thread, `offload` also uses the pool (so a
/// `coop::timeout` on that thread bounds the wait the same way); called on a
/// pool thread (from inside an offloaded function) it runs `fn` inline, so
/// nested offloads cannot deadlock a full pool. At process exit the pool
/// finishes the jobs already queued and joins its threads: exit waits for an
/// abandoned function that is still running. Do not call `offload` from
/// static destructors.
///
/// Thread-safety: callable from any fiber or thread, concurrently.
///
/// Example:
/// @code
///   std::string text = coop::offload([&] { return read_whole_file(path); });
///   coop::timeout t(2s);
///   auto addr = coop::offload([&] { return slow_lookup(name); });  // timeout_error after 2 s
/// @endcode
template <class F> detail::offload_result_t<F> offload(F&& fn) {
  using R = detail::offload_result_t<F>;
  auto job = std::make_shared<detail::offload_fn_job<std::decay_t<F>, R>>(std::forward<F>(fn));
  boost::system::error_code ec;
  detail::run_offload(job, ec);
  throw_on_error(ec, "coop::offload");
  return job->take();
}

} // namespace coop
