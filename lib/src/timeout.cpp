#include <coop/detail/worker.hpp>
#include <coop/timeout.hpp>

namespace coop {

timeout::timeout(std::chrono::steady_clock::time_point deadline)
    : fs_(&detail::require_fiber("coop::timeout")), link_(std::make_shared<link>(link{this})),
      timer_(fs_->owner->io, deadline) {
  node_.outer = fs_->timeouts;
  node_.deadline = deadline;
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
  // Scopes are strictly nested on one fiber, so we are the innermost one.
  fs_->timeouts = node_.outer;
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
