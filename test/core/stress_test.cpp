#define BOOST_TEST_MODULE coop_stress
// test/core/stress_test.cpp — a seeded randomized stress test of the races
// between cancellation, timeouts, shields and closing, over channels,
// coop::select, coop::sleep_for and TCP streams, on runtimes of 1 to 4 threads.
//
// Environment:
//   COOP_STRESS_SECONDS    how long to run (default 5)
//   COOP_STRESS_SEED       the seed (default: from the clock); printed at start
//   COOP_STRESS_ITERATION  replay: run only this iteration's choices, over and over
//
// Each iteration draws its choices from (seed, iteration) and each fiber from
// its own generator, so "seed=S iteration=I" replays the same choices with
// COOP_STRESS_SEED=S COOP_STRESS_ITERATION=I (the timing, and so the race, may
// take a few runs to come back).
//
// Invariants (the check that enforces each one says which it is):
//  - items: every item pushed with status `success` is received exactly once,
//    by a consumer or by the final drain; an item whose push failed (timeout,
//    cancel, closed) is never received; nothing else is received.
//  - reasons: `timed_out` only when a coop::timeout of that fiber that applies
//    had expired; `cancelled` only when the fiber was cancelled; `closed` only
//    when the channel was closed; a timed call's `timeout` status only after
//    its own deadline; timed_out/cancelled are thrown as timeout_error/cancelled.
//  - shields: inside a coop::shield a wait is never interrupted by a cancel nor
//    by a timeout created outside the shield; after the shield, the next
//    blocking call fails with the interruption that became due meanwhile.
//  - sleeps: a successful sleep_for(d) lasted at least d; a sleep that starts
//    with an interruption due fails.
//  - sockets: the reader gets records 0, 1, 2... in order with nothing skipped
//    or repeated; at end of stream it has exactly the bytes the writer's
//    write_all calls reported as sent.
//  - liveness: every iteration ends (a fiber still waiting 5 s after the
//    channels closed is reported; a watchdog ends a hung process with the seed).
#include "support.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using item_t = std::int64_t;
using rng_t = std::mt19937_64;
namespace sys = boost::system;
namespace asio_error = boost::asio::error;

// ---------------------------------------------------------------------------
// Configuration, randomness, reporting

struct config {
  double seconds = 5;
  std::uint64_t seed = 0;
  std::optional<std::uint64_t> replay_iteration;
};

std::optional<std::uint64_t> env_u64(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::strtoull(v, nullptr, 10);
}

config read_config() {
  config c;
  if (const char* s = std::getenv("COOP_STRESS_SECONDS"); s && *s) c.seconds = std::strtod(s, nullptr);
  c.seed = env_u64("COOP_STRESS_SEED")
               .value_or(static_cast<std::uint64_t>(clock_type::now().time_since_epoch().count()) % 1000000007u);
  c.replay_iteration = env_u64("COOP_STRESS_ITERATION");
  return c;
}

std::string replay_line(const config& c, std::uint64_t iteration) {
  return "replay: COOP_STRESS_SEED=" + std::to_string(c.seed) + " COOP_STRESS_ITERATION=" + std::to_string(iteration) +
         " COOP_STRESS_SECONDS=" + std::to_string(static_cast<int>(c.seconds)) + " test_stress";
}

bool chance(rng_t& r, double p) {
  return std::uniform_real_distribution<double>(0, 1)(r) < p;
}
template <class T> T uniform(rng_t& r, T lo, T hi) {
  return std::uniform_int_distribution<T>(lo, hi)(r);
}
clock_type::duration random_us(rng_t& r, int lo, int hi) {
  return std::chrono::microseconds(uniform(r, lo, hi));
}
template <class T, std::size_t N> T pick(rng_t& r, const std::array<T, N>& options) {
  return options[uniform<std::size_t>(r, 0, N - 1)];
}
std::string fixed2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}
std::string us(clock_type::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(d).count()) + "us";
}

/// Outcome totals over the whole run (fibers of every thread add to them).
struct counts {
  std::atomic<std::uint64_t> delivered{0}, timed_out{0}, cancelled{0}, closed{0};
  std::atomic<std::uint64_t> pushed{0}, failed_pushes{0}, drained{0}, sleeps{0}, socket_records{0}, torn_writes{0};
};

/// A broken invariant: which check, and what happened.
struct finding {
  std::string check;
  std::string what;
};

/// The broken invariants of one iteration. Thread-safe.
class findings {
public:
  void add(std::string check, std::string what) {
    std::lock_guard lk(m_);
    list_.push_back({std::move(check), std::move(what)});
  }
  std::vector<finding> take() {
    std::lock_guard lk(m_);
    return std::move(list_);
  }

private:
  std::mutex m_;
  std::vector<finding> list_;
};

/// Ends the process, naming the seed and iteration, when one iteration runs
/// longer than `limit`: a hang must not hang CI.
class watchdog {
public:
  watchdog(const config& c, std::chrono::seconds limit) : cfg_(c), limit_(limit), thread_([this] { run(); }) {}
  ~watchdog() {
    {
      std::lock_guard lk(m_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void begin(std::uint64_t iteration) {
    std::lock_guard lk(m_);
    iteration_ = iteration;
    started_ = clock_type::now();
  }

private:
  void run() {
    std::unique_lock lk(m_);
    while (!cv_.wait_for(lk, std::chrono::milliseconds(100), [this] { return stop_; })) {
      if (clock_type::now() - started_ < limit_) continue;
      std::fprintf(stderr, "coop stress: HANG: iteration %llu has run for more than %lld s (seed=%llu)\n%s\n",
                   static_cast<unsigned long long>(iteration_), static_cast<long long>(limit_.count()),
                   static_cast<unsigned long long>(cfg_.seed), replay_line(cfg_, iteration_).c_str());
      std::fflush(stdout);
      std::fflush(stderr);
      std::_Exit(1);
    }
  }

  const config& cfg_;
  std::chrono::seconds limit_;
  std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::uint64_t iteration_ = 0;
  clock_type::time_point started_ = clock_type::now();
  std::thread thread_;
};

// ---------------------------------------------------------------------------
// One iteration's shared state, and its fibers

/// How often an iteration uses each kind of interruption.
struct mix {
  double timeout = 0.3; ///< a blocking call runs under a coop::timeout
  double shield = 0.15; ///< ... inside a coop::shield
  double cancel = 0.2;  ///< a fiber gets cancelled (at a random time)
  double close = 0.2;   ///< a channel gets closed early (at a random time)
};

/// A channel of the iteration, and whether anyone closed it.
struct test_channel {
  explicit test_channel(std::size_t capacity) : ch(capacity) {}
  coop::channel<item_t> ch;
  std::atomic<bool> closed{false}; ///< set just before `ch.close()`
};

struct iteration {
  iteration(unsigned threads, mix m, counts& totals) : threads(threads), m(m), totals(totals) {}
  unsigned threads;
  mix m;
  counts& totals;
  findings found;
  std::array<std::unique_ptr<test_channel>, 2> channels;

  void close(int c) {
    channels[static_cast<std::size_t>(c)]->closed = true;
    channels[static_cast<std::size_t>(c)]->ch.close();
  }
};

/// What was done to a fiber to cancel it. Set before `task::cancel()` is called.
struct cancel_flags {
  std::atomic<bool> sent{false};      ///< task::cancel() was (or is about to be) called
  std::atomic<bool> delivered{false}; ///< ... from the fiber's own thread, so it is in effect already
};

/// One fiber of an iteration: its name, random source, what happened to it,
/// and what it recorded.
struct fiber_ctx {
  fiber_ctx(iteration& it, std::string name, std::uint64_t seed) : it(it), name(std::move(name)), rng(seed) {}
  iteration& it;
  std::string name;
  rng_t rng;
  enum class role { producer, consumer, sleeper, other } kind = role::other;
  unsigned thread = 0;
  cancel_flags cancel;
  bool saw_cancel = false; ///< a blocking call failed with `cancelled`: the fiber winds down
  coop::task<void> task;

  // Channel fibers.
  std::array<bool, 2> open{true, true}; ///< channels this fiber has not seen closed
  std::vector<item_t> pushed, failed, received;

  void fail(const char* check, const std::string& what) { it.found.add(check, name + ": " + what); }
};

/// Runs a fiber's body; an exception escaping it breaks the test.
template <class Body> void run_body(fiber_ctx& f, Body body) {
  try {
    body();
  } catch (const std::exception& e) {
    f.fail("unexpected-exception", std::string("escaped the fiber: ") + e.what());
  }
}

// ---------------------------------------------------------------------------
// Interruptions of one blocking call, and the checks of its outcome

/// The interruptions one blocking call runs under (besides a cancel, which the
/// disruptor sends at its own time).
struct plan {
  std::optional<clock_type::duration> outer; ///< a coop::timeout around the call...
  bool disarm_outer = false;                 ///< ... disarmed with cancel() before the call
  bool shielded = false;                     ///< a coop::shield around the call...
  std::optional<clock_type::duration> inner; ///< ... and a coop::timeout inside the shield

  std::string describe() const {
    std::string s;
    if (outer) s += "timeout " + us(*outer) + (disarm_outer ? " (disarmed)" : "");
    if (shielded) s += std::string(s.empty() ? "" : ", ") + "shield" + (inner ? " + inner timeout " + us(*inner) : "");
    return s.empty() ? "no timeout" : s;
  }
};

plan random_plan(rng_t& r, const mix& m) {
  plan p;
  if (chance(r, m.timeout)) {
    p.outer = random_us(r, 0, 3000);
    p.disarm_outer = chance(r, 0.1);
  }
  if (chance(r, m.shield)) {
    p.shielded = true;
    if (chance(r, 0.5)) p.inner = random_us(r, 0, 3000);
  }
  return p;
}

/// A plan whose call is sure to end: it has a timeout that applies.
void make_bounded(rng_t& r, plan& p) {
  if (p.shielded && !p.inner) p.inner = random_us(r, 0, 3000);
  if (!p.shielded && (!p.outer || p.disarm_outer)) {
    p.outer = random_us(r, 0, 3000);
    p.disarm_outer = false;
  }
}

bool no_other_error(const sys::error_code&) {
  return false;
}

/// Runs a throwing call; returns the error it threw.
template <class F> sys::error_code catching(fiber_ctx& f, F&& fn) {
  try {
    fn();
    return {};
  } catch (const coop::timeout_error& e) {
    return e.code();
  } catch (const coop::cancelled& e) {
    return e.code();
  } catch (const boost::system::system_error& e) {
    // Invariant: interruptions are thrown as their own exception types.
    if (e.code() == coop::errc::timed_out || e.code() == coop::errc::cancelled)
      f.fail("wrong-exception-type", "interruption thrown as a plain system_error: " + e.code().message());
    return e.code();
  }
}

/// Checks why a call under plan `p` failed with `ec`. `outer` and `inner` are
/// the timeouts it ran under (null if none); `other_ok` accepts failures that
/// are not interruptions (end of stream...).
template <class OtherOk>
void check_reason(fiber_ctx& f, const plan& p, const char* what, const sys::error_code& ec, const coop::timeout* outer,
                  const coop::timeout* inner, OtherOk&& other_ok) {
  if (!ec) return;
  const bool outer_expired = outer && outer->expired();
  const bool inner_expired = inner && inner->expired();
  auto report = [&](const char* check, const std::string& detail) {
    f.fail(check, std::string(what) + " under [" + p.describe() + "] failed with '" + ec.message() + "': " + detail +
                      " (outer expired=" + std::to_string(outer_expired) + ", inner expired=" +
                      std::to_string(inner_expired) + ", cancel sent=" + std::to_string(f.cancel.sent.load()) + ")");
  };
  if (ec == coop::errc::timed_out) {
    ++f.it.totals.timed_out;
    // Invariant: timed_out only when a timeout that applies had expired; inside
    // a shield only the timeouts created inside it apply.
    if (inner_expired || (!p.shielded && outer_expired)) return;
    if (p.shielded && outer_expired)
      report("shield-timeout", "a timeout created outside the shield interrupted a shielded wait");
    else if (p.shielded && f.cancel.sent)
      report("shield-cancel-as-timed_out", "a cancel interrupted a shielded wait, reported as timed_out");
    else
      report("reason-timeout", "no timeout of this fiber had expired");
  } else if (ec == coop::errc::cancelled) {
    ++f.it.totals.cancelled;
    f.saw_cancel = true;
    // Invariant: cancelled only when the fiber was cancelled, and never inside a shield.
    if (!f.cancel.sent)
      report("reason-cancel", "the fiber was not cancelled");
    else if (p.shielded)
      report("shield-cancel", "a cancel interrupted a shielded wait");
  } else if (!other_ok(ec)) {
    if (p.shielded && ec == asio_error::operation_aborted)
      report("shield-aborted", "a shielded wait was aborted");
    else
      report("unexpected-error", "not an outcome this call may have");
  }
}

/// Invariant: an interruption that became due inside a shield is deferred, not
/// lost — the first blocking call after the shield fails with it. (A cancel
/// sent from another thread may still be on its way, so only one delivered on
/// this fiber's thread is expected.)
void check_after_shield(fiber_ctx& f, const plan& p, const char* what, const coop::timeout* outer) {
  const bool cancel_due = f.cancel.delivered;
  const bool timeout_due = outer && outer->expired();
  if (!cancel_due && !timeout_due) return;
  sys::error_code ec;
  coop::sleep_for(std::chrono::milliseconds(1), ec);
  if (ec == coop::errc::cancelled && f.cancel.sent) {
    ++f.it.totals.cancelled;
    f.saw_cancel = true;
    return;
  }
  if (ec == coop::errc::timed_out && outer && outer->expired()) {
    ++f.it.totals.timed_out;
    return;
  }
  f.fail("post-shield", std::string("after ") + what + " under [" + p.describe() + "] with " +
                            (cancel_due ? "a cancel" : "") + (cancel_due && timeout_due ? " and " : "") +
                            (timeout_due ? "an expired outer timeout" : "") +
                            " pending, the next blocking call (sleep_for) ended with '" +
                            (ec ? ec.message() : std::string("success")) + "'");
}

struct guarded_result {
  sys::error_code ec;
  bool due_before = false; ///< an interruption that applies was due when the call started
};

/// Runs `call` — one blocking call, returning its error — under plan `p`, and
/// checks the reason of a failure (and, after a shield, that nothing pending
/// was lost).
template <class Call, class OtherOk>
guarded_result guarded(fiber_ctx& f, const plan& p, const char* what, Call&& call, OtherOk&& other_ok) {
  std::optional<coop::timeout> outer;
  if (p.outer) {
    outer.emplace(*p.outer);
    if (p.disarm_outer) outer->cancel();
  }
  const coop::timeout* outer_ptr = outer ? &*outer : nullptr;
  guarded_result r;
  if (!p.shielded) {
    r.due_before = f.cancel.delivered || (outer && outer->expired());
    r.ec = call();
    check_reason(f, p, what, r.ec, outer_ptr, nullptr, other_ok);
    return r;
  }
  {
    coop::shield shield;
    std::optional<coop::timeout> inner;
    if (p.inner) inner.emplace(*p.inner);
    r.due_before = inner && inner->expired();
    r.ec = call();
    check_reason(f, p, what, r.ec, outer_ptr, inner ? &*inner : nullptr, other_ok);
  }
  check_after_shield(f, p, what, outer_ptr);
  return r;
}

template <class Call> guarded_result guarded(fiber_ctx& f, const plan& p, const char* what, Call&& call) {
  return guarded(f, p, what, std::forward<Call>(call), no_other_error);
}

/// A short pause (lets other fibers run, lets buffers fill). Cancellable.
void pause(fiber_ctx& f, int max_us) {
  guarded(f, plan{}, "pause (sleep_for)", [&] {
    sys::error_code ec;
    coop::sleep_for(random_us(f.rng, 0, max_us), ec);
    return ec;
  });
}

/// Invariant: `closed` only for a channel somebody closed.
void check_closed(fiber_ctx& f, const char* what, std::size_t channel) {
  ++f.it.totals.closed;
  if (!f.it.channels[channel]->closed)
    f.fail("reason-closed",
           std::string(what) + " reported channel " + std::to_string(channel) + " closed, but nobody closed it");
}

/// Invariant: a timed call's own `timeout` status comes only after its deadline.
void check_timeout_status(fiber_ctx& f, const char* what, clock_type::time_point started, clock_type::duration d) {
  ++f.it.totals.timed_out;
  auto took = clock_type::now() - started;
  if (took < d) f.fail("early-timeout-status", std::string(what) + "(" + us(d) + ") timed out after " + us(took));
}

// ---------------------------------------------------------------------------
// Producers, consumers, sleepers

std::vector<std::size_t> open_channels(const fiber_ctx& f) {
  std::vector<std::size_t> v;
  for (std::size_t c = 0; c < 2; ++c)
    if (f.open[c]) v.push_back(c);
  return v;
}

/// One attempt to push `item`: records it as pushed or failed, checks the outcome.
void push_once(fiber_ctx& f, item_t item) {
  enum kind { push_ec, push_throwing, push_for, select_send };
  static const char* const names[] = {"push(ec)", "push", "push_for", "select(send, send)"};
  auto open = open_channels(f);
  const std::size_t target = open[uniform<std::size_t>(f.rng, 0, open.size() - 1)];
  const int k = uniform(f.rng, 0, open.size() == 2 ? 3 : 2);
  const plan p = random_plan(f.rng, f.it.m);
  const auto own = random_us(f.rng, 0, 3000); // push_for's own deadline
  auto& ch = f.it.channels[target]->ch;

  auto status = coop::channel_status::timeout; // as long as nothing completed
  std::size_t where = target;                  // the channel `status` is about
  clock_type::time_point started;
  auto g = guarded(f, p, names[k], [&]() -> sys::error_code {
    sys::error_code ec;
    started = clock_type::now();
    item_t v = item;
    switch (k) {
    case push_ec:
      status = ch.push(std::move(v), ec);
      return ec;
    case push_throwing:
      return catching(f, [&] { status = ch.push(v); });
    case push_for:
      return catching(f, [&] { status = ch.push_for(std::move(v), own); });
    default:
      if (auto r = coop::select(coop::send(f.it.channels[0]->ch, v), coop::send(f.it.channels[1]->ch, v), ec)) {
        status = r->status;
        where = r->index;
      }
      return ec;
    }
  });

  if (!g.ec && status == coop::channel_status::success) {
    f.pushed.push_back(item);
    ++f.it.totals.pushed;
    return;
  }
  f.failed.push_back(item);
  ++f.it.totals.failed_pushes;
  if (g.ec) return; // the reason was checked by guarded()
  if (status == coop::channel_status::closed) {
    check_closed(f, names[k], where);
    f.open[where] = false;
  } else if (status == coop::channel_status::timeout && k == push_for) {
    check_timeout_status(f, "push_for", started, own);
  } else {
    f.fail("unexpected-status", std::string(names[k]) + " returned status " + std::to_string(static_cast<int>(status)) +
                                    " without an error");
  }
}

/// One attempt to receive: records the item, checks the outcome.
void pop_once(fiber_ctx& f) {
  enum kind { select_recv, pop_ec, pop_throwing, pop_for };
  static const char* const names[] = {"select(recv, recv)", "pop(ec)", "pop", "pop_for"};
  auto open = open_channels(f);
  const int k = open.size() == 2 && chance(f.rng, 0.4) ? select_recv : uniform(f.rng, 1, 3);
  const std::size_t source = open[uniform<std::size_t>(f.rng, 0, open.size() - 1)];
  plan p = random_plan(f.rng, f.it.m);
  // Liveness: a wait on one channel while the other is still open must end by
  // itself (producers may all be waiting on the other one).
  if (open.size() == 2 && (k == pop_ec || k == pop_throwing)) make_bounded(f.rng, p);
  const auto own = random_us(f.rng, 0, 3000); // pop_for's own deadline
  auto& ch = f.it.channels[source]->ch;

  std::optional<item_t> got;
  auto status = coop::channel_status::timeout; // as long as nothing completed
  std::size_t where = source;
  clock_type::time_point started;
  auto g = guarded(f, p, names[k], [&]() -> sys::error_code {
    sys::error_code ec;
    started = clock_type::now();
    switch (k) {
    case pop_ec:
      got = ch.pop(ec);
      if (!ec) status = got ? coop::channel_status::success : coop::channel_status::closed;
      return ec;
    case pop_throwing:
      return catching(f, [&] {
        got = ch.pop();
        status = got ? coop::channel_status::success : coop::channel_status::closed;
      });
    case pop_for:
      return catching(f, [&] {
        item_t v = 0;
        status = ch.pop_for(v, own);
        if (status == coop::channel_status::success) got = v;
      });
    default: {
      std::optional<item_t> x, y;
      if (auto r = coop::select(coop::recv(f.it.channels[0]->ch, x), coop::recv(f.it.channels[1]->ch, y), ec)) {
        status = r->status;
        where = r->index;
        got = r->index == 0 ? x : y;
        if (x && y) f.fail("select-twice", "select received from both channels");
      }
      return ec;
    }
    }
  });

  if (got) {
    // An item in hand is recorded whatever else happened (the item check then
    // sees it); getting one together with an error is itself wrong.
    f.received.push_back(*got);
    ++f.it.totals.delivered;
    if (g.ec || status != coop::channel_status::success)
      f.fail("item-with-failure", std::string(names[k]) + " returned item " + std::to_string(*got) +
                                      " but failed with '" + g.ec.message() + "'");
    return;
  }
  if (g.ec) return; // the reason was checked by guarded()
  if (status == coop::channel_status::closed) {
    check_closed(f, names[k], where);
    f.open[where] = false;
  } else if (status == coop::channel_status::timeout && k == pop_for) {
    check_timeout_status(f, "pop_for", started, own);
  } else {
    f.fail("unexpected-status", std::string(names[k]) + " returned no item, status " +
                                    std::to_string(static_cast<int>(status)) + ", no error");
  }
}

/// Pushes `quota` unique items (first, first+1, ...), each once, until
/// cancelled or both channels are closed.
void produce(fiber_ctx& f, int quota, item_t first) {
  for (int i = 0; i < quota && !f.saw_cancel && (f.open[0] || f.open[1]); ++i) {
    if (chance(f.rng, 0.1)) pause(f, 500);
    if (!f.saw_cancel) push_once(f, first + i);
  }
}

/// Receives until both channels are closed and drained, or cancelled.
void consume(fiber_ctx& f) {
  while ((f.open[0] || f.open[1]) && !f.saw_cancel) {
    if (chance(f.rng, 0.05)) pause(f, 500);
    if (!f.saw_cancel) pop_once(f);
  }
}

/// sleep_for under random timeouts, shields and cancels.
void sleep_around(fiber_ctx& f, int sleeps) {
  for (int i = 0; i < sleeps && !f.saw_cancel; ++i) {
    const plan p = random_plan(f.rng, f.it.m);
    const auto d = random_us(f.rng, 0, 1500);
    const bool throwing = chance(f.rng, 0.5);
    clock_type::time_point started;
    auto g = guarded(f, p, throwing ? "sleep_for" : "sleep_for(ec)", [&] {
      started = clock_type::now();
      sys::error_code ec;
      if (throwing) return catching(f, [&] { coop::sleep_for(d); });
      coop::sleep_for(d, ec);
      return ec;
    });
    auto took = clock_type::now() - started;
    ++f.it.totals.sleeps;
    // Invariant: a sleep that succeeded lasted at least its duration.
    if (!g.ec && took < d) f.fail("early-wake", "sleep_for(" + us(d) + ") returned after " + us(took));
    // Invariant: a sleep always blocks, so one started with an interruption due fails.
    if (!g.ec && g.due_before)
      f.fail("not-interrupted", "sleep_for(" + us(d) + ") under [" + p.describe() +
                                    "] succeeded although an interruption was due when it started");
  }
}

// ---------------------------------------------------------------------------
// TCP streams: numbered 8-byte records under timeouts and cancels

constexpr std::size_t record_size = 8;

/// One connected pair. The writer sends records 0, 1, 2... (little-endian
/// numbers); the reader checks each as it completes.
struct stream_pair {
  stream_pair(iteration& it, std::string name, rng_t& rng)
      : writer(it, name + " writer", rng()), reader(it, name + " reader", rng()) {}
  std::optional<coop::net::tcp_stream> writer_end, reader_end;
  fiber_ctx writer, reader;
  std::uint64_t total = 0; ///< records the writer means to send

  // Writer's account.
  std::uint64_t sent_bytes = 0;    ///< bytes write_all reported as sent
  std::uint64_t unknown_bytes = 0; ///< a failed throwing write_all sent up to this many more
  bool reader_closed = false;      ///< the reader closed its end: the writer may see a reset
  bool reader_started = false;     ///< the reader's fiber ran (one cancelled before it started never does)

  // Reader's account.
  std::uint64_t received_bytes = 0;
  std::uint64_t next_record = 0;
  std::array<unsigned char, record_size> partial{};
  bool reader_eof = false;
  bool broken = false; ///< a wrong record was reported

  void receive(const unsigned char* data, std::size_t n) {
    for (std::size_t i = 0; i < n && !broken; ++i) {
      partial[received_bytes++ % record_size] = data[i];
      if (received_bytes % record_size != 0) continue;
      std::uint64_t v = 0;
      for (std::size_t b = record_size; b-- > 0;)
        v = (v << 8) | partial[b];
      // Invariant: records arrive in order, none skipped, none twice.
      if (v != next_record) {
        reader.fail("socket-order", "expected record " + std::to_string(next_record) + ", got " + std::to_string(v));
        broken = true;
      }
      ++next_record;
      ++reader.it.totals.socket_records;
    }
  }
};

/// Sends the records in batches with write_all. A write that fails after
/// sending part of a batch ends the writing (the stream now holds a partial
/// record); one that sent nothing may be retried.
void write_records(stream_pair& s) {
  fiber_ctx& f = s.writer;
  auto& w = *s.writer_end;
  std::vector<unsigned char> buf;
  std::uint64_t seq = 0;
  auto peer_gone = [&](const sys::error_code& ec) {
    return s.reader_closed && (ec == asio_error::broken_pipe || ec == asio_error::connection_reset ||
                               ec == asio_error::connection_aborted);
  };
  while (seq < s.total && !f.saw_cancel) {
    const auto batch = std::min<std::uint64_t>(uniform<std::uint64_t>(f.rng, 1, 64), s.total - seq);
    buf.clear();
    for (std::uint64_t r = seq; r < seq + batch; ++r)
      for (std::size_t b = 0; b < record_size; ++b)
        buf.push_back(static_cast<unsigned char>(r >> (8 * b)));
    const plan p = random_plan(f.rng, f.it.m);
    const bool throwing = chance(f.rng, 0.25);
    std::size_t n = 0;
    auto g = guarded(
        f, p, throwing ? "write_all" : "write_all(ec)",
        [&] {
          sys::error_code ec;
          if (throwing) return catching(f, [&] { n = w.write_all(boost::asio::buffer(buf)); });
          n = w.write_all(boost::asio::buffer(buf), ec);
          return ec;
        },
        peer_gone);
    if (!g.ec) {
      if (n != buf.size())
        f.fail("short-write", "write_all succeeded with " + std::to_string(n) + " of " + std::to_string(buf.size()));
      s.sent_bytes += n;
      seq += batch;
      continue;
    }
    if (throwing) { // the count is unknown: anything from none to all of it was sent
      s.unknown_bytes = buf.size();
      ++f.it.totals.torn_writes;
      break;
    }
    s.sent_bytes += n;
    if (n > 0) ++f.it.totals.torn_writes;
    const bool interrupted = g.ec == coop::errc::timed_out || g.ec == asio_error::operation_aborted;
    if (n > 0 || !interrupted) break; // partial record sent, cancelled, or peer gone: stop using the stream
  }
  sys::error_code ignored;
  w.shutdown_send(ignored);
}

/// Reads chunks of random size with read_exact until end of stream; an
/// interrupted read keeps what it got and the reading goes on.
void read_records(stream_pair& s) {
  fiber_ctx& f = s.reader;
  auto& r = *s.reader_end;
  std::array<unsigned char, 4096> buf;
  auto eof = [](const sys::error_code& ec) { return ec == asio_error::eof; };
  while (!f.saw_cancel) {
    if (chance(f.rng, 0.1)) pause(f, 1000);
    if (f.saw_cancel) break;
    const auto want = uniform<std::size_t>(f.rng, 1, chance(f.rng, 0.7) ? 64 : buf.size());
    const plan p = random_plan(f.rng, f.it.m);
    std::size_t n = 0;
    auto g = guarded(
        f, p, "read_exact(ec)",
        [&] {
          sys::error_code ec;
          n = r.read_exact(boost::asio::buffer(buf.data(), want), ec);
          return ec;
        },
        eof);
    s.receive(buf.data(), n);
    if (!g.ec) {
      if (n != want)
        f.fail("short-read", "read_exact succeeded with " + std::to_string(n) + " of " + std::to_string(want));
      continue;
    }
    if (g.ec == asio_error::eof) {
      s.reader_eof = true;
      break;
    }
    if (g.ec == coop::errc::timed_out || g.ec == asio_error::operation_aborted) continue;
    break; // cancelled, or an unexpected error (reported)
  }
  if (!s.reader_eof) { // gave up: close, so a writer blocked on a full buffer fails instead of hanging
    s.reader_closed = true;
    sys::error_code ignored;
    r.close(ignored);
  }
}

/// Checks one pair's totals once both fibers have finished.
void check_stream(stream_pair& s) {
  if (s.broken) return;
  const auto max_bytes = s.sent_bytes + s.unknown_bytes;
  // Invariant: the reader never gets more than the writer sent.
  if (s.received_bytes > max_bytes)
    s.reader.fail("socket-count", "received " + std::to_string(s.received_bytes) + " bytes, but at most " +
                                      std::to_string(max_bytes) + " were sent");
  // Invariant: at end of stream the reader has every byte write_all reported sent.
  if (s.reader_eof && s.received_bytes < s.sent_bytes)
    s.reader.fail("socket-count", "end of stream after " + std::to_string(s.received_bytes) + " bytes, but " +
                                      std::to_string(s.sent_bytes) + " were sent");
}

/// Sets up a few connected pairs on this runtime thread, runs a writer and a
/// reader on each, cancels some of them at random times, and checks the streams.
void socket_scenario(iteration& it, rng_t rng) {
  coop::net::tcp_listener listener(test_support::loopback());
  std::vector<std::unique_ptr<stream_pair>> pairs;
  const int n = uniform(rng, 1, 3);
  for (int i = 0; i < n; ++i) {
    auto s = std::make_unique<stream_pair>(it, "stream " + std::to_string(i), rng);
    coop::timeout setup(std::chrono::seconds(5));
    auto connecting = coop::spawn([ep = listener.local_endpoint()] { return coop::net::connect(ep); });
    coop::net::tcp_stream accepted = listener.accept();
    coop::net::tcp_stream connected = connecting.get();
    const bool client_writes = chance(rng, 0.5);
    s->writer_end.emplace(std::move(client_writes ? connected : accepted));
    s->reader_end.emplace(std::move(client_writes ? accepted : connected));
    // Small send buffers, so writes block and interruptions land mid-write
    // (receive buffers stay large enough for the TCP window not to stall).
    const int send_sizes[] = {2048, 8192, 32768};
    const int receive_sizes[] = {32768, 131072};
    s->writer_end->socket().set_option(boost::asio::socket_base::send_buffer_size(send_sizes[uniform(rng, 0, 2)]));
    s->reader_end->socket().set_option(
        boost::asio::socket_base::receive_buffer_size(receive_sizes[uniform(rng, 0, 1)]));
    s->total = uniform<std::uint64_t>(rng, 100, 20000);
    pairs.push_back(std::move(s));
  }
  for (auto& s : pairs) {
    s->writer.task = coop::spawn([p = s.get()] { run_body(p->writer, [p] { write_records(*p); }); });
    s->reader.task = coop::spawn([p = s.get()] {
      p->reader_started = true;
      run_body(p->reader, [p] { read_records(*p); });
    });
  }
  // Cancel some writers and readers at random times (delivered at once: same thread).
  struct cancel_event {
    clock_type::duration at;
    stream_pair* pair;
    bool reader;
    fiber_ctx& victim() const { return reader ? pair->reader : pair->writer; }
  };
  std::vector<cancel_event> events;
  for (auto& s : pairs)
    if (chance(rng, it.m.cancel)) events.push_back({random_us(rng, 0, 8000), s.get(), chance(rng, 0.5)});
  std::sort(events.begin(), events.end(), [](auto& a, auto& b) { return a.at < b.at; });
  const auto t0 = clock_type::now();
  for (auto& e : events) {
    coop::sleep_until(t0 + e.at);
    e.victim().cancel.sent = true;
    e.victim().cancel.delivered = true;
    e.victim().task.cancel();
  }
  // A fiber cancelled before it started never runs (coop's rule), so it
  // never does its part at the end of the stream. (A timer-woken fiber runs
  // before fibers spawned earlier: this scenario's cancel can come first.)
  // A reader that gives up closes its end, so that a writer blocked on a
  // full buffer fails instead of waiting forever: done here for one that
  // never ran.
  for (auto& e : events) {
    if (!e.reader) continue;
    e.victim().task.join();
    if (!e.pair->reader_started) {
      e.pair->reader_closed = true;
      sys::error_code ignored;
      e.pair->reader_end->close(ignored);
    }
  }
  for (auto& s : pairs) {
    s->writer.task.join();
    // And a writer shuts its end down when it ends, so that the reader sees
    // the end of the stream: done here for one that never ran.
    sys::error_code ignored;
    s->writer_end->shutdown_send(ignored);
    s->reader.task.join();
  }
  for (auto& s : pairs)
    check_stream(*s);
}

// ---------------------------------------------------------------------------
// One iteration

/// Cancels random fibers and closes random channels at random times.
void disrupt(iteration& it, std::vector<std::unique_ptr<fiber_ctx>>& victims, unsigned my_thread, rng_t rng) {
  struct event {
    clock_type::duration at;
    fiber_ctx* victim; // or, when null:
    int channel;
  };
  std::vector<event> events;
  for (auto& v : victims)
    if (chance(rng, it.m.cancel)) events.push_back({random_us(rng, 0, 6000), v.get(), -1});
  for (int c = 0; c < 2; ++c)
    if (chance(rng, it.m.close)) events.push_back({random_us(rng, 0, 8000), nullptr, c});
  std::sort(events.begin(), events.end(), [](auto& a, auto& b) { return a.at < b.at; });
  const auto t0 = clock_type::now();
  for (auto& e : events) {
    coop::sleep_until(t0 + e.at);
    if (!e.victim) {
      it.close(e.channel);
      continue;
    }
    e.victim->cancel.sent = true;
    if (e.victim->thread == my_thread) e.victim->cancel.delivered = true; // task::cancel acts at once
    e.victim->task.cancel();
  }
}

/// Waits on this plain thread until `done()`, for at most `budget`.
template <class Pred> bool wait_for(Pred done, clock_type::duration budget) {
  const auto end = clock_type::now() + budget;
  while (!done()) {
    if (clock_type::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

std::string not_done(const std::vector<fiber_ctx*>& fibers) {
  std::string s;
  for (auto* f : fibers)
    if (!f->task.done()) s += (s.empty() ? "" : ", ") + f->name;
  return s;
}

/// Invariant: received (consumers + final drain) == pushed successfully, each
/// once; a failed push is never received.
void check_items(iteration& it, const std::vector<std::unique_ptr<fiber_ctx>>& fibers,
                 const std::vector<item_t>& drained) {
  std::vector<item_t> pushed, failed, got(drained);
  for (auto& f : fibers) {
    pushed.insert(pushed.end(), f->pushed.begin(), f->pushed.end());
    failed.insert(failed.end(), f->failed.begin(), f->failed.end());
    got.insert(got.end(), f->received.begin(), f->received.end());
  }
  std::sort(pushed.begin(), pushed.end());
  std::sort(failed.begin(), failed.end());
  std::sort(got.begin(), got.end());
  auto some = [](const std::vector<item_t>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size() && i < 8; ++i)
      s += (i ? " " : "") + std::to_string(v[i]);
    return s + (v.size() > 8 ? " ..." : "");
  };
  std::vector<item_t> twice, unique = got;
  for (std::size_t i = 1; i < got.size(); ++i)
    if (got[i] == got[i - 1]) twice.push_back(got[i]);
  unique.erase(std::unique(unique.begin(), unique.end()), unique.end());
  if (!twice.empty()) it.found.add("duplicate", std::to_string(twice.size()) + " items received twice: " + some(twice));

  std::vector<item_t> lost, failed_but_got, unknown, known;
  std::set_difference(pushed.begin(), pushed.end(), unique.begin(), unique.end(), std::back_inserter(lost));
  std::set_intersection(unique.begin(), unique.end(), failed.begin(), failed.end(), std::back_inserter(failed_but_got));
  std::merge(pushed.begin(), pushed.end(), failed.begin(), failed.end(), std::back_inserter(known));
  std::set_difference(unique.begin(), unique.end(), known.begin(), known.end(), std::back_inserter(unknown));
  if (!lost.empty())
    it.found.add("lost", std::to_string(lost.size()) + " items pushed successfully but never received: " + some(lost));
  if (!failed_but_got.empty())
    it.found.add("failed-item-delivered", std::to_string(failed_but_got.size()) +
                                              " items whose push failed were received: " + some(failed_but_got));
  if (!unknown.empty())
    it.found.add("unknown-item",
                 std::to_string(unknown.size()) + " items received that nobody pushed: " + some(unknown));
}

struct iteration_report {
  unsigned threads = 0;
  std::string shape; ///< what ran, for failure messages
  std::vector<finding> failures;
};

iteration_report run_iteration(std::uint64_t seed, std::uint64_t index, counts& totals) {
  std::seed_seq seq{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32),
                    static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32)};
  rng_t rng(seq);
  mix m;
  m.timeout = pick(rng, std::array{0.1, 0.3, 0.6});
  m.shield = pick(rng, std::array{0.0, 0.15, 0.4});
  m.cancel = pick(rng, std::array{0.0, 0.15, 0.4});
  m.close = pick(rng, std::array{0.0, 0.25});
  iteration it(uniform(rng, 1u, 4u), m, totals);
  std::array<std::size_t, 2> caps{};
  for (std::size_t c = 0; c < 2; ++c) {
    caps[c] = pick(rng, std::array<std::size_t, 4>{0, 1, 4, 64});
    it.channels[c] = std::make_unique<test_channel>(caps[c]);
  }
  const int producers = uniform(rng, 1, 6), consumers = uniform(rng, 1, 6), sleepers = uniform(rng, 0, 3);
  const bool sockets = chance(rng, 0.6);

  iteration_report rep;
  rep.threads = it.threads;
  rep.shape = std::to_string(it.threads) + " threads, capacities " + std::to_string(caps[0]) + "/" +
              std::to_string(caps[1]) + ", " + std::to_string(producers) + " producers, " + std::to_string(consumers) +
              " consumers, " + std::to_string(sleepers) + " sleepers" + (sockets ? ", sockets" : "") + "; p(timeout) " +
              fixed2(m.timeout) + " p(shield) " + fixed2(m.shield) + " p(cancel) " + fixed2(m.cancel) + " p(close) " +
              fixed2(m.close);

  std::vector<std::unique_ptr<fiber_ctx>> fibers; // producers, consumers, sleepers: the disruptor's victims
  std::vector<fiber_ctx*> producer_list, consumer_list, all;
  auto add = [&](const std::string& name, fiber_ctx::role kind, std::vector<fiber_ctx*>* list) {
    fibers.push_back(std::make_unique<fiber_ctx>(it, name, rng()));
    fibers.back()->kind = kind;
    fibers.back()->thread = uniform(rng, 0u, it.threads - 1);
    fibers.back()->name += " @" + std::to_string(fibers.back()->thread);
    if (list) list->push_back(fibers.back().get());
    all.push_back(fibers.back().get());
  };
  for (int i = 0; i < producers; ++i)
    add("producer " + std::to_string(i), fiber_ctx::role::producer, &producer_list);
  for (int i = 0; i < consumers; ++i)
    add("consumer " + std::to_string(i), fiber_ctx::role::consumer, &consumer_list);
  for (int i = 0; i < sleepers; ++i)
    add("sleeper " + std::to_string(i), fiber_ctx::role::sleeper, nullptr);

  // Declared before the runtime: its destructor waits for the fibers that use them.
  fiber_ctx sockets_ctx(it, "sockets", rng()), disruptor_ctx(it, "disruptor", rng());
  sockets_ctx.thread = uniform(rng, 0u, it.threads - 1);
  disruptor_ctx.thread = uniform(rng, 0u, it.threads - 1);
  std::vector<item_t> drained;
  {
    coop::runtime rt(it.threads);
    int next_producer = 0;
    for (auto& f : fibers) {
      fiber_ctx* p = f.get();
      const int quota = uniform(rng, 5, 150);
      const int sleeps = uniform(rng, 5, 30);
      const item_t first = static_cast<item_t>(next_producer) * 1000000 + 1;
      if (f->kind == fiber_ctx::role::producer) {
        ++next_producer;
        f->task = rt.spawn_on(f->thread, [p, quota, first] { run_body(*p, [&] { produce(*p, quota, first); }); });
      } else if (f->kind == fiber_ctx::role::consumer) {
        f->task = rt.spawn_on(f->thread, [p] { run_body(*p, [&] { consume(*p); }); });
      } else {
        f->task = rt.spawn_on(f->thread, [p, sleeps] { run_body(*p, [&] { sleep_around(*p, sleeps); }); });
      }
    }
    if (sockets) {
      sockets_ctx.task = rt.spawn_on(
          sockets_ctx.thread, [&] { run_body(sockets_ctx, [&] { socket_scenario(it, rng_t(sockets_ctx.rng())); }); });
      all.push_back(&sockets_ctx);
    }
    disruptor_ctx.task = rt.spawn_on(disruptor_ctx.thread, [&] {
      run_body(disruptor_ctx, [&] { disrupt(it, fibers, disruptor_ctx.thread, rng_t(disruptor_ctx.rng())); });
    });
    all.push_back(&disruptor_ctx);

    // Close both channels once the producers are done (or nobody consumes any
    // more); that ends every consumer and every push still waiting.
    auto all_done = [](const std::vector<fiber_ctx*>& v) {
      return std::all_of(v.begin(), v.end(), [](auto* f) { return f->task.done(); });
    };
    // A stuck fiber is reported at once too: the runtime's destructor below
    // may then hang until the watchdog ends the process.
    auto stuck = [&](const std::string& what) {
      std::printf("coop stress: STUCK seed=%llu iteration=%llu (%s): %s\n", static_cast<unsigned long long>(seed),
                  static_cast<unsigned long long>(index), rep.shape.c_str(), what.c_str());
      std::fflush(stdout);
      it.found.add("stuck", what);
    };
    if (!wait_for([&] { return all_done(producer_list) || all_done(consumer_list); }, std::chrono::seconds(5)))
      stuck("after 5 s neither all producers nor all consumers have finished; running: " + not_done(all));
    it.close(0);
    it.close(1);
    // Invariant: once the channels are closed, every fiber ends by itself.
    if (!wait_for([&] { return all_done(all); }, std::chrono::seconds(5)))
      stuck("5 s after the channels closed, still running: " + not_done(all));
  } // the runtime's destructor waits for every fiber

  for (auto& c : it.channels)
    while (auto v = c->ch.try_pop())
      drained.push_back(*v);
  totals.drained += drained.size();
  check_items(it, fibers, drained);
  rep.failures = it.found.take();
  return rep;
}

} // namespace

BOOST_AUTO_TEST_CASE(cancel_timeout_shield_close_races) {
  std::signal(SIGPIPE, SIG_IGN); // a write to a reset stream must fail, not kill the test
  const config cfg = read_config();
  std::printf("coop stress: seed=%llu seconds=%g%s\n", static_cast<unsigned long long>(cfg.seed), cfg.seconds,
              cfg.replay_iteration ? (" replaying iteration " + std::to_string(*cfg.replay_iteration)).c_str() : "");
  std::fflush(stdout);

  watchdog dog(cfg, std::chrono::seconds(20));
  counts totals;
  std::array<std::uint64_t, 5> per_threads{};
  std::map<std::string, std::uint64_t> by_check;
  std::uint64_t iterations = 0, failed_iterations = 0;
  const auto end = clock_type::now() + std::chrono::duration<double>(cfg.seconds);
  do {
    const std::uint64_t index = cfg.replay_iteration.value_or(iterations);
    dog.begin(index);
    iteration_report rep = run_iteration(cfg.seed, index, totals);
    ++iterations;
    ++per_threads[rep.threads];
    if (rep.failures.empty()) continue;
    ++failed_iterations;
    for (auto& f : rep.failures)
      ++by_check[f.check];
    // Full detail for the first failing iterations, one line each after that.
    const std::size_t detail = failed_iterations <= 10 ? 6 : 1;
    std::printf("coop stress: FAIL seed=%llu iteration=%llu (%s): %zu broken invariants\n",
                static_cast<unsigned long long>(cfg.seed), static_cast<unsigned long long>(index), rep.shape.c_str(),
                rep.failures.size());
    for (std::size_t i = 0; i < rep.failures.size() && i < detail; ++i)
      std::printf("  [%s] %s\n", rep.failures[i].check.c_str(), rep.failures[i].what.c_str());
    std::printf("  %s\n", replay_line(cfg, index).c_str());
    std::fflush(stdout);
    if (failed_iterations <= 10)
      BOOST_ERROR("stress: seed=" << cfg.seed << " iteration=" << index << ": [" << rep.failures[0].check << "] "
                                  << rep.failures[0].what);
  } while (clock_type::now() < end);

  std::string checks;
  for (auto& [check, n] : by_check)
    checks += (checks.empty() ? "" : " ") + check + "=" + std::to_string(n);
  std::printf(
      "coop stress: seed=%llu iterations=%llu threads[1]=%llu threads[2]=%llu threads[3]=%llu "
      "threads[4]=%llu delivered=%llu timed_out=%llu cancelled=%llu closed=%llu (pushed=%llu "
      "failed_pushes=%llu drained=%llu sleeps=%llu socket_records=%llu torn_writes=%llu) failed_iterations=%llu%s%s\n",
      static_cast<unsigned long long>(cfg.seed), static_cast<unsigned long long>(iterations),
      static_cast<unsigned long long>(per_threads[1]), static_cast<unsigned long long>(per_threads[2]),
      static_cast<unsigned long long>(per_threads[3]), static_cast<unsigned long long>(per_threads[4]),
      static_cast<unsigned long long>(totals.delivered.load()),
      static_cast<unsigned long long>(totals.timed_out.load()),
      static_cast<unsigned long long>(totals.cancelled.load()), static_cast<unsigned long long>(totals.closed.load()),
      static_cast<unsigned long long>(totals.pushed.load()),
      static_cast<unsigned long long>(totals.failed_pushes.load()),
      static_cast<unsigned long long>(totals.drained.load()), static_cast<unsigned long long>(totals.sleeps.load()),
      static_cast<unsigned long long>(totals.socket_records.load()),
      static_cast<unsigned long long>(totals.torn_writes.load()), static_cast<unsigned long long>(failed_iterations),
      checks.empty() ? "" : " broken: ", checks.c_str());
  std::fflush(stdout);
  BOOST_TEST(failed_iterations == 0u, "stress: " << failed_iterations << " of " << iterations
                                                 << " iterations broke invariants (seed " << cfg.seed << ")");
}
