// coop/run.hpp — make the calling thread a coop runtime for the duration of a call.
#pragma once

#include <coop/detail/worker.hpp>
#include <coop/run_options.hpp>
#include <coop/task.hpp>

#include <cstddef>
#include <utility>

namespace coop {

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
  detail::worker w(opts);
  w.attach();
  task<detail::spawn_result_t<F>> t;
  try {
    t = detail::spawn_on_worker(w, std::forward<F>(fn));
  } catch (...) {
    w.wait_and_detach(false);
    throw;
  }
  w.wait_and_detach(false);
  return t.get();
}

} // namespace coop
