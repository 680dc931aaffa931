#include <coop/detail/fiber_state.hpp>
#include <coop/detail/stack_pool.hpp>
#include <coop/detail/worker.hpp>

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define COOP_HAVE_VALGRIND 1
#endif

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <new>

namespace coop::detail {
namespace {

std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

/// How many guarded stacks the process may hold: a quarter of the mapping
/// limit (each costs two mappings), leaving the rest to everything else.
long guarded_budget() noexcept {
  static const long budget = [] {
    long limit = 65530;
    std::ifstream in("/proc/sys/vm/max_map_count");
    if (!(in >> limit) || limit <= 0) limit = 65530;
    return limit / 4;
  }();
  return budget;
}
std::atomic<long> guarded_stacks{0};
std::atomic<bool> budget_warned{false};

} // namespace

stack_pool::stack_pool(std::size_t stack_size, std::size_t max_cached)
    : size_((stack_size + page_size() - 1) / page_size() * page_size()), max_cached_(max_cached) {}

stack_pool::~stack_pool() {
  for (auto& s : free_)
    release(s);
  for (auto& s : excess_)
    release(s);
}

boost::context::stack_context stack_pool::allocate() {
  for (auto* cache : {&free_, &excess_}) {
    if (!cache->empty()) {
      auto s = cache->back();
      cache->pop_back();
      return s;
    }
  }
  bool guarded = guarded_stacks.fetch_add(1, std::memory_order_relaxed) < guarded_budget();
  if (!guarded) {
    guarded_stacks.fetch_sub(1, std::memory_order_relaxed);
    if (!budget_warned.exchange(true))
      std::cerr << "coop: " << guarded_budget()
                << " fiber stacks have guard pages (a quarter of vm.max_map_count); further stacks have none"
                << std::endl;
  }
  std::size_t length = size_ + (guarded ? page_size() : 0);
  void* p =
      ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED || (guarded && ::mprotect(p, page_size(), PROT_NONE) != 0)) {
    if (p != MAP_FAILED) ::munmap(p, length);
    if (guarded) guarded_stacks.fetch_sub(1, std::memory_order_relaxed);
    throw std::bad_alloc();
  }
  boost::context::stack_context sctx;
  sctx.sp = static_cast<char*>(p) + length;
  sctx.size = size_;
  mapping m{length, guarded, 0};
#ifdef COOP_HAVE_VALGRIND
  if (RUNNING_ON_VALGRIND) m.valgrind_id = VALGRIND_STACK_REGISTER(static_cast<char*>(sctx.sp) - size_, sctx.sp);
#endif
  try {
    mappings_.emplace(reinterpret_cast<std::uintptr_t>(p), m);
  } catch (...) {
    ::munmap(p, length);
    if (guarded) guarded_stacks.fetch_sub(1, std::memory_order_relaxed);
    throw;
  }
  return sctx;
}

void stack_pool::deallocate(boost::context::stack_context& sctx) noexcept {
  try {
    (free_.size() < max_cached_ ? free_ : excess_).push_back(sctx);
  } catch (...) {
    release(sctx);
  }
}

void stack_pool::trim(std::size_t n) noexcept {
  for (; n > 0 && !excess_.empty(); --n) {
    release(excess_.back());
    excess_.pop_back();
  }
}

void stack_pool::release(boost::context::stack_context& sctx) noexcept {
  // The mapping starts at or below the stack's lowest byte (guard page).
  auto it = mappings_.upper_bound(reinterpret_cast<std::uintptr_t>(sctx.sp) - size_);
  if (it == mappings_.begin()) return;
  --it;
#ifdef COOP_HAVE_VALGRIND
  if (it->second.valgrind_id) VALGRIND_STACK_DEREGISTER(it->second.valgrind_id);
#endif
  if (it->second.guarded) guarded_stacks.fetch_sub(1, std::memory_order_relaxed);
  ::munmap(reinterpret_cast<void*>(it->first), it->second.length);
  mappings_.erase(it);
}

bool stack_pool::in_guard_page(const void* addr) const noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(addr);
  auto it = mappings_.upper_bound(a);
  if (it == mappings_.begin()) return false;
  --it;
  return it->second.guarded && a - it->first < page_size();
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

void on_segv(int sig, siginfo_t* info, void* uctx) {
  worker* w = current_worker();
  if (w && w->stacks && w->stacks->in_guard_page(info->si_addr)) {
    char buf[512];
    std::size_t len = 0;
    append(buf, sizeof buf, len, "coop: stack overflow in fiber ");
    fiber_state* fs = current_fiber_state();
    if (fs && !fs->name.empty()) {
      append(buf, sizeof buf, len, "'");
      append(buf, sizeof buf, len, fs->name.c_str());
      append(buf, sizeof buf, len, "' ");
    } else {
      append(buf, sizeof buf, len, "(unnamed) ");
    }
    append(buf, sizeof buf, len, "of runtime thread ");
    append_number(buf, sizeof buf, len, w->index);
    append(buf, sizeof buf, len, " (stack size ");
    append_number(buf, sizeof buf, len, w->stacks->stack_size() / 1024);
    append(buf, sizeof buf, len, " KiB); raise coop::run_options::stack_size\n");
    [[maybe_unused]] auto ignored = ::write(STDERR_FILENO, buf, len);
    // Nothing can resume a fiber that ran off its stack: end the process with
    // SIGSEGV even if someone else's handler came before ours.
    ::signal(SIGSEGV, SIG_DFL);
    return;
  }
  // Put the previous handling back and return: the faulting instruction runs
  // again and gets it (by default, the process ends with SIGSEGV).
  ::sigaction(SIGSEGV, &previous_segv, nullptr);
  (void)sig;
  (void)uctx;
}

} // namespace

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
