#include <coop/pool.hpp>
#include <coop/timeout.hpp>

#include <string>

namespace coop {

pool::pool(std::size_t capacity) : capacity_(capacity), slots_(capacity) {
  if (capacity == 0) throw usage_error("coop::pool: the capacity must be at least 1");
}

pool::~pool() {
  cancel();
  shield s; // the members reference the pool: wait for them even in a cancelled fiber
  boost::system::error_code ignored;
  running_.wait(ignored);
}

detail::worker& pool::bind_thread(const char* what) {
  detail::worker& w = detail::require_worker(what);
  if (!owner_) owner_ = &w;
  if (owner_ != &w)
    throw usage_error(std::string(what) + ": a pool lives on one runtime thread (the one that first spawned into it); "
                                          "this is another");
  return w;
}

void pool::left(member_list::iterator it) noexcept {
  members_.erase(it);
  slots_.release();
  running_.done(); // last: a joiner may destroy the pool once it runs
}

void pool::join(boost::system::error_code& ec) {
  running_.wait(ec);
}

void pool::join() {
  boost::system::error_code ec;
  join(ec);
  throw_on_error(ec, "coop::pool::join");
}

bool pool::join_until(std::chrono::steady_clock::time_point deadline) {
  boost::system::error_code ec;
  bool all = running_.wait_until(deadline, ec);
  throw_on_error(ec, "coop::pool::join_until");
  return all;
}

void pool::cancel() {
  for (auto& m : members_)
    m->cancel(m);
}

} // namespace coop
