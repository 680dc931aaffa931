#include <coop/offload.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

#include <pthread.h>
#include <signal.h>

namespace coop::detail {
namespace {

/// True on the pool's own threads: an offload there runs inline.
thread_local bool on_pool_thread = false;

std::size_t default_thread_bound() {
  if (const char* env = std::getenv("COOP_OFFLOAD_THREADS")) {
    char* end = nullptr;
    unsigned long long n = std::strtoull(env, &end, 10);
    if (end != env && *end == '\0' && n > 0 && n <= 100000) return static_cast<std::size_t>(n);
  }
  // One thread per CPU: on a 2-CPU machine 2 threads gave the rest of a
  // server lower latency than 4. At least 2, so that one long call does not
  // hold up every other offloaded call on a 1-CPU machine (or where the
  // count is unknown: 0).
  return std::max<std::size_t>(2, std::thread::hardware_concurrency());
}

/// The process-wide pool: at most `max_threads_` threads, started when a job
/// finds no idle one, leaving after `idle_timeout_` without work. Jobs wait
/// in a FIFO queue. Every member is guarded by `m_`.
///
/// A thread that leaves cannot join itself: it moves its handle to
/// `exited_`, and the next thread to leave (or the destructor) joins it.
class offload_pool {
public:
  offload_pool() = default;
  offload_pool(const offload_pool&) = delete;
  offload_pool& operator=(const offload_pool&) = delete;

  /// At static destruction: the threads finish the queue, then are joined.
  ~offload_pool() {
    std::unique_lock lk(m_);
    stopping_ = true;
    work_cv_.notify_all();
    exit_cv_.wait(lk, [&] { return threads_.empty(); });
    std::vector<std::thread> to_join = std::move(exited_);
    lk.unlock();
    for (auto& t : to_join)
      t.join();
  }

  void submit(std::shared_ptr<offload_job> job) {
    std::unique_lock lk(m_);
    if (stopping_) throw usage_error("coop::offload: called while the process exits (from a static destructor?)");
    queue_.push_back(std::move(job));
    if (idle_ != 0) work_cv_.notify_one();
    try {
      grow();
    } catch (...) {
      if (!threads_.empty()) return; // a running thread will take the job
      queue_.pop_back();
      throw;
    }
  }

  void configure(const offload_options& options) {
    std::unique_lock lk(m_);
    max_threads_ = options.max_threads != 0 ? options.max_threads : default_thread_bound();
    idle_timeout_ = options.idle_timeout;
    ++settings_version_;
    work_cv_.notify_all(); // idle threads re-wait with the new timeout; beyond a lowered bound, they leave
    try {
      grow();
    } catch (...) {
      // Jobs stay queued for the threads there are; the next submit retries.
    }
  }

  offload_options options() {
    std::unique_lock lk(m_);
    return {max_threads_, idle_timeout_};
  }

  offload_stats stats() {
    std::unique_lock lk(m_);
    return {max_threads_, threads_.size(), idle_, queue_.size(), running_, completed_};
  }

private:
  /// Starts threads while more jobs wait than idle threads could take,
  /// up to the bound. With `m_` held.
  void grow() {
    while (queue_.size() > idle_ && threads_.size() < max_threads_)
      start_thread();
  }

  void start_thread() {
    auto it = threads_.emplace(threads_.end());
    // Pool threads take no asynchronous signals (like Asio's internal
    // threads): they inherit a full mask, then the caller's is restored.
    sigset_t all, previous;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &previous);
    try {
      *it = std::thread([this, it] { work(it); }); // work() waits for `m_`, held here
    } catch (...) {
      ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
      threads_.erase(it);
      throw;
    }
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }

  void work(std::list<std::thread>::iterator self) {
    on_pool_thread = true;
    std::unique_lock lk(m_);
    for (;;) {
      if (threads_.size() > max_threads_) break; // the bound was lowered
      if (!queue_.empty()) {
        std::shared_ptr<offload_job> job = std::move(queue_.front());
        queue_.pop_front();
        ++running_;
        lk.unlock();
        job->execute();
        job.reset(); // an abandoned job's result dies here
        lk.lock();
        --running_;
        ++completed_;
        continue;
      }
      if (stopping_) break;
      ++idle_;
      const std::uint64_t version = settings_version_;
      bool woken = work_cv_.wait_for(lk, idle_timeout_, [&] {
        return !queue_.empty() || stopping_ || threads_.size() > max_threads_ || settings_version_ != version;
      });
      --idle_;
      if (!woken) break; // idle too long
    }
    std::vector<std::thread> to_join = std::move(exited_);
    exited_.clear();
    exited_.push_back(std::move(*self));
    threads_.erase(self);
    exit_cv_.notify_all();
    lk.unlock();
    for (auto& t : to_join)
      t.join(); // threads that left before this one; they are past their last lock
  }

  std::mutex m_;
  std::condition_variable work_cv_; ///< a job was queued, the pool stops, or the settings changed
  std::condition_variable exit_cv_; ///< a thread left
  std::deque<std::shared_ptr<offload_job>> queue_;
  std::list<std::thread> threads_;  ///< live threads
  std::vector<std::thread> exited_; ///< threads that left, to join
  std::size_t idle_ = 0;            ///< threads waiting in work_cv_
  std::size_t running_ = 0;         ///< jobs being run
  std::uint64_t completed_ = 0;     ///< jobs run (or dropped, when abandoned before they started)
  std::size_t max_threads_ = default_thread_bound();
  std::chrono::milliseconds idle_timeout_{offload_options{}.idle_timeout};
  std::uint64_t settings_version_ = 0; ///< bumped by configure()
  bool stopping_ = false;
};

offload_pool& pool() {
  static offload_pool p;
  return p;
}

} // namespace

/// The park site of an offload's caller: completed by the pool thread, under
/// the job's lock, from another thread (the waker crosses threads safely).
struct offload_site {
  offload_job& job;
  bool completed() const noexcept { return job.stage_ == offload_job::stage::done; }
  void arm(const boost::fibers::waker& w) noexcept {
    job.waker_ = w;
    job.armed_ = true;
  }
  bool withdraw(spinlock_lock&, const boost::system::error_code&) noexcept {
    // Queued: the pool will skip it. Running: it finishes, its result is dropped.
    job.stage_ = offload_job::stage::abandoned;
    job.armed_ = false;
    return true;
  }
};

void offload_job::execute() noexcept {
  {
    spinlock_lock lk(lock_);
    if (stage_ == stage::abandoned) {
      lk.unlock();
      drop();
      return;
    }
    stage_ = stage::running;
  }
  invoke();
  spinlock_lock lk(lock_);
  if (stage_ != stage::running) return; // abandoned meanwhile
  stage_ = stage::done;
  // Waking a fiber of a runtime thread (or a plain thread) from here is
  // Boost.Fiber's remote wake-up; it gives this thread Boost.Fiber's default
  // per-thread scheduler, which never runs a fiber here.
  if (armed_) waker_.wake();
}

void run_offload(const std::shared_ptr<offload_job>& job, boost::system::error_code& ec) {
  wait_context& wc = current_wait_context();
  if (wc.checkpoint(ec)) return;
  if (on_pool_thread) {
    job->execute();
    return;
  }
  pool().submit(job);
  const wait_info info{wait_kind::offload, "offload", job.get()};
  spinlock_lock lk(job->lock_);
  offload_site site{*job};
  park(wc, lk, site, info, no_deadline, ec);
}

} // namespace coop::detail

namespace coop {

void set_offload_options(const offload_options& options) {
  detail::pool().configure(options);
}

void set_offload_threads(std::size_t n) {
  offload_options options = detail::pool().options();
  options.max_threads = n;
  detail::pool().configure(options);
}

offload_stats get_offload_stats() {
  return detail::pool().stats();
}

} // namespace coop
