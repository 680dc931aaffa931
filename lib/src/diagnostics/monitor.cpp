// The watchdog: one process-wide thread that looks at every runtime thread
// from outside. It reports fibers that run too long without yielding (stall
// reports), runtimes whose fibers all wait on each other (deadlock reports),
// and prints every fiber on request (coop::dump_fibers, SIGQUIT).
//
// The runtime threads pay for this with two relaxed stores per fiber switch
// (scheduler::pick_next), one per idle period, and five per wait (the wait
// snapshot); the watchdog reads them without stopping anybody.
//
// Only when a stall report is due does the watchdog interrupt the stalled
// thread: a signal (stall_signal()) whose handler copies the raw return
// addresses of the running stack into a buffer prepared for that thread. The
// watchdog turns them into names and source lines itself, off the stalled
// thread.
#include "diagnostics/monitor.hpp"
#include "core/scheduler.hpp"
#include "core/worker.hpp"
#include <coop/detail/task_state.hpp>
#include <coop/diagnostics.hpp>

#include <boost/stacktrace/safe_dump_to.hpp>

#include <cxxabi.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#ifdef COOP_HAVE_LIBBACKTRACE
#include <backtrace.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <sstream>
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

std::string seconds(double s) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(3) << s << " s";
  return out.str();
}

/// One live fiber, copied out of its worker's registry.
struct fiber_row {
  std::uint64_t id;
  std::string name;
  const void* task;
  const char* what; // null: not waiting
  const void* object;
  int fd;
  std::int64_t since_ns;
  steady_time::rep until;
  bool internal;
};

struct thread_rows {
  const worker* w;
  bool idle;
  std::uint64_t running;
  std::vector<fiber_row> fibers;
};

/// The CPU time the calling thread has used, in ns.
std::int64_t own_cpu_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

/// See take_registry_hold_stats().
std::atomic<std::int64_t> longest_hold_cpu_ns{0};
std::atomic<std::size_t> most_fibers_per_hold{0};

/// Measures one hold of a registry lock, from construction (just after
/// locking) to `done` (just before unlocking).
class hold_meter {
public:
  hold_meter() noexcept : start_(own_cpu_ns()) {}
  void done(std::size_t fibers) noexcept {
    std::int64_t held = own_cpu_ns() - start_;
    if (held > longest_hold_cpu_ns.load(std::memory_order_relaxed))
      longest_hold_cpu_ns.store(held, std::memory_order_relaxed);
    if (fibers > most_fibers_per_hold.load(std::memory_order_relaxed))
      most_fibers_per_hold.store(fibers, std::memory_order_relaxed);
  }

private:
  std::int64_t start_;
};

/// Fibers copied per hold of a registry lock: about 10 us here, the most
/// a dump makes its runtime thread wait to spawn or end a fiber (100,000
/// fibers in one hold took 30-50 ms of CPU).
constexpr std::size_t registry_batch = 64;

/// Calls `visit(fs)` for every live fiber of `w`, newest first, holding
/// `w.registry_mutex` for `registry_batch` fibers at a time and calling
/// `between()` without it before each batch; `visit` returns false to stop.
/// A fiber that ends meanwhile is skipped (`worker::forget` moves the
/// cursor past it); one launched meanwhile may be missed. One walk per
/// worker at a time: the caller holds the watchdog's mutex.
template <class Visit, class Between> void walk_registry(worker& w, Visit visit, Between between) {
  for (bool first = true;; first = false) {
    between();
    std::lock_guard lk(w.registry_mutex);
    hold_meter meter;
    fiber_state* fs = first ? w.fibers : w.registry_cursor;
    std::size_t n = 0;
    for (; fs && n < registry_batch; ++n, fs = fs->registry_next)
      if (!visit(*fs)) {
        fs = nullptr;
        break;
      }
    w.registry_cursor = fs;
    meter.done(n);
    if (!fs) return;
  }
}

thread_rows snapshot(worker& w) {
  thread_rows t{&w, w.idle.load(std::memory_order_relaxed), w.running.load(std::memory_order_relaxed), {}};
  std::size_t expected;
  {
    std::lock_guard lk(w.registry_mutex);
    expected = w.fiber_count;
  }
  t.fibers.reserve(expected + registry_batch);
  walk_registry(
      w,
      [&](const fiber_state& fs) {
        const wait_snapshot& s = fs.snapshot;
        const char* what = s.what.load(std::memory_order_acquire);
        t.fibers.push_back({fs.id, fs.name, fs.task, what, s.object.load(std::memory_order_relaxed),
                            s.fd.load(std::memory_order_relaxed), s.since_ns.load(std::memory_order_relaxed),
                            s.until.load(std::memory_order_relaxed), s.internal.load(std::memory_order_relaxed)});
        return true;
      },
      [&] { // room for a batch, made without the lock
        if (t.fibers.capacity() - t.fibers.size() < registry_batch) t.fibers.reserve(2 * t.fibers.capacity());
      });
  std::reverse(t.fibers.begin(), t.fibers.end()); // oldest first
  return t;
}

/// The dump's text for the threads in `rows` (see coop::dump_fibers).
std::string format_dump(const std::vector<thread_rows>& rows) {
  std::map<const void*, std::uint64_t> fiber_of_task;
  std::size_t total = 0;
  for (const auto& t : rows) {
    total += t.fibers.size();
    for (const auto& f : t.fibers)
      if (f.task) fiber_of_task[f.task] = f.id;
  }
  const std::int64_t now_ns = coarse_now_ns();
  const auto now = clock::now().time_since_epoch().count();
  std::ostringstream out;
  out << "coop: " << total << (total == 1 ? " fiber" : " fibers") << " on " << rows.size()
      << (rows.size() == 1 ? " runtime thread\n" : " runtime threads\n");
  for (const auto& t : rows) {
    out << "runtime " << t.w->group_number << " thread " << t.w->index << ": " << t.fibers.size()
        << (t.fibers.size() == 1 ? " fiber" : " fibers") << (t.idle ? ", idle in the reactor" : "") << "\n";
    for (const auto& f : t.fibers) {
      out << "  fiber " << f.id;
      if (!f.name.empty()) out << " \"" << f.name << "\"";
      if (!f.what) {
        out << (f.id == t.running && !t.idle ? ": running\n" : ": ready\n");
        continue;
      }
      out << ": waiting " << seconds(static_cast<double>(std::max<std::int64_t>(0, now_ns - f.since_ns)) / 1e9)
          << " on " << f.what;
      std::string detail;
      if (f.fd >= 0) detail = "fd " + std::to_string(f.fd);
      if (auto it = fiber_of_task.find(f.object); f.object && it != fiber_of_task.end())
        detail = "fiber " + std::to_string(it->second);
      else if (f.object && f.fd < 0) {
        std::ostringstream o;
        o << f.object;
        detail = o.str();
      }
      if (f.until != no_deadline.time_since_epoch().count()) {
        if (!detail.empty()) detail += ", ";
        detail += "until +" + seconds(static_cast<double>(std::max<steady_time::rep>(0, f.until - now)) *
                                      clock::period::num / clock::period::den);
      }
      if (!detail.empty()) out << " (" << detail << ")";
      out << "\n";
    }
  }
  return out.str();
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

// --- Backtraces of stalled threads -------------------------------------------

/// Raw frames kept per capture (coop's signal frames, the stalled code, and
/// what lies below it down to the fiber's entry), and frames printed at most.
constexpr std::size_t max_raw_frames = 128;
constexpr std::size_t max_printed_frames = 32;
/// How long the watchdog waits for the stalled thread to take the signal.
constexpr milliseconds capture_wait{50};

/// The signal that asks a runtime thread for its stack: SIGRTMIN + 6, a
/// real-time one, so it is queued and not shared with any default meaning.
int stall_signal() noexcept {
  return SIGRTMIN + 6;
}

/// One runtime thread's capture buffer: allocated by the watchdog when the
/// thread starts being watched, written only by the signal handler on that
/// thread, read by the watchdog once `done` equals the `requested` number.
struct stack_capture {
  std::atomic<std::uint32_t> requested{0};
  std::atomic<std::uint32_t> done{0};
  std::uintptr_t pc = 0; ///< where the signal found the thread
  void* frames[max_raw_frames + 1]{};
};

/// The calling runtime thread's buffer, set while the watchdog watches it.
thread_local stack_capture* this_thread_capture = nullptr;

std::uintptr_t interrupted_pc(void* uctx) noexcept {
#if defined(__x86_64__)
  return static_cast<std::uintptr_t>(static_cast<ucontext_t*>(uctx)->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  return static_cast<std::uintptr_t>(static_cast<ucontext_t*>(uctx)->uc_mcontext.pc);
#else
  (void)uctx;
  return 0;
#endif
}

/// Async-signal-safe: no allocation, no lock; _Unwind_Backtrace (through
/// Boost.Stacktrace's safe_dump_to) walks the stack into the buffer.
void on_stall_signal(int, siginfo_t*, void* uctx) {
  int saved = errno;
  stack_capture* c = this_thread_capture;
  if (c) {
    std::uint32_t n = c->requested.load(std::memory_order_acquire);
    if (n != c->done.load(std::memory_order_relaxed)) {
      c->pc = interrupted_pc(uctx);
      boost::stacktrace::safe_dump_to(0, c->frames, sizeof c->frames); // ends with a null frame
      c->done.store(n, std::memory_order_release);
    }
  }
  errno = saved;
}

/// Whether the backtrace signal is ours to send: installs the handler the
/// first time (and leaves it: a signal that arrives late must still find
/// it); false when the program has a disposition of its own for the signal,
/// or COOP_STALL_BACKTRACE=0.
bool stall_signal_ready() noexcept {
  static const bool wanted = [] {
    const char* text = std::getenv("COOP_STALL_BACKTRACE");
    return !(text && std::strcmp(text, "0") == 0);
  }();
  if (!wanted) return false;
  struct sigaction current {};
  if (::sigaction(stall_signal(), nullptr, &current) != 0) return false;
  if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == &on_stall_signal) return true;
  if (current.sa_handler != SIG_DFL) return false; // the program's own: leave it alone
  struct sigaction sa {};
  sa.sa_sigaction = &on_stall_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  return ::sigaction(stall_signal(), &sa, nullptr) == 0;
}

std::string demangled(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(name, nullptr, nullptr, &status), &std::free);
  return status == 0 && d ? std::string(d.get()) : std::string(name);
}

/// One printed frame: a function (demangled; empty when unknown) and where
/// (a source file and line, or else the file of the module).
struct frame_text {
  std::uintptr_t pc;
  std::string function;
  std::string file;
  int line; ///< 0: `file` is the module
};

#ifdef COOP_HAVE_LIBBACKTRACE
/// libbacktrace's state for this process, made on first use (on the
/// watchdog thread) and kept: libbacktrace has no way to free it.
backtrace_state* symbols() {
  static backtrace_state* state = ::backtrace_create_state(
      nullptr, 1, [](void*, const char*, int) {}, nullptr);
  return state;
}
#endif

/// Names for `pc` (a return address, or the interrupted instruction when
/// `exact`): with debug information, one frame per inlined call, innermost
/// first, with file and line; otherwise the symbol's name.
std::vector<frame_text> describe(std::uintptr_t pc, bool exact) {
  std::uintptr_t lookup = exact ? pc : pc - 1; // inside the call instruction
  std::vector<frame_text> out;
#ifdef COOP_HAVE_LIBBACKTRACE
  if (backtrace_state* state = symbols()) {
    ::backtrace_pcinfo(
        state, lookup,
        [](void* data, std::uintptr_t, const char* file, int line, const char* function) {
          auto& frames = *static_cast<std::vector<frame_text>*>(data);
          frames.push_back({0, function ? demangled(function) : std::string(), file ? file : "", line});
          return frames.size() >= max_printed_frames ? 1 : 0;
        },
        [](void*, const char*, int) {}, &out);
    if (out.empty() || out.back().function.empty()) {
      std::string name;
      ::backtrace_syminfo(
          state, lookup,
          [](void* data, std::uintptr_t, const char* symbol, std::uintptr_t, std::uintptr_t) {
            if (symbol) *static_cast<std::string*>(data) = demangled(symbol);
          },
          [](void*, const char*, int) {}, &name);
      if (out.empty()) out.push_back({0, {}, {}, 0});
      out.back().function = name;
    }
  }
#endif
  if (out.empty()) out.push_back({0, {}, {}, 0});
  if (out.back().function.empty()) {
    Dl_info info{};
    if (::dladdr(reinterpret_cast<void*>(lookup), &info)) {
      if (info.dli_sname)
        out.back().function = demangled(info.dli_sname);
      else if (info.dli_fname && out.back().file.empty())
        out.back().file = info.dli_fname;
    }
  }
  for (auto& f : out)
    f.pc = pc;
  return out;
}

/// Whether `f` is where a coop fiber starts: coop's task code that calls
/// the fiber's function, or Boost.Fiber and Boost.Context below it. With
/// debug information, inlined frames are named without their namespace,
/// hence the look at the file as well.
bool is_entry(const frame_text& f) {
  auto file_has = [&](const char* part) { return f.line != 0 && f.file.find(part) != std::string::npos; };
  return f.function.starts_with("coop::detail::task_state<") || f.function.starts_with("coop::detail::spawned_task<") ||
         f.function.starts_with("coop::detail::launch_fiber") || file_has("/src/core/task.cpp") ||
         f.function.starts_with("boost::fibers::") || f.function.starts_with("boost::context::") ||
         file_has("/coop/detail/task_state.hpp") || file_has("/coop/task.hpp") || file_has("/boost/fiber/") ||
         file_has("/boost/context/");
}

/// Whether `f`, found below every frame of the program's own, belongs to
/// the fiber's start: the entry (is_entry), the standard library's
/// std::invoke, std::apply and std::bind, any of coop's code (a coop
/// lambda that calls the program's function: task_group, serve...), or
/// Boost.Context's assembly trampolines and nameless frames.
bool is_below_fiber_function(const frame_text& f) {
  auto file_has = [&](const char* part) { return f.line != 0 && f.file.find(part) != std::string::npos; };
  return is_entry(f) || f.function.starts_with("std::") || f.function.starts_with("coop::") || file_has("/c++/") ||
         file_has("/include/coop/") || f.function.ends_with("_fcontext") || (f.function.empty() && f.line == 0);
}

/// A capture copied out of its buffer, to be printed after the watchdog
/// lets go of its lock (naming frames may read debug information).
struct raw_backtrace {
  std::uintptr_t pc = 0; ///< the interrupted instruction
  std::vector<std::uintptr_t> frames;
  std::string header; ///< the line that says whose stack it is
};

raw_backtrace copy_of(const stack_capture& c) {
  raw_backtrace r{c.pc, {}, {}};
  for (std::size_t i = 0; i < max_raw_frames && c.frames[i]; ++i)
    r.frames.push_back(reinterpret_cast<std::uintptr_t>(c.frames[i]));
  return r;
}

/// Whether `f` is coop's signal handler.
bool is_handler_frame(const frame_text& f) {
  return f.function.find("on_stall_signal") != std::string::npos;
}

/// The backtrace block of a capture: its header, then the frames from the
/// one the signal interrupted (coop's handler frames above it are cut) down
/// to the program's outermost frame on the stack (the fiber's entry below
/// it is cut), at most `max_printed_frames` lines: the innermost frames and
/// the outermost ones, with a line for those left out between.
std::string format_backtrace(const raw_backtrace& c) {
  const std::size_t count = c.frames.size();
  // The interrupted frame is the one whose address is the interrupted
  // instruction; failing that (no such frame: an unwinder or a sanitizer
  // that shows the handler otherwise), the one after the handler's caller,
  // the signal return trampoline.
  std::size_t first = count;
  for (std::size_t i = 0; i < count; ++i)
    if (c.frames[i] == c.pc) {
      first = i;
      break;
    }
  if (first == count) {
    first = 0;
    for (std::size_t i = 0; i < count && i < 8; ++i)
      for (const frame_text& f : describe(c.frames[i], false))
        if (is_handler_frame(f)) first = std::min(count, i + 2);
  }
  std::vector<frame_text> frames;
  for (std::size_t i = first; i < count; ++i) {
    std::uintptr_t pc = c.frames[i];
    for (frame_text& f : describe(pc, i == first && pc == c.pc))
      frames.push_back(std::move(f));
  }
  // Coop's and Boost.Fiber's frames between the program's stay (a callback
  // run by a coop or Boost.Fiber call shows the caller's line below them);
  // what lies below the program's outermost frame is the fiber's entry. A
  // capture that filled its buffer may not reach it: nothing is cut then.
  if (count < max_raw_frames) {
    std::size_t end = frames.size();
    while (end > 0 && is_below_fiber_function(frames[end - 1]))
      --end;
    if (end > 0) frames.resize(end);
  }
  const std::size_t outermost = max_printed_frames / 3;
  const std::size_t innermost = max_printed_frames - 1 - outermost;
  std::ostringstream out;
  out << c.header;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    if (frames.size() > max_printed_frames && i == innermost) {
      std::size_t skipped = frames.size() - innermost - outermost;
      out << "  ... " << skipped << " frames ...\n";
      i += skipped - 1;
      continue;
    }
    const frame_text& f = frames[i];
    out << "  #" << i << " ";
    if (f.function.empty())
      out << "0x" << std::hex << f.pc << std::dec;
    else
      out << f.function;
    if (!f.file.empty()) out << (f.line != 0 ? " at " : " in ") << f.file;
    if (f.line != 0) out << ":" << f.line;
    out << "\n";
  }
  return out.str();
}

/// "fiber 12 \"name\"" for a fiber of `w` (its name looked up a few
/// fibers per hold of the registry lock), or what id 0 stands for.
std::string fiber_label(worker& w, std::uint64_t id) {
  if (id == 0) return "a context of Boost.Fiber's own (the dispatcher or the thread's main)";
  std::string name;
  walk_registry(
      w,
      [&](const fiber_state& fs) {
        if (fs.id != id) return true;
        if (!fs.name.empty()) name = " \"" + fs.name + "\"";
        return false;
      },
      [] {});
  return "fiber " + std::to_string(id) + name;
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
    this_thread_capture = capture.get(); // add runs on w's thread
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
    this_thread_capture = nullptr; // remove runs on w's thread: no handler is running
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

  std::string dump() {
    std::lock_guard lk(mutex_);
    std::vector<thread_rows> rows;
    for (worker* w : workers_)
      rows.push_back(snapshot(*w));
    return format_dump(rows);
  }

  /// Live fibers of the workers in `group` (every worker when null).
  std::size_t count(const void* group) {
    std::lock_guard lk(mutex_);
    std::size_t n = 0;
    for (worker* w : workers_) {
      if (group && w->group != group) continue;
      std::lock_guard rl(w->registry_mutex);
      n += w->fiber_count;
    }
    return n;
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
          to_stderr(dump());
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
      watch.switches = switches;
      watch.busy_since = watch.quiet_since = now;
      watch.busy_since_cpu_ns = thread_cpu_ns(w.thread);
      watch.stall_reported = watch.deadlock_checked = false;
      return;
    }
    if (idle) {
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
    report_stall(w, now - watch.busy_since, used, state);
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
  /// signal is not ours, or no capture came within `capture_wait`.
  std::optional<raw_backtrace> backtrace_of(worker& w) {
    auto it = captures_.find(&w);
    if (it == captures_.end() || !stall_signal_ready()) return {};
    stack_capture& c = *it->second;
    std::uint32_t n = c.requested.load(std::memory_order_relaxed) + 1;
    c.requested.store(n, std::memory_order_release);
    if (::pthread_kill(w.thread, stall_signal()) != 0) return {};
    auto give_up = clock::now() + capture_wait;
    while (c.done.load(std::memory_order_acquire) != n) {
      if (clock::now() >= give_up) return {};
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    // Ordered after the capture: unchanged, the stack is the stalled one's.
    if (w.switches.load(std::memory_order_relaxed) != w.watch.switches) return {};
    return copy_of(c);
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
    auto waited = std::chrono::duration_cast<milliseconds>(threshold).count();
    bool deadlocked = false;
    try {
      std::vector<thread_rows> rows;
      std::size_t fibers = 0;
      for (worker* member : workers_) {
        if (member->group != w.group) continue;
        rows.push_back(snapshot(*member));
        for (const auto& f : rows.back().fibers) {
          if (!f.what || !f.internal || f.until != no_deadline.time_since_epoch().count()) return;
          ++fibers;
        }
      }
      if (fibers == 0) return;
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
  return opts;
}

void watch_worker(worker& w) {
  watchdog::instance().add(w);
}

void unwatch_worker(worker& w) noexcept {
  watchdog::instance().remove(w);
}

registry_hold_stats take_registry_hold_stats() noexcept {
  return {longest_hold_cpu_ns.exchange(0), most_fibers_per_hold.exchange(0)};
}

} // namespace coop::detail

namespace coop {

void dump_fibers(std::ostream& out) {
  out << detail::watchdog::instance().dump() << std::flush;
}

std::size_t fiber_count() {
  return detail::watchdog::instance().count(nullptr);
}

std::size_t this_runtime_fiber_count() {
  return detail::watchdog::instance().count(detail::require_worker("coop::this_runtime_fiber_count").group);
}

} // namespace coop
