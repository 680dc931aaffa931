#include "core/stack_pool.hpp"
#include "core/worker.hpp"
#include <coop/detail/fiber_state.hpp>
#include <coop/error.hpp>

#include <boost/system/system_error.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <ucontext.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define COOP_HAVE_VALGRIND 1
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 // Linux 6.13; glibc 2.36's headers do not have it yet
#endif

namespace coop::detail {
namespace {

std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

std::size_t round_to_pages(std::size_t n) noexcept {
  return (n + page_size() - 1) / page_size() * page_size();
}

long read_max_map_count() noexcept {
  long limit = 0;
  std::ifstream in("/proc/sys/vm/max_map_count");
  if (!(in >> limit) || limit <= 0) limit = 65530;
  return limit;
}

/// How many stacks may have an `mprotect` guard (two mappings each): all of
/// `vm.max_map_count` but a quarter of it, at most 16,384 mappings, left to
/// the rest of the program (libraries, threads, malloc). 24,574 stacks with
/// the default 65,530; 122,880 with 262,144.
long default_mprotect_budget() noexcept {
  static const long budget = [] {
    long limit = read_max_map_count();
    return (limit - std::min(limit / 4, 16384L)) / 2;
  }();
  return budget;
}
std::atomic<long> budget_for_testing{-1};
long mprotect_budget() noexcept {
  long b = budget_for_testing.load(std::memory_order_relaxed);
  return b >= 0 ? b : default_mprotect_budget();
}
std::atomic<long> mprotect_guards{0};
/// False once MADV_GUARD_INSTALL failed (a kernel before 6.13) or a test said so.
std::atomic<bool> markers_usable{true};
std::atomic<bool> budget_warned{false};
std::atomic<bool> limit_warned{false};

std::uint64_t make_canary_secret() noexcept {
  std::uint64_t secret = 0;
  if (::getrandom(&secret, sizeof secret, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof secret))
    secret = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
             reinterpret_cast<std::uintptr_t>(&secret);
  return secret | 1; // never zero: a fresh page must not look intact
}

/// Lines of /proc/self/maps: the memory mappings the process holds now.
long count_mappings() noexcept {
  int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  long lines = 0;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
    for (ssize_t i = 0; i < n; ++i)
      lines += buf[i] == '\n';
  ::close(fd);
  return lines;
}

/// `mmap` refused a stack: says why, naming the mapping limit when the
/// process is at it.
[[noreturn]] void throw_mapping_error(std::size_t length, int err) {
  std::string what = "coop: cannot map a fiber stack of " + std::to_string(length / 1024) + " KiB";
  long held = count_mappings();
  long limit = read_max_map_count();
  if (err == ENOMEM && held >= 0 && held + 16 >= limit)
    what += ": the process holds " + std::to_string(held) + " memory mappings and vm.max_map_count allows " +
            std::to_string(limit) + "; raise it (sysctl -w vm.max_map_count=262144) or run fewer fibers";
  throw boost::system::system_error(err, boost::system::system_category(), what);
}

} // namespace

std::uint64_t stack_canary_secret() noexcept {
  // Made at first use, not at static initialisation: a runtime started from
  // another translation unit's static initialiser must not see it change.
  static const std::uint64_t secret = make_canary_secret();
  return secret;
}

void set_stack_guards_for_testing(bool markers, long mprotect_budget) noexcept {
  markers_usable.store(markers, std::memory_order_relaxed);
  budget_for_testing.store(mprotect_budget, std::memory_order_relaxed);
}

stack_pool::stack_pool(std::size_t stack_size, std::size_t guard_size, std::size_t max_cached)
    : size_(round_to_pages(stack_size)), guard_(std::max(round_to_pages(guard_size), page_size())),
      max_cached_(max_cached) {
  // fiber_state keeps the size in 32 bits (it shares the top page of the stack).
  if (size_ > (std::size_t{1} << 31))
    throw usage_error("coop: run_options::stack_size is " + std::to_string(stack_size) +
                      " bytes; a fiber stack may have at most 2 GiB");
}

stack_pool::~stack_pool() {
  for (auto& s : free_)
    release(s);
  for (auto& s : excess_)
    release(s);
}

stack_pool::guard_kind stack_pool::protect(void* base) noexcept {
  if (markers_usable.load(std::memory_order_relaxed)) {
    if (::madvise(base, guard_, MADV_GUARD_INSTALL) == 0) return guard_kind::marker;
    if (errno == EINVAL) markers_usable.store(false, std::memory_order_relaxed); // a kernel before 6.13
  }
  if (mprotect_guards.fetch_add(1, std::memory_order_relaxed) < mprotect_budget()) {
    if (::mprotect(base, guard_, PROT_NONE) == 0) return guard_kind::mprotect;
    int err = errno;
    mprotect_guards.fetch_sub(1, std::memory_order_relaxed);
    if (!limit_warned.exchange(true))
      std::cerr << "coop: no guard region for a fiber stack (mprotect: " << std::strerror(err)
                << "): the process holds as many memory mappings as vm.max_map_count (" << read_max_map_count()
                << ") allows; such stacks get a canary instead, checked at every fiber switch; raise "
                   "vm.max_map_count (sysctl) to guard them"
                << std::endl;
    return guard_kind::none;
  }
  mprotect_guards.fetch_sub(1, std::memory_order_relaxed);
  if (!budget_warned.exchange(true))
    std::cerr << "coop: " << mprotect_budget()
              << " fiber stacks have guard regions, which cost two memory mappings each (vm.max_map_count "
              << read_max_map_count()
              << "); further stacks get a canary instead, checked at every fiber switch; raise vm.max_map_count "
                 "(sysctl) to guard them all"
              << std::endl;
  return guard_kind::none;
}

boost::context::stack_context stack_pool::allocate() {
  for (auto* cache : {&free_, &excess_}) {
    if (!cache->empty()) {
      auto s = cache->back();
      cache->pop_back();
      cached_.sub();
      clean_below_ = std::min(clean_below_, free_.size());
      return s;
    }
  }
  std::size_t length = guard_ + size_;
  void* p =
      ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) throw_mapping_error(length, errno);
  guard_kind guard = protect(p);
  boost::context::stack_context sctx;
  sctx.sp = static_cast<char*>(p) + length;
  sctx.size = size_;
  if (guard == guard_kind::none) {
    // The canary takes the lowest bytes of the stack; the unprotected
    // region under it stays mapped, so that a frame jumping over the canary
    // lands in this fiber's own memory first.
    sctx.size = size_ - stack_canary_words * sizeof(std::uint64_t);
    std::uint64_t* canary = canary_of(sctx);
    const std::uint64_t secret = stack_canary_secret();
    for (std::size_t i = 0; i < stack_canary_words; ++i)
      canary[i] = secret;
  }
  mapping m{length, guard, 0};
#ifdef COOP_HAVE_VALGRIND
  if (RUNNING_ON_VALGRIND) m.valgrind_id = VALGRIND_STACK_REGISTER(static_cast<char*>(sctx.sp) - sctx.size, sctx.sp);
#endif
  try {
    mappings_.emplace(reinterpret_cast<std::uintptr_t>(p), m);
  } catch (...) {
    ::munmap(p, length);
    if (guard == guard_kind::mprotect) mprotect_guards.fetch_sub(1, std::memory_order_relaxed);
    throw;
  }
  mapped_.add();
  if (guard == guard_kind::none) unguarded_.add();
  return sctx;
}

void stack_pool::give_back_second_page(const boost::context::stack_context& sctx) noexcept {
  const std::uintptr_t top = reinterpret_cast<std::uintptr_t>(sctx.sp) & ~(page_size() - 1);
  if (sctx.size >= 2 * page_size())
    ::madvise(reinterpret_cast<void*>(top - 2 * page_size()), page_size(), MADV_DONTNEED);
}

void stack_pool::deallocate(boost::context::stack_context& sctx) noexcept {
  // Every fiber ends in Boost.Fiber's context::terminate(), which calls a
  // helper with a 5 KiB frame: from then on the stack's second page is
  // resident, though a parked connection used one. A cached stack gives
  // that page back once it is no longer among the `keep_second_pages`
  // newest (the cache is reused newest first): when clients leave together,
  // the cache holds what their fibers held while they ran, not a page more
  // each (the process's peak RSS rose by 4 KiB per connection at a mass
  // close), and a loop that spawns and joins fibers keeps reusing warm
  // stacks without a system call. Stacks beyond `max_cached_` give it back
  // at once: `trim` unmaps them later.
  try {
    if (free_.size() < max_cached_) {
      free_.push_back(sctx);
      for (; free_.size() > clean_below_ + keep_second_pages; ++clean_below_)
        give_back_second_page(free_[clean_below_]);
    } else {
      excess_.push_back(sctx);
      give_back_second_page(sctx);
    }
    cached_.add();
  } catch (...) {
    release(sctx);
  }
}

void stack_pool::trim(std::size_t n) noexcept {
  for (; n > 0 && !excess_.empty(); --n) {
    release(excess_.back());
    excess_.pop_back();
    cached_.sub();
  }
}

void stack_pool::release(boost::context::stack_context& sctx) noexcept {
  // The mapping starts at or below the stack's lowest byte (guard region).
  auto it = mappings_.upper_bound(reinterpret_cast<std::uintptr_t>(sctx.sp) - size_);
  if (it == mappings_.begin()) return;
  --it;
  // Unmapping part of a merged mapping splits it, which the kernel may
  // refuse at the mapping limit: the stack then stays mapped, unused.
  if (::munmap(reinterpret_cast<void*>(it->first), it->second.length) != 0) return;
#ifdef COOP_HAVE_VALGRIND
  if (it->second.valgrind_id) VALGRIND_STACK_DEREGISTER(it->second.valgrind_id);
#endif
  if (it->second.guard == guard_kind::mprotect) mprotect_guards.fetch_sub(1, std::memory_order_relaxed);
  if (it->second.guard == guard_kind::none) unguarded_.sub();
  mapped_.sub();
  mappings_.erase(it);
}

bool stack_pool::in_guard_region(const void* addr) const noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(addr);
  auto it = mappings_.upper_bound(a);
  if (it == mappings_.begin()) return false;
  --it;
  return it->second.guard != guard_kind::none && a - it->first < guard_;
}

// --- Overflow reports ------------------------------------------------------------

namespace {

struct sigaction previous_segv;
constexpr std::size_t alt_stack_size = 64 * 1024;
thread_local void* alt_stack = nullptr;

/// Appends `s` to `buf` (async-signal-safe).
void append(char* buf, std::size_t cap, std::size_t& len, const char* s) noexcept {
  while (*s && len + 1 < cap)
    buf[len++] = *s++;
}
void append_number(char* buf, std::size_t cap, std::size_t& len, unsigned long v) noexcept {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v && n < 24);
  while (n && len + 1 < cap)
    buf[len++] = digits[--n];
}

/// One line on stderr naming the fiber, its thread and stack size, and `how`
/// the overflow was caught (async-signal-safe).
void report_overflow(const worker& w, const fiber_state* fs, const char* how) noexcept {
  const bool unguarded = fs && fs->stack_canary;
  char buf[640];
  std::size_t len = 0;
  append(buf, sizeof buf, len, "coop: stack overflow in fiber ");
  if (fs && !fs->name.empty()) {
    append(buf, sizeof buf, len, "'");
    append(buf, sizeof buf, len, fs->name.str().c_str());
    append(buf, sizeof buf, len, "' ");
  } else {
    append(buf, sizeof buf, len, "(unnamed) ");
  }
  append(buf, sizeof buf, len, "of runtime thread ");
  append_number(buf, sizeof buf, len, w.index);
  append(buf, sizeof buf, len, " (stack size ");
  append_number(buf, sizeof buf, len, w.stacks->stack_size() / 1024);
  append(buf, sizeof buf, len, " KiB; ");
  append(buf, sizeof buf, len, how);
  if (unguarded) append(buf, sizeof buf, len, "; this stack has no guard region (vm.max_map_count)");
  append(buf, sizeof buf, len, "); raise coop::run_options::stack_size\n");
  [[maybe_unused]] auto ignored = ::write(STDERR_FILENO, buf, len);
}

/// The stack pointer of the interrupted code, or 0 where unknown.
std::uintptr_t interrupted_sp(const void* uctx) noexcept {
  const auto* uc = static_cast<const ucontext_t*>(uctx);
#if defined(__x86_64__)
  return static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
#elif defined(__aarch64__)
  return static_cast<std::uintptr_t>(uc->uc_mcontext.sp);
#else
  (void)uc;
  return 0;
#endif
}

/// How the fault at `addr` shows an overflow of the running fiber's stack,
/// or nullptr when it does not.
const char* overflow_seen(const worker& w, const fiber_state* fs, const void* addr, const void* uctx) noexcept {
  if (fs && fs->stack_canary) {
    // No guard region below this stack. The fault is an overflow when it
    // happened on the stack below it (the fiber's stack pointer there, the
    // faulting access near it), or when the canary was overwritten.
    auto bottom = reinterpret_cast<std::uintptr_t>(fs->stack_canary + stack_canary_words);
    auto sp = interrupted_sp(uctx);
    auto a = reinterpret_cast<std::uintptr_t>(addr);
    constexpr std::uintptr_t near = 1 << 20;
    if (sp != 0 && sp < bottom && a + near > sp && a < sp + near)
      return "caught at a fault with its stack pointer below the stack";
    if (!stack_canary_intact(fs->stack_canary)) return "caught at a fault by the canary below it";
  }
  if (w.stacks->in_guard_region(addr)) return "caught by its guard region";
  return nullptr;
}

void on_segv(int sig, siginfo_t* info, void* uctx) {
  worker* w = current_worker();
  if (w && w->stacks) {
    fiber_state* fs = current_fiber_state();
    if (const char* how = overflow_seen(*w, fs, info->si_addr, uctx)) {
      report_overflow(*w, fs, how);
      // Nothing can resume a fiber that ran off its stack: end the process
      // with SIGSEGV even if someone else's handler came before ours.
      ::signal(SIGSEGV, SIG_DFL);
      return;
    }
  }
  // Put the previous handling back and return: the faulting instruction runs
  // again and gets it (by default, the process ends with SIGSEGV).
  ::sigaction(SIGSEGV, &previous_segv, nullptr);
  (void)sig;
}

} // namespace

void stack_canary_broken(const fiber_state& fs) noexcept {
  if (const worker* w = fs.owner) report_overflow(*w, &fs, "caught by the canary below it as the fiber switched away");
  // Its frames went past the stack, maybe into another fiber's: nothing may
  // run on.
  std::abort();
}

void install_overflow_handler() {
  // Installed again whenever someone replaced it meanwhile (say, a test
  // framework around each test case), keeping theirs as the previous one.
  static std::mutex install_mutex;
  {
    std::lock_guard lk(install_mutex);
    struct sigaction current {};
    ::sigaction(SIGSEGV, nullptr, &current);
    if (!(current.sa_flags & SA_SIGINFO) || current.sa_sigaction != &on_segv) {
      struct sigaction sa {};
      sa.sa_sigaction = &on_segv;
      sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
      sigemptyset(&sa.sa_mask);
      ::sigaction(SIGSEGV, &sa, &previous_segv);
    }
  }
  // The handler cannot run on the stack that overflowed.
  stack_t current{};
  if (::sigaltstack(nullptr, &current) == 0 && !(current.ss_flags & SS_DISABLE)) return; // the thread has one
  void* mem = std::malloc(alt_stack_size);
  if (!mem) return;
  stack_t ss{};
  ss.ss_sp = mem;
  ss.ss_size = alt_stack_size;
  if (::sigaltstack(&ss, nullptr) != 0) {
    std::free(mem);
    return;
  }
  alt_stack = mem;
}

void remove_overflow_stack() noexcept {
  if (!alt_stack) return;
  stack_t ss{};
  ss.ss_flags = SS_DISABLE;
  ::sigaltstack(&ss, nullptr);
  std::free(alt_stack);
  alt_stack = nullptr;
}

} // namespace coop::detail
