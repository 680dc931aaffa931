#include "core/worker.hpp"
#include <coop/runtime.hpp>

#include <boost/asio/post.hpp>

#include <mutex>

namespace coop {

namespace detail {
void run_main(std::shared_ptr<task_base> st, const run_options& opts) {
  worker w(opts);
  w.attach();
  try {
    launch_fiber(w, std::move(st));
  } catch (...) {
    w.wait_and_detach(false);
    throw;
  }
  w.wait_and_detach(false);
}
} // namespace detail

void runtime::launch_on(unsigned index, std::shared_ptr<detail::task_base> st) {
  detail::worker& w = *workers_[index];
  st->bind(w, nullptr);
  boost::asio::post(w.io, [&w, st = std::move(st)]() mutable { detail::launch_fiber(w, std::move(st)); });
}

runtime::runtime(unsigned threads, const run_options& opts) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < threads; ++i) {
    workers_.push_back(std::make_unique<detail::worker>(opts));
    workers_.back()->index = i;
    workers_.back()->group = this;
  }
  for (auto& w : workers_)
    threads_.emplace_back([w = w.get()] {
      w->attach();
      w->wait_and_detach(true);
    });
}

runtime::~runtime() noexcept(false) {
  for (auto& w : workers_)
    w->request_stop();
  if (auto* self = detail::current_worker(); self && self->group == this) {
    // Joining would wait for this very thread. Let the threads end on their
    // own once their fibers are done, and keep their workers for good (in a
    // place leak checkers can reach: the threads use them to the end).
    static auto* const orphans = new std::vector<std::unique_ptr<detail::worker>>;
    static std::mutex orphans_mutex;
    {
      std::lock_guard lk(orphans_mutex);
      for (auto& w : workers_)
        orphans->push_back(std::move(w));
    }
    for (auto& t : threads_)
      t.detach();
    throw usage_error("coop::runtime destroyed on one of its own threads; destroy it on the thread that "
                      "created it (the runtime keeps running until its fibers end)");
  }
  for (auto& t : threads_)
    t.join();
}

std::size_t runtime::fiber_count() const {
  std::size_t n = 0;
  for (const auto& w : workers_) {
    std::lock_guard lk(w->registry_mutex);
    n += w->fiber_count;
  }
  return n;
}

int runtime::this_thread_index() noexcept {
  auto* w = detail::current_worker();
  return w ? static_cast<int>(w->index) : -1;
}

} // namespace coop
