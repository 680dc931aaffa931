// lib/src/diagnostics/metrics.cpp — coop::metrics_snapshot and its
// Prometheus text (coop/metrics.hpp): the runtime threads' counters
// (core/counters.hpp), their fibers by state, the stack pools and the
// offload pool.
#include "core/worker.hpp"
#include "diagnostics/dump.hpp"
#include "diagnostics/watchdog.hpp"
#include <coop/metrics.hpp>
#include <coop/offload.hpp>

#include <algorithm>
#include <cstdio>
#include <ostream>
#include <string>

namespace coop {

std::string_view to_string(wait_kind kind) noexcept {
  switch (kind) {
  case wait_kind::other:
    return "other";
  case wait_kind::read:
    return "read";
  case wait_kind::write:
    return "write";
  case wait_kind::accept:
    return "accept";
  case wait_kind::connect:
    return "connect";
  case wait_kind::channel:
    return "channel";
  case wait_kind::sync:
    return "sync";
  case wait_kind::sleep:
    return "sleep";
  case wait_kind::join:
    return "join";
  case wait_kind::select:
    return "select";
  case wait_kind::offload:
    return "offload";
  case wait_kind::hooked:
    return "hooked";
  case wait_kind::signal:
    return "signal";
  }
  return "other";
}

namespace {

duration_histogram copy_of(const detail::owned_histogram& h) {
  duration_histogram d;
  for (std::size_t i = 0; i < detail::owned_histogram::bounded; ++i)
    d.upper_bounds.push_back(static_cast<double>(detail::owned_histogram::upper_bound_ns(i)) / 1e9);
  for (std::size_t i = 0; i < detail::owned_histogram::buckets; ++i) {
    d.counts.push_back(h.count(i));
    d.count += d.counts.back();
  }
  d.sum_seconds = static_cast<double>(h.sum_ns()) / 1e9;
  return d;
}

thread_metrics metrics_of(detail::worker& w) {
  const detail::worker_counters& c = w.counters;
  thread_metrics t;
  t.runtime = w.group_number;
  t.thread = w.index;
  const detail::state_counts states = detail::count_states(w);
  t.fibers = states.fibers;
  t.running = states.running;
  t.parked = states.parked;
  std::uint64_t parked = 0;
  for (std::uint64_t n : states.parked)
    parked += n;
  t.ready = t.fibers - std::min(t.fibers, parked + t.running);
  t.fibers_spawned = c.spawned.get();
  t.fibers_finished = c.finished.get();
  t.context_switches = w.switches.load(std::memory_order_relaxed);
  t.parks = c.parks.get();
  t.reactor_visits = c.reactor_visits.get();
  t.handlers_run = c.handlers_run.get();
  t.ready_queue = c.ready_queue.get();
  t.scheduling_delay = copy_of(c.scheduling_delay);
  t.reactor_lag = copy_of(c.reactor_lag);
  t.stalls = c.stalls.get();
  t.longest_stall_seconds = static_cast<double>(c.longest_stall_ns.get()) / 1e9;
  const detail::stack_pool::counts stacks = w.stacks->count();
  t.stacks_mapped = stacks.mapped;
  t.stacks_cached = stacks.cached;
  t.stacks_unguarded = stacks.unguarded;
  t.serve_accepted = c.serve_accepted.get();
  t.serve_open = c.serve_open.get();
  t.serve_limit_waits = c.serve_limit_waits.get();
  return t;
}

// --- Prometheus text ---------------------------------------------------------

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

class exposition {
public:
  explicit exposition(std::ostream& out) : out_(out) {}

  /// `# HELP` and `# TYPE` of a metric family.
  void family(const char* name, const char* type, const char* help) {
    out_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
  }
  /// One sample of every thread: `value(t)`, labelled by runtime and thread.
  template <class Value> void per_thread(const char* name, const std::vector<thread_metrics>& threads, Value value) {
    for (const thread_metrics& t : threads)
      sample(name, labels(t), value(t));
  }
  void sample(const std::string& name, const std::string& labels, double v) {
    out_ << name;
    if (!labels.empty()) out_ << '{' << labels << '}';
    out_ << ' ' << number(v) << '\n';
  }
  void histogram(const char* name, const std::vector<thread_metrics>& threads,
                 const duration_histogram thread_metrics::*member) {
    for (const thread_metrics& t : threads) {
      const duration_histogram& h = t.*member;
      const std::string l = labels(t);
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < h.counts.size(); ++i) {
        cumulative += h.counts[i];
        const std::string le = i < h.upper_bounds.size() ? number(h.upper_bounds[i]) : "+Inf";
        sample(std::string(name) + "_bucket", l + ",le=\"" + le + '"', static_cast<double>(cumulative));
      }
      sample(std::string(name) + "_sum", l, h.sum_seconds);
      sample(std::string(name) + "_count", l, static_cast<double>(h.count));
    }
  }
  static std::string labels(const thread_metrics& t) {
    return "runtime=\"" + std::to_string(t.runtime) + "\",thread=\"" + std::to_string(t.thread) + '"';
  }

private:
  std::ostream& out_;
};

} // namespace

metrics metrics_snapshot() {
  metrics m;
  detail::with_watched_workers([&](std::span<detail::worker* const> workers) {
    for (detail::worker* w : workers)
      m.threads.push_back(metrics_of(*w));
  });
  std::sort(m.threads.begin(), m.threads.end(), [](const thread_metrics& a, const thread_metrics& b) {
    return a.runtime != b.runtime ? a.runtime < b.runtime : a.thread < b.thread;
  });
  const offload_stats o = get_offload_stats();
  m.offload = {o.queued, o.running, o.completed, o.threads};
  return m;
}

void write_prometheus(std::ostream& out) {
  const metrics m = metrics_snapshot();
  const auto& ts = m.threads;
  exposition e(out);
  auto metric = [&](const char* type, const char* name, const char* help, auto value) {
    e.family(name, type, help);
    e.per_thread(name, ts, [&](const thread_metrics& t) { return static_cast<double>(value(t)); });
  };
  auto gauge = [&](const char* name, const char* help, auto value) { metric("gauge", name, help, value); };
  auto counter = [&](const char* name, const char* help, auto value) { metric("counter", name, help, value); };
  using T = const thread_metrics&;
  gauge("coop_fibers", "Live fibers on the runtime thread.", [](T t) { return t.fibers; });
  gauge("coop_fibers_running", "1 while a fiber of the thread runs.", [](T t) { return t.running; });
  gauge("coop_fibers_ready", "Live fibers neither running nor parked.", [](T t) { return t.ready; });
  e.family("coop_fibers_parked", "gauge", "Fibers parked (waiting), by what they wait for.");
  for (const thread_metrics& t : ts)
    for (std::size_t k = 0; k < wait_kinds; ++k)
      e.sample("coop_fibers_parked",
               exposition::labels(t) + ",wait=\"" + std::string(to_string(static_cast<wait_kind>(k))) + '"',
               static_cast<double>(t.parked[k]));
  counter("coop_fibers_spawned_total", "Fibers launched on the thread.", [](T t) { return t.fibers_spawned; });
  counter("coop_fibers_finished_total", "Fibers that finished on the thread.", [](T t) { return t.fibers_finished; });
  counter("coop_context_switches_total", "Switches between fibers (and the scheduler).",
          [](T t) { return t.context_switches; });
  counter("coop_parks_total", "Switches away from a fiber that began to wait.", [](T t) { return t.parks; });
  counter("coop_reactor_visits_total", "Looks into the thread's io_context (epoll) for events.",
          [](T t) { return t.reactor_visits; });
  counter("coop_reactor_handlers_total", "Asio handlers run by the reactor visits.",
          [](T t) { return t.handlers_run; });
  gauge("coop_ready_queue_length", "Contexts in the thread's ready queues.", [](T t) { return t.ready_queue; });
  e.family("coop_scheduling_delay_seconds", "histogram", "How long a fiber that became ready waited to run.");
  e.histogram("coop_scheduling_delay_seconds", ts, &thread_metrics::scheduling_delay);
  e.family("coop_reactor_lag_seconds", "histogram",
           "How much later than planned the thread looked into its io_context while fibers were ready.");
  e.histogram("coop_reactor_lag_seconds", ts, &thread_metrics::reactor_lag);
  counter("coop_stalls_total", "Stall reports: a fiber ran past the stall threshold without yielding.",
          [](T t) { return t.stalls; });
  gauge("coop_stall_longest_seconds", "The longest stall reported on the thread.",
        [](T t) { return t.longest_stall_seconds; });
  gauge("coop_stacks_mapped", "Fiber stacks mapped by the thread's pool.", [](T t) { return t.stacks_mapped; });
  gauge("coop_stacks_cached", "Fiber stacks kept for reuse, unused.", [](T t) { return t.stacks_cached; });
  gauge("coop_stacks_unguarded", "Fiber stacks without a guard region (a canary instead).",
        [](T t) { return t.stacks_unguarded; });
  counter("coop_serve_accepted_total", "Connections accepted by coop::net::serve on the thread.",
          [](T t) { return t.serve_accepted; });
  gauge("coop_serve_connections_open", "Connections of coop::net::serve still served.",
        [](T t) { return t.serve_open; });
  counter("coop_serve_limit_waits_total", "Times coop::net::serve stopped accepting at max_connections.",
          [](T t) { return t.serve_limit_waits; });
  // The offload pool: one per process, no labels.
  auto process = [&](const char* type, const char* name, const char* help, std::uint64_t value) {
    e.family(name, type, help);
    e.sample(name, "", static_cast<double>(value));
  };
  const offload_metrics& o = m.offload;
  process("gauge", "coop_offload_jobs_queued", "Offloaded jobs waiting for a pool thread.", o.queued);
  process("gauge", "coop_offload_jobs_running", "Offloaded jobs being run.", o.running);
  process("counter", "coop_offload_jobs_completed_total", "Offloaded jobs done with.", o.completed);
  process("gauge", "coop_offload_threads", "Threads of the offload pool.", o.threads);
}

} // namespace coop
