#include <coop/timeout.hpp>

namespace coop {

namespace {
std::chrono::nanoseconds left_until(std::chrono::steady_clock::time_point deadline) noexcept {
  const auto now = std::chrono::steady_clock::now();
  return deadline <= now ? std::chrono::nanoseconds::zero() : detail::saturated_ns(deadline - now);
}
} // namespace

timeout::timeout(std::chrono::steady_clock::time_point deadline) noexcept : timeout(deadline, left_until(deadline)) {}

timeout::timeout(std::chrono::steady_clock::time_point deadline, std::chrono::nanoseconds duration) noexcept
    : wc_(&detail::current_wait_context()) {
  node_.deadline = deadline;
  node_.duration = duration;
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
