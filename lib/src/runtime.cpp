#include <coop/runtime.hpp>

namespace coop {

runtime::runtime(unsigned threads, const run_options& opts) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < threads; ++i) {
    workers_.push_back(std::make_unique<detail::worker>(detail::worker_options{opts.stack_size}));
    workers_.back()->index = i;
  }
  for (auto& w : workers_)
    threads_.emplace_back([w = w.get()] {
      w->attach();
      w->wait_and_detach(true);
    });
}

runtime::~runtime() {
  for (auto& w : workers_)
    w->request_stop();
  for (auto& t : threads_)
    t.join();
}

int runtime::this_thread_index() noexcept {
  auto* w = detail::current_worker();
  return w ? static_cast<int>(w->index) : -1;
}

} // namespace coop
