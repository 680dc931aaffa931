#include <coop/timeout.hpp>

namespace coop {

timeout::timeout(std::chrono::steady_clock::time_point deadline) noexcept : wc_(&detail::current_wait_context()) {
  node_.deadline = deadline;
  wc_->link(node_);
}

timeout::~timeout() {
  wc_->unlink(node_);
}

void timeout::cancel() noexcept {
  node_.expired = false;
  node_.disarmed = true;
}

shield::shield() noexcept : wc_(&detail::current_wait_context()) {
  ++wc_->shield_depth;
}
shield::~shield() {
  --wc_->shield_depth;
}

} // namespace coop
