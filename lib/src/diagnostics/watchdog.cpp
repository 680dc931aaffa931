// lib/src/diagnostics/watchdog.cpp — the watchdog: one process-wide thread
// that looks at every runtime thread from outside. It reports fibers that run
// too long without yielding (stall reports), runtimes whose fibers all wait on
// each other (deadlock reports), and prints every fiber on request
// (coop::dump_fibers, SIGQUIT; the dump itself is dump.cpp's).
//
// The runtime threads pay for this with two relaxed stores per fiber switch
// (scheduler::pick_next), one per idle period, and five per wait (the wait
// snapshot); the watchdog reads them without stopping anybody.
//
// Only when a stall report is due does the watchdog interrupt the stalled
// thread, for its backtrace (backtrace.cpp).
#include "diagnostics/watchdog.hpp"
#include "core/scheduler.hpp"
#include "core/worker.hpp"
#include "diagnostics/backtrace.hpp"
#include "diagnostics/dump.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace coop::detail {

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// The write end of the watchdog's wake-up pipe, for the SIGQUIT handler.
std::atomic<int> wake_fd{-1};

void on_sigquit(int) {
  int saved = errno;
  int fd = wake_fd.load(std::memory_order_relaxed);
  if (fd >= 0) [[maybe_unused]]
    auto ignored = ::write(fd, "q", 1);
  errno = saved;
}

/// Writes `text` to stderr in one call, so lines of other threads do not cut into it.
void to_stderr(const char* p, std::size_t left) noexcept {
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

void to_stderr(const std::string& text) noexcept {
  to_stderr(text.data(), text.size());
}

/// Writes a line formatted on the stack, without allocating: what the
/// watchdog says when one of its reports failed. Diagnostics must never end
/// a program, and memory running out while a report is made is the usual
/// way they fail.
[[gnu::format(printf, 1, 2)]] void say_without_allocating(const char* format, ...) noexcept {
  char line[512];
  va_list args;
  va_start(args, format);
  int n = std::vsnprintf(line, sizeof line, format, args);
  va_end(args);
  if (n > 0) to_stderr(line, std::min(static_cast<std::size_t>(n), sizeof line - 1));
}

/// Why the report being made failed; call it in a `catch (...)` block.
const char* why_it_failed() noexcept {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return "out of memory";
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception";
  }
}

/// Reads a millisecond count from the environment; `fallback` when unset.
milliseconds env_ms(const char* name, milliseconds fallback) {
  const char* text = std::getenv(name);
  if (!text || !*text) return fallback;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0' || v < 0) {
    to_stderr(std::string("coop: ignoring ") + name + "=" + text + " (not a number of milliseconds)\n");
    return fallback;
  }
  return milliseconds(v);
}

// --- Whether a stalled thread ran --------------------------------------------

/// The CPU time thread `t` has used, in ns; -1 when the kernel does not say.
std::int64_t thread_cpu_ns(pthread_t t) noexcept {
  clockid_t id{};
  timespec ts{};
  if (::pthread_getcpuclockid(t, &id) != 0 || ::clock_gettime(id, &ts) != 0) return -1;
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

/// The scheduling state of thread `tid` of this process, from
/// /proc/self/task/<tid>/stat: 'R' runnable (on a CPU or waiting for one),
/// 'S' or 'D' blocked in the kernel, 'T' or 't' stopped; 0 when unknown.
char thread_state(int tid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char text[512];
  ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (n <= 0) return 0;
  text[n] = '\0';
  const char* name_end = std::strrchr(text, ')'); // "tid (name) state ...": the name may hold anything
  return name_end && name_end[1] == ' ' ? name_end[2] : 0;
}

/// Converts `scheduler::ticks()` to nanoseconds: the rate is measured
/// against steady_clock from the first call on (1 tick per ns until 100 ms
/// have passed, the rate assumed before).
class tick_rate {
public:
  double ns_per_tick() {
    auto now = clock::now();
    std::uint64_t t = scheduler::ticks();
    if (origin_ticks_ == 0) {
      origin_ticks_ = t;
      origin_time_ = now;
    }
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - origin_time_).count();
    if (ns < 100'000'000 || t <= origin_ticks_) return 1.0;
    return static_cast<double>(ns) / static_cast<double>(t - origin_ticks_);
  }

private:
  std::uint64_t origin_ticks_ = 0;
  clock::time_point origin_time_{};
};

class watchdog {
public:
  static watchdog& instance() {
    // Never destroyed: a runtime's threads may still be ending (and so
    // unregistering here) while the process exits and runs its static
    // destructors, e.g. a runtime that was leaked (TSan saw that as a
    // use-after-free in core.misuse). Its thread ends with the process.
    static watchdog* w = new watchdog;
    return *w;
  }

  void add(worker& w) {
    std::lock_guard lk(mutex_);
    w.group_number = 0;
    for (worker* other : workers_)
      if (other->group == w.group) w.group_number = other->group_number;
    if (w.group_number == 0) w.group_number = ++last_group_;
    auto now = clock::now();
    w.watch = {w.switches.load(std::memory_order_relaxed),
               now,
               now,
               false,
               false,
               thread_cpu_ns(w.thread),
               static_cast<int>(::gettid())};
    workers_.push_back(&w);
    auto& capture = captures_[&w];
    capture = std::make_unique<stack_capture>();
    set_this_thread_capture(capture.get()); // add runs on w's thread
    if (w.options.dump_on_sigquit && sigquit_users_++ == 0) {
      struct sigaction sa {};
      sa.sa_handler = &on_sigquit;
      sa.sa_flags = SA_RESTART;
      sigemptyset(&sa.sa_mask);
      ::sigaction(SIGQUIT, &sa, &previous_quit_);
    }
    if (!thread_ && pipe_[0] >= 0) thread_ = new std::thread([this] { run(); });
    poke('w'); // the period may have changed
  }

  void remove(worker& w) noexcept {
    std::unique_lock lk(mutex_);
    workers_.erase(std::remove(workers_.begin(), workers_.end(), &w), workers_.end());
    set_this_thread_capture(nullptr); // remove runs on w's thread: no handler is running
    captures_.erase(&w);
    if (w.options.dump_on_sigquit && --sigquit_users_ == 0) ::sigaction(SIGQUIT, &previous_quit_, nullptr);
    // A runtime that ends just after a stall report lets the backtrace out
    // first, since the process may end next (a plain flag and short sleeps,
    // nothing a fork could leave locked; bounded all the same).
    for (int i = 0; printing_ && i < 5000; ++i) {
      lk.unlock();
      std::this_thread::sleep_for(milliseconds(1));
      lk.lock();
    }
  }

  /// See with_watched_workers().
  void with_workers(const std::function<void(std::span<worker* const>)>& f) {
    std::lock_guard lk(mutex_);
    f(workers_);
  }

private:
  watchdog() {
    open_pipe();
    ::pthread_atfork([] { instance().mutex_.lock(); }, [] { instance().mutex_.unlock(); },
                     [] { instance().after_fork_in_child(); });
  }

  void open_pipe() {
    if (::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
      pipe_[0] = pipe_[1] = -1;
      to_stderr("coop: no watchdog (pipe2 failed): no stall or deadlock reports, no dump on SIGQUIT\n");
    }
    wake_fd.store(pipe_[1]);
  }

  /// A forked child has only the thread that forked: no watchdog thread
  /// (one starts with the next runtime), and of the runtime threads at most
  /// the forking one. Its pipe must not wake the parent's watchdog.
  void after_fork_in_child() {
    thread_ = nullptr; // that thread does not exist here; its object is left alone
    printing_ = false;
    backtraces_.clear();
    for (int fd : pipe_)
      if (fd >= 0) ::close(fd);
    open_pipe();
    pthread_t self = ::pthread_self();
    workers_.erase(std::remove_if(workers_.begin(), workers_.end(),
                                  [self](worker* w) { return !::pthread_equal(w->thread, self); }),
                   workers_.end());
    std::erase_if(captures_, [this](const auto& c) {
      return std::find(workers_.begin(), workers_.end(), c.first) == workers_.end();
    });
    for (worker* w : workers_)
      w->watch.tid = static_cast<int>(::gettid()); // the thread has another id in the child
    mutex_.unlock();
  }

  void poke(char c) noexcept {
    if (pipe_[1] >= 0) [[maybe_unused]]
      auto ignored = ::write(pipe_[1], &c, 1);
  }

  /// How often to look: half the smallest stall threshold, a quarter of the
  /// smallest deadlock threshold; -1 (sleep until poked) when nothing is on.
  int period_ms() const {
    milliseconds p = milliseconds::max();
    for (const worker* w : workers_) {
      if (w->options.stall_threshold.count() > 0) p = std::min(p, w->options.stall_threshold / 2);
      if (w->options.deadlock_threshold.count() > 0) p = std::min(p, w->options.deadlock_threshold / 4);
      if (w->options.scheduling_delay_threshold.count() > 0) p = std::min(p, w->options.scheduling_delay_threshold / 2);
    }
    if (p == milliseconds::max()) return -1;
    return static_cast<int>(std::clamp<milliseconds::rep>(p.count(), 5, 1000));
  }

  /// Never lets an exception out (that would end the process): a report
  /// that fails, memory running out most likely, gives a short line instead.
  void run() {
    for (;;) {
      int timeout;
      {
        std::lock_guard lk(mutex_);
        timeout = period_ms();
      }
      pollfd p{pipe_[0], POLLIN, 0};
      int r = ::poll(&p, 1, timeout);
      bool dump_requested = false;
      if (r > 0) {
        char buf[64];
        ssize_t n;
        while ((n = ::read(pipe_[0], buf, sizeof buf)) > 0)
          dump_requested |= std::find(buf, buf + n, 'q') != buf + n;
      }
      if (dump_requested) {
        try {
          to_stderr(dump_all());
        } catch (...) {
          say_without_allocating("coop: fiber dump (SIGQUIT) dropped: %s\n", why_it_failed());
        }
      }
      std::vector<raw_backtrace> backtraces;
      try {
        std::lock_guard lk(mutex_);
        look(clock::now());
        backtraces.swap(backtraces_);
        printing_ = !backtraces.empty();
      } catch (...) {
        say_without_allocating("coop: watchdog: a look at the runtime threads failed: %s\n", why_it_failed());
      }
      if (backtraces.empty()) continue;
      for (const raw_backtrace& b : backtraces) {
        try {
          to_stderr(format_backtrace(b));
        } catch (...) {
          say_without_allocating("%s  (no frames: %s)\n", b.header.c_str(), why_it_failed());
        }
      }
      std::lock_guard lk(mutex_);
      printing_ = false;
    }
  }

  void look(clock::time_point now) {
    for (worker* w : workers_)
      look_for_stall(*w, now);
    for (worker* w : workers_)
      look_for_delay(*w, now);
    for (worker* w : workers_)
      look_for_deadlock(*w, now);
  }

  void look_for_stall(worker& w, clock::time_point now) {
    worker_watch& watch = w.watch;
    auto switches = w.switches.load(std::memory_order_relaxed);
    bool idle = w.idle.load(std::memory_order_relaxed);
    if (switches != watch.switches) {
      if (watch.stall_reported) note_stall_length(w, now - watch.busy_since); // the stall ended
      watch.switches = switches;
      watch.busy_since = watch.quiet_since = now;
      watch.busy_since_cpu_ns = thread_cpu_ns(w.thread);
      watch.stall_reported = watch.deadlock_checked = false;
      return;
    }
    if (idle) {
      if (watch.stall_reported) note_stall_length(w, now - watch.busy_since);
      watch.busy_since = now;
      watch.busy_since_cpu_ns = thread_cpu_ns(w.thread);
      watch.stall_reported = false;
      return;
    }
    auto threshold = w.options.stall_threshold;
    if (threshold.count() <= 0 || watch.stall_reported || now - watch.busy_since < threshold) return;
    // No switch for the threshold, but did the thread run? On a machine with
    // more runnable threads than CPUs the OS keeps it off its CPU at times:
    // runnable ('R') yet short of the threshold in CPU time, it waits for a
    // CPU and its fiber is not to blame (it is looked at again next time).
    // A thread blocked in the kernel uses no CPU either, but there the fiber
    // made a call that blocks the thread: a stall.
    std::int64_t cpu = thread_cpu_ns(w.thread);
    std::int64_t used = cpu >= 0 && watch.busy_since_cpu_ns >= 0 ? cpu - watch.busy_since_cpu_ns : -1;
    char state = thread_state(watch.tid);
    if (state == 'R' && used >= 0 && used < std::chrono::nanoseconds(threshold).count()) return;
    watch.stall_reported = true;
    w.counters.stalls.add();
    note_stall_length(w, now - watch.busy_since);
    report_stall(w, now - watch.busy_since, used, state);
  }

  /// The metrics' longest stall: a stall is measured when reported, and
  /// again when it ends (to within the watchdog's look interval).
  static void note_stall_length(worker& w, clock::duration d) noexcept {
    const auto ns = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
    if (ns > w.counters.longest_stall_ns.get()) w.counters.longest_stall_ns.set(ns);
  }

  /// Reports the stall of `w` (`ran` without a switch, `used_ns` of CPU
  /// time meanwhile, -1 if unknown; `state` as thread_state()), and asks
  /// for its backtrace.
  void report_stall(worker& w, clock::duration ran, std::int64_t used_ns, char state) {
    std::uint64_t id = w.running.load(std::memory_order_relaxed);
    auto ms = std::chrono::duration_cast<milliseconds>(ran).count();
    std::string who;
    try {
      if (id != 0) who = fiber_label(w, id);
      std::string line = "coop: stall: ";
      if (id != 0)
        line += who + " on runtime " + std::to_string(w.group_number) + " thread " + std::to_string(w.index) +
                " has run for " + std::to_string(ms) + " ms without yielding";
      else
        line += "runtime " + std::to_string(w.group_number) + " thread " + std::to_string(w.index) + " has spent " +
                std::to_string(ms) + " ms in its scheduler without running a fiber (Asio handlers, fiber clean-up)";
      line += " (coop::run_options::stall_threshold " + std::to_string(w.options.stall_threshold.count()) + " ms)";
      auto used_ms = used_ns / 1'000'000;
      if (state == 'S' || state == 'D')
        line += "; its thread is blocked in a system call";
      else if (state == 'T' || state == 't')
        line += "; its thread is stopped (SIGSTOP or a debugger)";
      else if (state == 'R' && used_ns >= 0 && used_ms < ms * 3 / 4)
        line += "; on a CPU for " + std::to_string(used_ms) + " ms of them, waiting for one the rest of the time";
      to_stderr(line + "\n"); // now: naming the frames may take a while
    } catch (...) {
      if (id != 0)
        say_without_allocating("coop: stall: fiber %llu on runtime %u thread %u has run for %lld ms without yielding "
                               "(no more said: %s)\n",
                               static_cast<unsigned long long>(id), w.group_number, w.index, static_cast<long long>(ms),
                               why_it_failed());
      else
        say_without_allocating("coop: stall: runtime %u thread %u has spent %lld ms in its scheduler without running "
                               "a fiber (no more said: %s)\n",
                               w.group_number, w.index, static_cast<long long>(ms), why_it_failed());
      return;
    }
    try {
      if (auto trace = backtrace_of(w)) {
        trace->header = "coop: stall backtrace of " +
                        (id != 0 ? who + " on runtime " : std::string("the scheduler of runtime ")) +
                        std::to_string(w.group_number) + " thread " + std::to_string(w.index) + ":\n";
        backtraces_.push_back(std::move(*trace));
      }
    } catch (...) {
      say_without_allocating("coop: stall backtrace of runtime %u thread %u dropped: %s\n", w.group_number, w.index,
                             why_it_failed());
    }
  }

  /// Reports the longest scheduling delay the worker's scheduler noted (a
  /// fiber that waited the threshold or longer in a ready queue), at most
  /// once a second per worker; the delays of that second are summed up in
  /// the next report.
  void look_for_delay(worker& w, clock::time_point now) {
    auto threshold = w.options.scheduling_delay_threshold;
    if (threshold.count() <= 0) return;
    const double rate = ticks_.ns_per_tick();
    auto threshold_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(threshold).count();
    w.delay_report_ticks.store(std::max<std::uint64_t>(1, static_cast<std::uint64_t>(threshold_ns / rate)),
                               std::memory_order_relaxed);
    if (w.delay_window_start == clock::time_point{}) {
      w.delay_window_cpu_ns = thread_cpu_ns(w.thread);
      w.delay_window_start = now;
    }
    if (w.delay_reported_at != clock::time_point{} && now - w.delay_reported_at < std::chrono::seconds(1)) return;
    std::uint64_t worst = w.worst_delay.exchange(0, std::memory_order_relaxed);
    if (worst == 0) return;
    std::uint64_t id = w.worst_delay_fiber.load(std::memory_order_relaxed);
    std::uint64_t times = w.delays_over.exchange(0, std::memory_order_relaxed);
    auto waited_ms = static_cast<long long>(static_cast<double>(worst) * rate / 1e6);
    if (waited_ms < threshold.count()) return; // counted at 1 GHz before the rate was known
    // The thread's share of a CPU since the last report: a thread the OS
    // kept waiting (a loaded machine) delays its fibers too.
    std::string cpu_note;
    std::int64_t cpu = thread_cpu_ns(w.thread);
    if (cpu >= 0 && w.delay_window_cpu_ns >= 0 && now > w.delay_window_start) {
      auto wall = std::chrono::duration_cast<std::chrono::nanoseconds>(now - w.delay_window_start).count();
      auto share = 100 * (cpu - w.delay_window_cpu_ns) / wall;
      if (share < 50)
        cpu_note = "; its thread was on a CPU only " + std::to_string(share) +
                   "% of the time since the last report: the machine is overloaded";
    }
    w.delay_window_cpu_ns = cpu;
    w.delay_window_start = now;
    w.delay_reported_at = now;
    to_stderr("coop: scheduling delay: " + fiber_label(w, id) + " on runtime " + std::to_string(w.group_number) +
              " thread " + std::to_string(w.index) + " waited " + std::to_string(waited_ms) +
              " ms to run after it was ready (" + std::to_string(times) + (times == 1 ? " fiber" : " fibers") +
              " waited " + std::to_string(threshold.count()) +
              " ms or more since the last report): the thread has more ready work than it runs in time; "
              "fibers that compute for long can yield more often or move the work to coop::offload "
              "(coop::run_options::scheduling_delay_threshold)" +
              cpu_note + "\n");
  }

  /// The stalled thread's stack, captured there by the stall signal and
  /// named later; empty when the thread has switched meanwhile, the
  /// signal is not ours, or no capture came in time (capture_stack).
  std::optional<raw_backtrace> backtrace_of(worker& w) {
    auto it = captures_.find(&w);
    if (it == captures_.end() || !capture_stack(*it->second, w.thread)) return {};
    // Ordered after the capture: unchanged, the stack is the stalled one's.
    if (w.switches.load(std::memory_order_relaxed) != w.watch.switches) return {};
    return copy_of(*it->second);
  }

  /// Once every worker of `w`'s group has been quiet (no switch) and idle for
  /// the threshold, looks at its fibers, once per quiet period.
  void look_for_deadlock(worker& w, clock::time_point now) {
    auto threshold = w.options.deadlock_threshold;
    if (threshold.count() <= 0 || w.watch.deadlock_checked) return;
    for (worker* other : workers_)
      if (other->group == w.group &&
          (!other->idle.load(std::memory_order_relaxed) || now - other->watch.quiet_since < threshold))
        return;
    for (worker* member : workers_)
      if (member->group == w.group) member->watch.deadlock_checked = true;
    // A look in place first, which stops at the first fiber that a timer or
    // I/O can wake (an idle server's: at once): copying every fiber would
    // allocate about 100 bytes each, every time the runtime goes quiet.
    std::size_t fibers = 0;
    for (worker* member : workers_)
      if (member->group == w.group && !only_others_can_wake(*member, fibers)) return;
    if (fibers == 0) return;
    auto waited = std::chrono::duration_cast<milliseconds>(threshold).count();
    bool deadlocked = false;
    try {
      // The copies for the report, checked again: a fiber may have been
      // woken since the look.
      std::vector<thread_rows> rows;
      for (worker* member : workers_) {
        if (member->group != w.group) continue;
        rows.push_back(snapshot(*member));
        for (const auto& f : rows.back().fibers)
          if (!only_another_can_end(f.what, f.internal, f.until)) return;
      }
      deadlocked = true;
      to_stderr("coop: possible deadlock: every fiber of runtime " + std::to_string(w.group_number) +
                " has waited at least " + std::to_string(waited) +
                " ms on channels, locks, events or joins that no I/O, timer, signal or offloaded job can end; "
                "only another fiber or thread could wake them (coop::run_options::deadlock_threshold)\n" +
                format_dump(rows));
    } catch (...) {
      if (deadlocked)
        say_without_allocating("coop: possible deadlock: every fiber of runtime %u has waited at least %lld ms on "
                               "coop primitives (no more said: %s)\n",
                               w.group_number, static_cast<long long>(waited), why_it_failed());
      else
        say_without_allocating("coop: the deadlock check of runtime %u, quiet for %lld ms, failed: %s\n",
                               w.group_number, static_cast<long long>(waited), why_it_failed());
    }
  }

  std::mutex mutex_;
  std::vector<worker*> workers_;
  std::thread* thread_ = nullptr;
  int pipe_[2] = {-1, -1};
  unsigned last_group_ = 0;
  int sigquit_users_ = 0;
  std::map<const worker*, std::unique_ptr<stack_capture>> captures_;
  /// Backtraces of the stalls look() reported, printed (after their report
  /// lines) once mutex_ is released; printing_ is set meanwhile.
  std::vector<raw_backtrace> backtraces_;
  bool printing_ = false;
  tick_rate ticks_;
  struct sigaction previous_quit_ {};
};

} // namespace

run_options with_environment(run_options opts) {
  opts.stall_threshold = env_ms("COOP_STALL_MS", opts.stall_threshold);
  opts.deadlock_threshold = env_ms("COOP_DEADLOCK_MS", opts.deadlock_threshold);
  opts.scheduling_delay_threshold = env_ms("COOP_SCHED_DELAY_MS", opts.scheduling_delay_threshold);
  if (const char* admin = std::getenv("COOP_ADMIN"); admin && *admin) opts.admin_socket = admin;
  return opts;
}

void watch_worker(worker& w) {
  watchdog::instance().add(w);
}

void unwatch_worker(worker& w) noexcept {
  watchdog::instance().remove(w);
}

void with_watched_workers(const std::function<void(std::span<worker* const>)>& f) {
  watchdog::instance().with_workers(f);
}

} // namespace coop::detail
