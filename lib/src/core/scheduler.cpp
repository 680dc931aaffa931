#include "core/scheduler.hpp"
#include "core/worker.hpp"

#include <boost/asio/post.hpp>
#include <boost/fiber/type.hpp>

#include <algorithm>
#include <exception>
#include <iostream>

namespace coop::detail {

using boost::fibers::context;
using clock = std::chrono::steady_clock;

scheduler::scheduler(worker& w) noexcept : worker_(w) {}

void scheduler::awakened(context* ctx) noexcept {
  auto* props = static_cast<fiber_state*>(ctx->get_properties());
  if (!props) {
    // First time ready (a new fiber, or the thread's main or dispatcher
    // context at its first coop::run): it gets its state now.
    props = new fiber_state(ctx);
    ctx->set_properties(props);
  }
  // The main and dispatcher contexts outlive a coop::run; point them at the
  // worker that schedules them now.
  props->owner = &worker_;
  // The running context made ready: a yield (pick_next follows at once), or
  // a fiber launched with launch::dispatch, which Boost.Fiber resumes
  // without asking pick_next. Until the next pick_next, the running context
  // is found the slow way (worker::current_known).
  if (ctx == worker_.current_context) worker_.current_known = false;
  const std::uint64_t now = ticks();
  props->ready_since = now;
  const lane l = lane_for(ctx, *props);
  if (queues_[l].empty()) { // its wait starts now
    last_served_[l] = now;
    last_served_pick_[l] = picks_;
  }
  ctx->ready_link(queues_[l]);
  worker_.counters.ready_queue.add();
}

scheduler::lane scheduler::lane_for(context* ctx, fiber_state& props) noexcept {
  if (!dispatcher_ && ctx->is_context(boost::fibers::type::dispatcher_context)) dispatcher_ = ctx;
  if (ctx == dispatcher_) {
    dispatcher_queued_ = true;
    return yielded;
  }
  if (props.yielded) {
    props.yielded = false;
    return yielded;
  }
  // Made ready while the dispatcher runs: by an Asio handler (I/O, timers,
  // a post from another thread), Boost.Fiber's sleep queue or its
  // remote-ready queue. Otherwise by a fiber of this thread, or new.
  return running() == dispatcher_ ? from_reactor : from_fiber;
}

const context* scheduler::running() const noexcept {
  return worker_.current_known ? worker_.current_context : context::active();
}

bool scheduler::in_dispatcher() const noexcept {
  return running()->is_context(boost::fibers::type::dispatcher_context);
}

context* scheduler::pick_next() noexcept {
  // The fiber we switch away from (also when !current_known: after a yield
  // it still is; otherwise a live context, checked harmlessly): if its stack
  // has no guard region, an overflow ends here, before another fiber runs.
  check_stack_canary(worker_.current_context);
  count_park();
  std::uint64_t now = ticks();
  if (now - last_dispatch_ >= poll_interval_ticks_ && has_ready_fibers()) {
    if (in_dispatcher()) {
      // The dispatcher has just moved due sleepers and remotely readied
      // fibers to the ready queues. Only it runs handlers: it is in no ready
      // queue, so a handler can ready any other fiber safely.
      last_dispatch_ = now;
      if (now - last_reactor_visit_ >= visit_interval_) {
        // How late the visit is against the interval it meant to keep.
        worker_.counters.reactor_lag.record(to_ns(now - last_reactor_visit_ - visit_interval_));
        visit_reactor(now);
        now = ticks();
      }
    } else if (dispatcher_queued_) {
      // The dispatcher is due: it goes next, wherever it stands.
      auto& q = queues_[yielded];
      q.erase(q.iterator_to(*dispatcher_));
      if (running_lane_ < lanes) {
        last_served_[running_lane_] = now;
        last_served_pick_[running_lane_] = picks_;
      }
      running_lane_ = lanes; // not a turn of the yielded lane
      return resume(dispatcher_, now);
    }
  }
  if (!has_ready_fibers()) {
    // Only the dispatcher gets here (while a fiber runs, the dispatcher is in
    // a ready queue): it goes on running, the current context stays.
    worker_.switches.store(worker_.switches.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    worker_.running.store(0, std::memory_order_relaxed);
    return nullptr;
  }
  // The fiber that ran (from lane running_lane_) has just switched out.
  ++picks_;
  if (running_lane_ < lanes) {
    last_served_[running_lane_] = now;
    last_served_pick_[running_lane_] = picks_;
  }
  unsigned l = from_reactor;
  if (owed_ < lanes && !queues_[owed_].empty() && now - turn_start_ < lane_quantum_ticks_ &&
      picks_ - turn_start_pick_ < lane_turn_picks) {
    l = owed_; // the turn of a lane that waited goes on
  } else {
    owed_ = lanes;
    while (queues_[l].empty())
      ++l;
    // A lane that has waited takes a turn: the one that waited longest,
    // the first lane itself included (lower lanes' turns must not keep it
    // waiting either).
    for (unsigned k = l; k < lanes; ++k)
      if (!queues_[k].empty() &&
          (picks_ - last_served_pick_[k] >= lane_turn_picks || now - last_served_[k] >= lane_max_wait_ticks_) &&
          (owed_ == lanes || last_served_[k] < last_served_[owed_]))
        owed_ = k;
    if (owed_ < lanes) {
      l = owed_;
      turn_start_ = now;
      turn_start_pick_ = picks_;
    }
  }
  running_lane_ = l;
  auto& queue = queues_[l];
  context* ctx = &queue.front();
  queue.pop_front();
  return resume(ctx, now);
}

context* scheduler::resume(context* ctx, std::uint64_t now) noexcept {
  // What the watchdog needs to see stalls (lib/src/diagnostics/watchdog.cpp): a switch
  // happened, and to which fiber.
  worker_.switches.store(worker_.switches.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  worker_.counters.ready_queue.sub();
  if (ctx == dispatcher_) dispatcher_queued_ = false;
  auto* props = static_cast<fiber_state*>(ctx->get_properties());
  worker_.running.store(props->id, std::memory_order_relaxed);
  props->direct_io_streak = 0;
  // Scheduling delay, for the metrics' histogram, and noted when it passes
  // the report threshold (rare) for the watchdog to report. A clock that
  // went backwards counts as no delay.
  if (props->id != 0) {
    const auto delay = static_cast<std::int64_t>(now - props->ready_since);
    worker_.counters.scheduling_delay.record(delay > 0 ? to_ns(static_cast<std::uint64_t>(delay)) : 0);
    const std::uint64_t report_ticks = worker_.delay_report_ticks.load(std::memory_order_relaxed);
    if (report_ticks != 0 && delay >= static_cast<std::int64_t>(report_ticks))
      worker_.note_delay(static_cast<std::uint64_t>(delay), props->id);
  }
  worker_.current_context = ctx;
  // Not while wait_and_detach hands the queue to another algorithm: that
  // pops every context without resuming it.
  worker_.current_known = !worker_.detaching;
  return ctx;
}

bool scheduler::has_ready_fibers() const noexcept {
  return !queues_[from_reactor].empty() || !queues_[from_fiber].empty() || !queues_[yielded].empty();
}

void scheduler::suspend_until(clock::time_point const& tp) noexcept {
  if (worker_.stacks->has_excess()) {
    // Stacks of fibers that ended are waiting to be unmapped: one batch,
    // then only a look at the reactor, and the dispatcher comes back for the
    // next batch. The thread sleeps once they are all gone.
    visit_reactor(ticks()); // trims a batch
    last_dispatch_ = last_reactor_visit_;
    return;
  }
  worker_.idle.store(true, std::memory_order_relaxed);
  worker_.counters.reactor_visits.add();
  worker_.counters.handlers_run.add(run_handlers(true, tp));
  worker_.idle.store(false, std::memory_order_relaxed);
  const std::uint64_t now = ticks();
  last_dispatch_ = last_reactor_visit_ = now;
  visit_interval_ = poll_interval_ticks_;
  if (!calibrated_) calibrate(now);
}

void scheduler::visit_reactor(std::uint64_t now) noexcept {
  last_reactor_visit_ = now;
  const std::size_t ran = run_handlers(false, {});
  worker_.counters.reactor_visits.add();
  worker_.counters.handlers_run.add(ran);
  if (ran != 0)
    visit_interval_ = poll_interval_ticks_;
  else
    visit_interval_ = (std::min)(2 * visit_interval_, max_poll_interval_ticks_);
  worker_.stacks->trim(stack_pool::trim_batch);
  if (!calibrated_) calibrate(now);
}

void scheduler::calibrate(std::uint64_t now) noexcept {
  const auto time = clock::now();
  if (calibration_ticks_ == 0 || now <= calibration_ticks_) {
    calibration_ticks_ = now;
    calibration_start_ = time;
    return;
  }
  const auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(time - calibration_start_);
  if (elapsed < calibration_time) return;
  const double per_ns = static_cast<double>(now - calibration_ticks_) / static_cast<double>(elapsed.count());
  const auto in_ticks = [per_ns](std::chrono::nanoseconds d) {
    return static_cast<std::uint64_t>(static_cast<double>(d.count()) * per_ns);
  };
  poll_interval_ticks_ = in_ticks(poll_interval);
  max_poll_interval_ticks_ = in_ticks(max_poll_interval);
  lane_quantum_ticks_ = in_ticks(lane_quantum);
  lane_max_wait_ticks_ = in_ticks(lane_max_wait);
  visit_interval_ = poll_interval_ticks_;
  ns_per_tick_ = 1.0 / per_ns;
  calibrated_ = true;
}

void scheduler::count_park() noexcept {
  // The context switching out, when known: a fiber that began to wait has
  // published what it waits on (park, coop/detail/park.hpp).
  if (!worker_.current_known || !worker_.current_context) return;
  const auto* props = static_cast<const fiber_state*>(worker_.current_context->get_properties());
  if (props && props->snapshot.what.load(std::memory_order_relaxed)) worker_.counters.parks.add();
}

std::size_t scheduler::run_handlers(bool block, clock::time_point tp) noexcept {
  auto& io = worker_.io;
  std::size_t ran = 0;
  try {
    if (io.stopped()) io.restart();
    if (!block) {
      // At most max_handlers_per_visit: with thousands of completions queued
      // (every client of a busy server sending at once), poll() would run
      // them all, and their fibers would wait; the rest runs at the next visits.
      while (ran < max_handlers_per_visit && io.poll_one() != 0)
        ++ran;
    } else if (tp == (clock::time_point::max)())
      ran = io.run_one();
    else
      ran = io.run_one_until(tp);
  } catch (const std::exception& e) {
    std::cerr << "coop: exception escaped an Asio handler: " << e.what() << std::endl;
  } catch (...) {
    std::cerr << "coop: unknown exception escaped an Asio handler" << std::endl;
  }
  return ran;
}

void scheduler::notify() noexcept {
  // Called from any thread when a fiber of ours became ready remotely. Posting
  // to the io_context is thread-safe and wakes run_one(); the flag keeps a
  // burst of wake-ups down to one queued handler.
  if (!notified_.exchange(true, std::memory_order_acq_rel)) {
    try {
      boost::asio::post(worker_.io, [this] { notified_.store(false, std::memory_order_release); });
    } catch (...) {
      notified_.store(false, std::memory_order_release);
    }
  }
}

} // namespace coop::detail
