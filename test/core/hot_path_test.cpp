// The per-request path of a fiber's socket calls: what it must not do.
//
// This executable replaces malloc and its aligned variants to count
// allocations, so its cases stay in a binary of their own.
#define BOOST_TEST_MODULE coop hot path
#include "support.hpp"

#include <boost/fiber/fiber.hpp>

#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <vector>

namespace {
thread_local bool counting = false;
thread_local long allocations = 0;
std::atomic<long> madvise_calls{0};
} // namespace

// Counts the stack pool's madvise calls (the executable's definition takes
// the place of the C library's, which it forwards to).
extern "C" int madvise(void* addr, std::size_t length, int advice) {
  madvise_calls.fetch_add(1, std::memory_order_relaxed);
  return static_cast<int>(::syscall(SYS_madvise, addr, length, advice));
}

// A sanitizer's runtime owns malloc (its own allocator behind interceptors):
// the counting below would bypass it, so sanitized builds do without.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COOP_COUNT_ALLOCATIONS 0
#else
#define COOP_COUNT_ALLOCATIONS 1
#endif

// Every allocation passes through one of these (operator new through
// malloc; Asio's aligned operation memory through aligned_alloc or
// memalign): the executable's definitions take the place of the C library's
// and forward to its implementations.
#if COOP_COUNT_ALLOCATIONS
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_memalign(std::size_t, std::size_t);

void* malloc(std::size_t n) {
  if (counting) ++allocations;
  return __libc_malloc(n);
}
void* memalign(std::size_t align, std::size_t n) {
  if (counting) ++allocations;
  return __libc_memalign(align, n);
}
void* aligned_alloc(std::size_t align, std::size_t n) {
  return memalign(align, n);
}
int posix_memalign(void** out, std::size_t align, std::size_t n) {
  void* p = memalign(align, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
}
#endif

using namespace test_support;

/// Allocations made by `fn` on this thread.
template <class F> long allocations_in(F&& fn) {
  counting = true;
  allocations = 0;
  fn();
  counting = false;
  return allocations;
}

COOP_TEST_CASE(a_read_that_waits_allocates_nothing_once_the_fiber_has_waited_before) {
  if (!COOP_COUNT_ALLOCATIONS) {
    BOOST_TEST_MESSAGE("skipped under a sanitizer (it owns malloc)");
    return;
  }
  // Ping-pong: every read finds no data and waits through the reactor.
  auto [a, b] = connected_pair();
  auto peer = coop::spawn([&b] {
    std::array<char, 16> buf;
    for (;;) {
      boost::system::error_code ec;
      std::size_t n = b.read_some(boost::asio::buffer(buf), ec);
      if (ec) return;
      b.write_all(boost::asio::buffer(buf.data(), n));
    }
  });
  std::array<char, 16> buf{};
  auto round_trip = [&] {
    a.write_all(boost::asio::buffer("ping", 4));
    a.read_exact(boost::asio::buffer(buf.data(), 4));
  };
  for (int i = 0; i < 10; ++i)
    round_trip(); // warm-up: each fiber's operation memory
  long n = allocations_in([&] {
    for (int i = 0; i < 1000; ++i)
      round_trip();
  });
  BOOST_TEST(n == 0, "1000 round trips allocated " << n << " times on the runtime thread");
  a.close();
  peer.join();
}

COOP_TEST_CASE(a_peer_that_always_has_data_cannot_starve_the_other_fibers) {
  // Every read finds data already there and completes without waiting; the
  // reader must still let the other fibers of its thread run now and then.
  auto [a, b] = connected_pair();
  constexpr int bytes = 20'000;
  std::string data(bytes, 'x');
  b.write_all(boost::asio::buffer(data)); // fits the socket buffers of loopback
  test_support::turn_counter ticker;      // another fiber of this thread, counting its turns
  long ticks_before = ticker.turns();
  char c;
  for (int i = 0; i < bytes; ++i)
    a.read_some(boost::asio::buffer(&c, 1));
  long ticks_during = ticker.turns() - ticks_before;
  // One turn at least every detail::direct_io_budget (16) reads.
  BOOST_TEST(ticks_during >= bytes / 64,
             "the other fiber ran " << ticks_during << " times during " << bytes << " reads that found data");
}

COOP_TEST_CASE(read_until_with_the_delimiter_already_buffered_does_not_yield_every_call) {
  // Pipelined lines, all already in the caller's buffer: read_until returns
  // each at once. It used to go through Asio's operation, which completes
  // through the scheduler's queue: a yield per line (the other fiber ran
  // once per call). Now it yields once per detail::direct_io_budget (16)
  // calls: still often enough that the other fibers run.
  auto [a, b] = connected_pair();
  std::string buffer;
  test_support::check_buffered_read_until_yields_rarely(a, buffer);
}

COOP_TEST_CASE(a_fiber_resumed_directly_by_boost_fiber_is_not_taken_for_its_launcher) {
  // A raw Boost.Fiber fiber launched with launch::dispatch runs at once,
  // without the scheduler choosing it: coop must not mistake it for the
  // fiber that launched it (whose state the scheduler last recorded).
  coop::this_fiber::set_name("launcher");
  std::string seen = "not run";
  boost::fibers::fiber raw(boost::fibers::launch::dispatch, [&] { seen = coop::this_fiber::name(); });
  BOOST_TEST(seen != "launcher");
  raw.join();
  BOOST_TEST(coop::this_fiber::name() == "launcher");
}

COOP_TEST_CASE(a_spawned_fiber_allocates_only_its_task_state) {
  if (!COOP_COUNT_ALLOCATIONS) {
    BOOST_TEST_MESSAGE("skipped under a sanitizer (it owns malloc)");
    return;
  }
  // A fiber's coop state lives at the top of its stack, beside Boost.Fiber's
  // context: spawning, running and ending a fiber allocates one block, the
  // task's shared state that its handle holds. It was two: the fiber_state
  // was a heap block of 336 bytes, a third of a parked connection's heap.
  constexpr int fibers = 1000;
  auto spawn_all = [] {
    std::vector<coop::task<void>> tasks;
    tasks.reserve(fibers);
    for (int i = 0; i < fibers; ++i)
      tasks.push_back(coop::spawn([] { coop::this_fiber::yield(); }));
    for (auto& t : tasks)
      t.join();
  };
  spawn_all(); // warm-up: the stacks are mapped once and cached
  // Boost.Fiber releases ended fibers, and so their stacks, a batch at a
  // time when its dispatcher runs. Until all are back in the cache, a new
  // fiber may map a stack, which allocates too (the pool's record of the
  // mapping): up to 64 times in 1,000 here, which made this case fail now
  // and then.
  for (int i = 0; i < 1000 && coop::metrics_snapshot().threads.at(0).stacks_cached < fibers; ++i)
    coop::sleep_for(1ms);
  const auto mapped = coop::metrics_snapshot().threads.at(0).stacks_mapped;
  long n = allocations_in(spawn_all);
  BOOST_TEST_MESSAGE(fibers << " fibers spawned and joined: " << n << " allocations, "
                            << coop::metrics_snapshot().threads.at(0).stacks_mapped - mapped << " stacks mapped");
  // Beyond one block per fiber: the vector of tasks (1,001 here), and room for a few.
  BOOST_TEST(n <= fibers + 10, fibers << " fibers spawned and joined allocated " << n << " times");
}

COOP_TEST_CASE(spawn_and_join_beside_a_full_stack_cache_makes_no_system_call) {
  // A burst of fibers leaves many stacks cached; each gives back the stack
  // page its fiber's end touched once it is no longer among the newest. A
  // loop that then spawns and joins one fiber at a time reuses the newest
  // stacks: it must not pay an madvise (and a page fault to touch the page
  // again) per fiber, as it did when every stack returned to a cache of 64
  // or more gave its page back.
  std::vector<coop::task<void>> burst;
  for (int i = 0; i < 200; ++i)
    burst.push_back(coop::spawn([] { coop::this_fiber::yield(); }));
  for (auto& t : burst)
    t.join();
  long before = madvise_calls.load();
  for (int i = 0; i < 1000; ++i)
    coop::spawn([] {}).join();
  long calls = madvise_calls.load() - before;
  // Boost.Fiber destroys ended contexts in batches, so a stack now and then
  // falls out of the window of newest stacks and gives its page back: a
  // handful in all, where it was one per fiber.
  BOOST_TEST(calls < 50, "1000 spawn + join after a burst of 200 fibers: " << calls << " madvise calls");
}
