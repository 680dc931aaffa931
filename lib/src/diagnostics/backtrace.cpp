// lib/src/diagnostics/backtrace.cpp — the backtrace of a stalled runtime
// thread. The watchdog interrupts the thread with a signal (stall_signal())
// whose handler copies the raw return addresses of the running stack into a
// buffer prepared for that thread. The watchdog turns them into names and
// source lines itself, off the stalled thread: with libbacktrace when coop
// was built with it (COOP_HAVE_LIBBACKTRACE), else from dladdr alone.
#include "diagnostics/backtrace.hpp"
#include "diagnostics/where.hpp"

#include <boost/stacktrace/safe_dump_to.hpp>

#include <cxxabi.h>
#include <dlfcn.h>
#include <signal.h>
#include <ucontext.h>

#ifdef COOP_HAVE_LIBBACKTRACE
#include <backtrace.h>
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>

namespace coop::detail {

namespace {

/// Frames printed at most per backtrace.
constexpr std::size_t max_printed_frames = 32;
/// How long the watchdog waits for the stalled thread to take the signal.
constexpr std::chrono::milliseconds capture_wait{50};

/// The signal that asks a runtime thread for its stack: SIGRTMIN + 6, a
/// real-time one, so it is queued and not shared with any default meaning.
int stall_signal() noexcept {
  return SIGRTMIN + 6;
}

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

/// Whether `f` is coop's signal handler.
bool is_handler_frame(const frame_text& f) {
  return f.function.find("on_stall_signal") != std::string::npos;
}

/// Whether `f` is coop's own code (or Boost.Fiber's, or the standard
/// library's inside them), above the program's frame that waits.
bool is_runtime_frame(const frame_text& f) {
  auto file_has = [&](const char* part) { return f.line != 0 && f.file.find(part) != std::string::npos; };
  return f.function.starts_with("coop::") || f.function.starts_with("boost::fibers::") ||
         f.function.starts_with("boost::context::") || f.function.starts_with("std::") || file_has("/include/coop/") ||
         file_has(COOP_SOURCE_DIR "/lib/") || file_has("/boost/") || file_has("/c++/") ||
         f.function == "_Unwind_Backtrace" || (f.function.empty() && f.line == 0);
}

/// A demangled signature without its parameter list ("ns::f<T>(int, char)
/// const" gives "ns::f<T>"): the file and line say which overload.
std::string without_parameters(const std::string& name) {
  if (name.empty() || (name.back() != ')' && !name.ends_with(") const"))) return name;
  int depth = 0;
  for (std::size_t i = name.rfind(')') + 1; i-- > 0;) {
    if (name[i] == ')') ++depth;
    if (name[i] == '(' && --depth == 0)
      return i == 0 || std::string_view(name).substr(0, i).ends_with("operator") ? name : name.substr(0, i);
  }
  return name;
}

} // namespace

std::vector<std::string> program_frames(const std::uintptr_t* pcs, std::size_t count, std::size_t max) {
  // Cached by the whole stack: thousands of fibers wait at a few places, with
  // the same return addresses all the way down.
  static std::mutex cache_mutex;
  static std::unordered_map<std::string, std::vector<std::string>> cache;
  const std::string key =
      std::to_string(max) + ":" + std::string(reinterpret_cast<const char*>(pcs), count * sizeof(std::uintptr_t));
  std::lock_guard lk(cache_mutex);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  if (cache.size() >= 10'000) cache.clear();
  std::vector<frame_text> frames;
  for (std::size_t k = 0; k < count; ++k)
    for (frame_text& f : describe(pcs[k], false))
      frames.push_back(std::move(f));
  std::size_t i = 0;
  while (i < frames.size() && is_runtime_frame(frames[i]))
    ++i;
  std::vector<std::string> out;
  for (; i < frames.size() && out.size() < max && !is_below_fiber_function(frames[i]); ++i) {
    const frame_text& f = frames[i];
    std::string line = f.function.empty() ? "?" : without_parameters(f.function);
    if (!f.file.empty()) line += (f.line != 0 ? " at " : " in ") + f.file;
    if (f.line != 0) line += ":" + std::to_string(f.line);
    out.push_back(std::move(line));
  }
  cache.emplace(key, out);
  return out;
}

void set_this_thread_capture(stack_capture* c) noexcept {
  this_thread_capture = c;
}

bool capture_stack(stack_capture& c, pthread_t thread) {
  if (!stall_signal_ready()) return false;
  std::uint32_t n = c.requested.load(std::memory_order_relaxed) + 1;
  c.requested.store(n, std::memory_order_release);
  if (::pthread_kill(thread, stall_signal()) != 0) return false;
  auto give_up = std::chrono::steady_clock::now() + capture_wait;
  while (c.done.load(std::memory_order_acquire) != n) {
    if (std::chrono::steady_clock::now() >= give_up) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return true;
}

raw_backtrace copy_of(const stack_capture& c) {
  raw_backtrace r{c.pc, {}, {}};
  for (std::size_t i = 0; i < max_raw_frames && c.frames[i]; ++i)
    r.frames.push_back(reinterpret_cast<std::uintptr_t>(c.frames[i]));
  return r;
}

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

} // namespace coop::detail
