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
namespace {

struct trace_request {
  std::uint64_t generation = 0;
  std::atomic<long> threads{0}; ///< runtime threads still waking their fibers
};

std::atomic<std::uint64_t> last_generation{0};
/// Fibers woken to trace themselves that have not yet (every request).
std::atomic<long> untraced{0};

/// On `w`'s thread, between fibers (an Asio handler): wakes up to
/// `trace_batch` parked fibers not yet asked by `req`, then posts itself
/// again for the next batch, or is done.
void wake_batch(worker& w, const std::shared_ptr<trace_request>& req) {
  std::size_t woken = 0;
  for (fiber_state* fs = w.fibers; fs && woken < trace_batch; fs = fs->registry_next) {
    if (fs->trace_generation == req->generation || !fs->snapshot.what.load(std::memory_order_relaxed)) continue;
    fs->trace_generation = req->generation;
    untraced.fetch_add(1, std::memory_order_relaxed);
    if (fs->wake_to_trace())
      ++woken;
    else
      untraced.fetch_sub(1, std::memory_order_relaxed);
  }
  if (woken == trace_batch) {
    try {
      boost::asio::post(w.io, [&w, req] { wake_batch(w, req); });
      return;
    } catch (...) { // no memory: the rest go without
    }
  }
  req->threads.fetch_sub(1, std::memory_order_release);
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
  if (fs.owner) {
    std::lock_guard lk(fs.owner->registry_mutex);
    if (!fs.where) fs.where = new (std::nothrow) where_record;
    if (fs.where) {
      fs.where->generation = fs.trace_generation;
      fs.where->count = f.count;
      std::copy(f.pcs, f.pcs + f.count, fs.where->pcs);
    }
  }
  untraced.fetch_sub(1, std::memory_order_relaxed);
}

std::uint64_t trace_parked_fibers(std::chrono::milliseconds limit) {
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
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while ((req->threads.load(std::memory_order_acquire) > 0 || untraced.load(std::memory_order_relaxed) > 0) &&
         std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
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

} // namespace coop::detail
