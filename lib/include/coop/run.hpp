// coop/run.hpp — make the calling thread a coop runtime for the duration of a call.
#pragma once

#include <coop/run_options.hpp>
#include <coop/task.hpp>

#include <cstddef>
#include <memory>
#include <utility>

namespace coop {

namespace detail {
/// `coop::run`'s body: makes the calling thread a runtime thread, starts
/// `st`'s fiber on it and returns once every fiber of the thread has ended.
/// (lib/src/core/runtime.cpp)
void run_main(std::shared_ptr<task_base> st, const run_options& opts);
} // namespace detail

/// Turns the calling thread into a coop runtime, runs `fn` in a fiber and
/// returns its result (or rethrows its exception) once `fn` and every fiber
/// spawned on this thread have finished. Throws `usage_error` when the thread
/// already is a runtime thread.
///
/// Example:
/// @code
///   int main() { return coop::run([] { coop::sleep_for(10ms); return 0; }); }
/// @endcode
template <class F> detail::spawn_result_t<F> run(F&& fn, const run_options& opts = {}) {
  auto st = detail::task_for(std::forward<F>(fn));
  detail::run_main(st, opts);
  return task<detail::spawn_result_t<F>>(std::move(st)).get();
}

} // namespace coop
