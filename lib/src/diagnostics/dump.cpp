// lib/src/diagnostics/dump.cpp — the fibers of the runtime threads, copied out
// of their registries a batch at a time without stopping anybody, and the text
// of a fiber dump (coop::dump_fibers, SIGQUIT, deadlock reports); the fiber
// counts.
#include "diagnostics/dump.hpp"
#include "core/worker.hpp"
#include "diagnostics/watchdog.hpp"
#include "diagnostics/where.hpp"
#include <coop/diagnostics.hpp>

#include <time.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <iomanip>
#include <mutex>
#include <ostream>
#include <sstream>
#include <string_view>
#include <unordered_map>

namespace coop::detail {

namespace {

std::string seconds(double s) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(3) << s << " s";
  return out.str();
}

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

/// The program's frames shown of where a fiber waits.
constexpr std::size_t where_lines = 6;

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

/// Touches each page of `n` bytes of fresh, unused storage at `p`, so that
/// the page faults (for a transparent huge page, clearing 2 MiB: about 3 ms
/// here) happen before the registry lock is taken, not while it is held.
void prefault(void* p, std::size_t n) noexcept {
  auto* bytes = static_cast<volatile unsigned char*>(p);
  for (std::size_t i = 0; i < n; i += 4096)
    bytes[i] = 0;
  if (n != 0) bytes[n - 1] = 0;
}

/// Live fibers of the watched workers in `group` (every worker when null).
std::size_t count_fibers(const void* group) {
  std::size_t n = 0;
  with_watched_workers([&](std::span<worker* const> workers) {
    for (worker* w : workers) {
      if (group && w->group != group) continue;
      std::lock_guard rl(w->registry_mutex);
      n += w->fiber_count;
    }
  });
  return n;
}

} // namespace

thread_rows snapshot(worker& w, std::uint64_t where_generation) {
  thread_rows t{
      w.group_number, w.index, w.idle.load(std::memory_order_relaxed), w.running.load(std::memory_order_relaxed), {}};
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
        fiber_row& row = t.fibers.emplace_back();
        row.id = fs.id;
        row.name = fs.name.str();
        row.task = fs.task;
        row.what = s.what.load(std::memory_order_acquire);
        row.kind = s.kind.load(std::memory_order_relaxed);
        row.object = s.object.load(std::memory_order_relaxed);
        row.fd = s.fd.load(std::memory_order_relaxed);
        row.since_ns = s.since_ns.load(std::memory_order_relaxed);
        row.until = s.until.load(std::memory_order_relaxed);
        row.internal = s.internal.load(std::memory_order_relaxed);
        if (where_generation != 0 && fs.where && fs.where->generation == where_generation)
          row.where.assign(fs.where->pcs, fs.where->pcs + fs.where->count);
        row.stack_top = fs.stack_top();
        row.stack_size = fs.stack_size;
        return true;
      },
      [&] { // room for a batch, made without the lock
        if (t.fibers.capacity() - t.fibers.size() < registry_batch) t.fibers.reserve(2 * t.fibers.capacity());
        prefault(t.fibers.data() + t.fibers.size(), registry_batch * sizeof(fiber_row));
      });
  std::reverse(t.fibers.begin(), t.fibers.end()); // oldest first
  return t;
}

state_counts count_states(worker& w) {
  state_counts c;
  const bool idle = w.idle.load(std::memory_order_relaxed);
  const std::uint64_t running = w.running.load(std::memory_order_relaxed);
  walk_registry(
      w,
      [&](const fiber_state& fs) {
        ++c.fibers;
        if (fs.snapshot.what.load(std::memory_order_acquire))
          ++c.parked[static_cast<std::size_t>(fs.snapshot.kind.load(std::memory_order_relaxed))];
        else if (!idle && fs.id == running)
          c.running = 1;
        return true;
      },
      [] {});
  return c;
}

bool only_others_can_wake(worker& w, std::size_t& fibers) {
  bool only = true;
  walk_registry(
      w,
      [&](const fiber_state& fs) {
        const wait_snapshot& s = fs.snapshot;
        only = only_another_can_end(s.what.load(std::memory_order_acquire), s.internal.load(std::memory_order_relaxed),
                                    s.until.load(std::memory_order_relaxed));
        fibers += only ? 1 : 0;
        return only;
      },
      [] {});
  return only;
}

namespace {

/// What both formats of a dump read off its rows: the moment it is made,
/// the fibers by their task (what a join waits on), each row's state and
/// times.
class dump_view {
public:
  explicit dump_view(const std::vector<thread_rows>& rows) {
    for (const auto& t : rows)
      total += t.fibers.size();
    fiber_of_task_.reserve(total);
    for (const auto& t : rows)
      for (const auto& f : t.fibers)
        if (f.task) fiber_of_task_[f.task] = f.id;
  }
  std::size_t total = 0; ///< fibers in all

  static bool running(const thread_rows& t, const fiber_row& f) noexcept { return f.id == t.running && !t.idle; }
  /// The fiber that `f` joins, or 0.
  std::uint64_t joined(const fiber_row& f) const {
    auto it = fiber_of_task_.find(f.object);
    return f.object && it != fiber_of_task_.end() ? it->second : 0;
  }
  /// Seconds `f` has waited.
  double waited(const fiber_row& f) const noexcept {
    return static_cast<double>(std::max<std::int64_t>(0, now_ns_ - f.since_ns)) / 1e9;
  }
  /// Seconds until a timer ends `f`'s wait; negative when none will.
  double until(const fiber_row& f) const noexcept {
    using clock = std::chrono::steady_clock;
    if (f.until == no_deadline.time_since_epoch().count()) return -1;
    return static_cast<double>(std::max<steady_time::rep>(0, f.until - now_)) * clock::period::num / clock::period::den;
  }

private:
  std::unordered_map<const void*, std::uint64_t> fiber_of_task_;
  std::int64_t now_ns_ = coarse_now_ns();
  steady_time::rep now_ = std::chrono::steady_clock::now().time_since_epoch().count();
};

} // namespace

std::string format_dump(const std::vector<thread_rows>& rows) {
  const dump_view view(rows);
  const std::size_t total = view.total;
  std::ostringstream out;
  out << "coop: " << total << (total == 1 ? " fiber" : " fibers") << " on " << rows.size()
      << (rows.size() == 1 ? " runtime thread\n" : " runtime threads\n");
  for (const auto& t : rows) {
    out << "runtime " << t.runtime << " thread " << t.thread << ": " << t.fibers.size()
        << (t.fibers.size() == 1 ? " fiber" : " fibers") << (t.idle ? ", idle in the reactor" : "") << "\n";
    for (const auto& f : t.fibers) {
      out << "  fiber " << f.id;
      if (!f.name.empty()) out << " \"" << f.name << "\"";
      if (!f.what) {
        out << (dump_view::running(t, f) ? ": running\n" : ": ready\n");
        continue;
      }
      out << ": waiting " << seconds(view.waited(f)) << " on " << f.what;
      std::string detail;
      if (f.fd >= 0) detail = "fd " + std::to_string(f.fd);
      if (const std::uint64_t joined = view.joined(f))
        detail = "fiber " + std::to_string(joined);
      else if (f.object && f.fd < 0) {
        std::ostringstream o;
        o << f.object;
        detail = o.str();
      }
      if (const double until = view.until(f); until >= 0) {
        if (!detail.empty()) detail += ", ";
        detail += "until +" + seconds(until);
      }
      if (!detail.empty()) out << " (" << detail << ")";
      out << "\n";
      for (const std::string& frame : program_frames(f.where.data(), f.where.size(), where_lines))
        out << "      " << frame << "\n";
    }
  }
  return out.str();
}

namespace {

/// `s` as a JSON string, quotes included.
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
}

void append_seconds(std::string& out, double s) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, s, std::chars_format::fixed, 3);
  out.append(buf, ec == std::errc() ? end : buf);
}

void append_number(std::string& out, std::uint64_t n) {
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, n).ptr);
}

} // namespace

std::string dump_all() {
  return dump_all(0, false);
}

std::string dump_all(std::uint64_t where_generation, bool json) {
  std::vector<thread_rows> rows;
  with_watched_workers([&](std::span<worker* const> workers) {
    for (worker* w : workers)
      rows.push_back(snapshot(*w, where_generation));
  });
  // Made without the watchdog's mutex: naming where fibers wait may read
  // debug information for a while.
  return json ? format_dump_json(rows) : format_dump(rows);
}

std::string format_dump_json(const std::vector<thread_rows>& rows) {
  const dump_view view(rows);
  std::string out;
  out.reserve(320 * view.total + 16); // about what an entry with where takes
  // Fibers that wait at the same place (most of a server's) are often next
  // to each other: the last entry's frames are kept, as JSON, for the next.
  const std::vector<std::uintptr_t>* last_where = nullptr;
  std::vector<stack_extent> stacks;
  stacks.reserve(view.total);
  for (const auto& t : rows)
    for (const auto& f : t.fibers)
      stacks.push_back({f.stack_top, f.stack_size});
  const std::vector<std::size_t> stack_bytes = stacks_touched_bytes(stacks);
  std::size_t row = 0;
  std::string where_json;
  out += '[';
  bool first = true;
  for (const auto& t : rows)
    for (const auto& f : t.fibers) {
      const std::size_t touched = stack_bytes[row++];
      out += first ? "\n{\"id\":" : ",\n{\"id\":";
      first = false;
      append_number(out, f.id);
      out += ",\"name\":";
      append_json_string(out, f.name);
      out += ",\"runtime\":";
      append_number(out, t.runtime);
      out += ",\"thread\":";
      append_number(out, t.thread);
      if (!f.what) {
        out += dump_view::running(t, f) ? ",\"state\":\"running\"}" : ",\"state\":\"ready\"}";
        continue;
      }
      out += ",\"state\":\"waiting\",\"wait\":\"";
      out += to_string(f.kind);
      out += "\",\"what\":";
      append_json_string(out, f.what);
      if (f.fd >= 0) {
        out += ",\"fd\":";
        append_number(out, static_cast<std::uint64_t>(f.fd));
      }
      if (const std::uint64_t joined = view.joined(f)) {
        out += ",\"fiber\":";
        append_number(out, joined);
      }
      out += ",\"waiting_seconds\":";
      append_seconds(out, view.waited(f));
      if (const double until = view.until(f); until >= 0) {
        out += ",\"until_seconds\":";
        append_seconds(out, until);
      }
      if (!f.where.empty()) {
        if (!last_where || *last_where != f.where) {
          where_json = ",\"where\":[";
          bool first_frame = true;
          for (const std::string& frame : program_frames(f.where.data(), f.where.size(), where_lines)) {
            if (!first_frame) where_json += ',';
            first_frame = false;
            append_json_string(where_json, frame);
          }
          where_json += ']';
          last_where = &f.where;
        }
        out += where_json;
      }
      if (touched != 0) {
        out += ",\"stack_bytes\":";
        append_number(out, touched);
        out += ",\"stack_size\":";
        append_number(out, f.stack_size);
      }
      out += '}';
    }
  out += "\n]\n";
  return out;
}

std::string fiber_label(worker& w, std::uint64_t id) {
  if (id == 0) return "a context of Boost.Fiber's own (the dispatcher or the thread's main)";
  std::string name;
  walk_registry(
      w,
      [&](const fiber_state& fs) {
        if (fs.id != id) return true;
        if (!fs.name.empty()) name = " \"" + fs.name.str() + "\"";
        return false;
      },
      [] {});
  return "fiber " + std::to_string(id) + name;
}

registry_hold_stats take_registry_hold_stats() noexcept {
  return {longest_hold_cpu_ns.exchange(0), most_fibers_per_hold.exchange(0)};
}

} // namespace coop::detail

namespace coop {

void dump_fibers(std::ostream& out) {
  out << detail::dump_all() << std::flush;
}

std::size_t fiber_count() {
  return detail::count_fibers(nullptr);
}

std::size_t this_runtime_fiber_count() {
  return detail::count_fibers(detail::require_worker("coop::this_runtime_fiber_count").group);
}

} // namespace coop
