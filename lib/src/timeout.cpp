#include <coop/detail/io_mode.hpp>
#include <coop/detail/worker.hpp>
#include <coop/timeout.hpp>

namespace coop {

namespace {
/// A fiber's state, or nullptr in a blocking scope; usage_error elsewhere.
detail::fiber_state* timeout_owner() {
  if (auto* fs = detail::current_fiber_state()) return fs;
  if (detail::in_blocking_scope()) return nullptr;
  return &detail::require_fiber("coop::timeout");
}
} // namespace

timeout::timeout(std::chrono::steady_clock::time_point deadline)
    : fs_(timeout_owner()), link_(std::make_shared<link>(link{this})),
      timer_(fs_ ? fs_->owner->io : detail::io_for_new_object("coop::timeout"), deadline) {
  node_.deadline = deadline;
  if (!fs_) { // a plain thread in a blocking scope: the stream's waits look at the deadline
    node_.outer = detail::blocking_timeouts();
    detail::blocking_timeouts() = &node_;
    return;
  }
  node_.outer = fs_->timeouts;
  node_.shield_depth = fs_->shield_depth;
  fs_->timeouts = &node_;
  timer_.async_wait([l = link_](const boost::system::error_code& ec) {
    if (ec || !l->self) return;
    timeout& t = *l->self;
    t.node_.expired = true;
    t.fs_->interrupt();
  });
}

timeout::~timeout() {
  link_->self = nullptr;
  // Scopes are strictly nested on one fiber (or thread), so we are the innermost one.
  (fs_ ? fs_->timeouts : detail::blocking_timeouts()) = node_.outer;
}

void timeout::cancel() noexcept {
  link_->self = nullptr;
  node_.expired = false;
  node_.disarmed = true;
  boost::system::error_code ignored;
  timer_.cancel();
}

shield::shield() : fs_(&detail::require_fiber("coop::shield")) {
  ++fs_->shield_depth;
}
shield::~shield() {
  --fs_->shield_depth;
}

} // namespace coop
