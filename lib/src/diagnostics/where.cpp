// lib/src/diagnostics/where.cpp — where parked fibers wait (where.hpp): the
// request that wakes them a batch at a time on their own threads, the trace
// each takes of its own stack, and the stacks' high-water marks.
#include "diagnostics/where.hpp"
#include "core/worker.hpp"
#include "diagnostics/backtrace.hpp"
#include "diagnostics/watchdog.hpp"

#include <boost/asio/post.hpp>

#include <sys/mman.h>
#include <unistd.h>
#include <unwind.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <new>
#include <thread>

namespace coop::detail {

struct trace_request {
  std::uint64_t generation = 0;
  std::atomic<long> threads{0}; ///< runtime threads still waking their fibers
};

namespace {

std::atomic<std::uint64_t> last_generation{0};
/// Fibers woken to trace themselves that have not yet (every request).
std::atomic<long> untraced{0};
/// Traces taken (every request): how a request sees that answers still come.
std::atomic<std::uint64_t> traces_taken{0};

/// On `w`'s thread: wakes the next `trace_batch` parked fibers not yet
/// asked by `req`. The first batch is woken from an Asio handler; the last
/// fiber of each batch to trace itself wakes the next (`trace_wait`), so a
/// batch runs before the next is woken and the ready queue never holds
/// more than one, whether or not the thread gets back to its reactor. A
/// batch that finds none is the end. Each walks on from where the last
/// stopped.
void wake_batch(worker& w, const std::shared_ptr<trace_request>& req) {
  if (w.tracing != req) { // a new request (an old one given up on is dropped)
    w.tracing = req;
    w.trace_cursor = w.fibers;
    w.trace_outstanding = 0;
  }
  std::size_t woken = 0;
  fiber_state* fs = w.trace_cursor;
  for (; fs && woken < trace_batch; fs = fs->registry_next) {
    if (fs->trace_generation == req->generation || !fs->snapshot.what.load(std::memory_order_relaxed)) continue;
    fs->trace_generation = req->generation;
    untraced.fetch_add(1, std::memory_order_relaxed);
    if (fs->wake_to_trace())
      ++woken;
    else
      untraced.fetch_sub(1, std::memory_order_relaxed);
  }
  w.trace_cursor = fs;
  w.trace_outstanding = woken;
  if (woken == 0) {
    w.tracing.reset();
    req->threads.fetch_sub(1, std::memory_order_release);
  }
}

} // namespace

void wait_context::trace_wait() noexcept {
  trace_requested = false;
  auto& fs = static_cast<fiber_state&>(*this);
  struct frames {
    std::uintptr_t pcs[max_where_frames];
    std::uint32_t count = 0;
  } f;
  ::_Unwind_Backtrace(
      [](_Unwind_Context* uc, void* arg) -> _Unwind_Reason_Code {
        auto& f = *static_cast<frames*>(arg);
        const std::uintptr_t pc = ::_Unwind_GetIP(uc);
        if (pc == 0 || f.count >= max_where_frames) return _URC_END_OF_STACK;
        f.pcs[f.count++] = pc;
        return _URC_NO_REASON;
      },
      &f);
  if (worker* w = fs.owner) { // on its thread
    {
      std::lock_guard lk(w->registry_mutex);
      if (!fs.where) fs.where = new (std::nothrow) where_record;
      if (fs.where) {
        fs.where->generation = fs.trace_generation;
        fs.where->count = f.count;
        std::copy(f.pcs, f.pcs + f.count, fs.where->pcs);
      }
    }
    if (w->trace_outstanding != 0 && --w->trace_outstanding == 0 && w->tracing) {
      const std::shared_ptr<trace_request> req = w->tracing; // wake_batch may let go of w->tracing
      wake_batch(*w, req);
    }
  }
  traces_taken.fetch_add(1, std::memory_order_relaxed);
  untraced.fetch_sub(1, std::memory_order_relaxed);
}

std::uint64_t trace_parked_fibers(std::chrono::milliseconds quiet, std::chrono::milliseconds limit) {
  auto req = std::make_shared<trace_request>();
  req->generation = last_generation.fetch_add(1, std::memory_order_relaxed) + 1;
  with_watched_workers([&](std::span<worker* const> workers) {
    for (worker* w : workers) {
      req->threads.fetch_add(1, std::memory_order_relaxed);
      try {
        boost::asio::post(w->io, [w, req] { wake_batch(*w, req); });
      } catch (...) {
        req->threads.fetch_sub(1, std::memory_order_relaxed);
      }
    }
  });
  using clock = std::chrono::steady_clock;
  const auto give_up = clock::now() + limit;
  auto last_answer = clock::now();
  std::uint64_t taken = traces_taken.load(std::memory_order_relaxed);
  while (req->threads.load(std::memory_order_acquire) > 0 || untraced.load(std::memory_order_relaxed) > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const auto now = clock::now();
    if (const std::uint64_t t = traces_taken.load(std::memory_order_relaxed); t != taken) {
      taken = t;
      last_answer = now;
    } else if (now - last_answer >= quiet) {
      break;
    }
    if (now >= give_up) break;
  }
  return req->generation;
}

std::size_t stack_touched_bytes(const void* top, std::size_t size) noexcept {
  static const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  if (!top || size == 0) return 0;
  const auto high = reinterpret_cast<std::uintptr_t>(top);
  const std::uintptr_t low = (high - size) & ~(page - 1);
  const std::size_t pages = (high - low + page - 1) / page;
  unsigned char resident[512];
  std::size_t n = 0;
  for (std::size_t done = 0; done < pages;) { // a chunk of pages at a time
    const std::size_t chunk = std::min(pages - done, sizeof resident);
    if (::mincore(reinterpret_cast<void*>(low + done * page), chunk * page, resident) != 0) return 0;
    for (std::size_t i = 0; i < chunk; ++i)
      n += resident[i] & 1;
    done += chunk;
  }
  return n * page;
}

std::vector<std::size_t> stacks_touched_bytes(const std::vector<stack_extent>& stacks) {
  static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  constexpr std::uintptr_t max_gap = 64 * 1024;  ///< between neighbours read together (guard pages, say)
  constexpr std::size_t max_run_pages = 1 << 14; ///< read by one call
  struct span {
    std::uintptr_t low, high; ///< page-aligned
    std::size_t index;
  };
  std::vector<std::size_t> bytes(stacks.size(), 0);
  std::vector<span> spans;
  spans.reserve(stacks.size());
  for (std::size_t i = 0; i < stacks.size(); ++i) {
    const auto top = reinterpret_cast<std::uintptr_t>(stacks[i].top);
    if (!top || stacks[i].size == 0 || stacks[i].size > top) continue;
    spans.push_back({(top - stacks[i].size) & ~(page - 1), (top + page - 1) & ~(page - 1), i});
  }
  std::sort(spans.begin(), spans.end(), [](const span& a, const span& b) { return a.low < b.low; });
  std::vector<unsigned char> resident;
  for (std::size_t first = 0, last; first < spans.size(); first = last + 1) {
    last = first;
    while (last + 1 < spans.size() && spans[last + 1].low >= spans[last].high &&
           spans[last + 1].low - spans[last].high <= max_gap &&
           (spans[last + 1].high - spans[first].low) / page <= max_run_pages)
      ++last;
    const std::uintptr_t low = spans[first].low;
    resident.resize((spans[last].high - low) / page);
    if (::mincore(reinterpret_cast<void*>(low), resident.size() * page, resident.data()) == 0) {
      for (std::size_t k = first; k <= last; ++k) {
        std::size_t n = 0;
        for (std::uintptr_t p = spans[k].low; p < spans[k].high; p += page)
          n += resident[(p - low) / page] & 1;
        bytes[spans[k].index] = n * page;
      }
    } else { // a hole between them: one at a time
      for (std::size_t k = first; k <= last; ++k) {
        const stack_extent& s = stacks[spans[k].index];
        bytes[spans[k].index] = stack_touched_bytes(s.top, s.size);
      }
    }
  }
  return bytes;
}

} // namespace coop::detail
