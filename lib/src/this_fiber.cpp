#include <coop/detail/worker.hpp>
#include <coop/this_fiber.hpp>
#include <coop/yield.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/fiber/operations.hpp>

namespace coop {

void sleep_until(std::chrono::steady_clock::time_point deadline, boost::system::error_code& ec) {
  auto& fs = detail::require_fiber("coop::sleep_until/sleep_for");
  if (deadline <= std::chrono::steady_clock::now()) {
    ec = fs.pending_interrupt();
    if (!ec) boost::this_fiber::yield();
    return;
  }
  boost::asio::steady_timer timer(fs.owner->io, deadline);
  timer.async_wait(coop::yield[ec]);
}

void sleep_until(std::chrono::steady_clock::time_point deadline) {
  boost::system::error_code ec;
  sleep_until(deadline, ec);
  throw_on_error(ec, "coop::sleep_until");
}

namespace this_fiber {
void yield() {
  auto& fs = detail::require_fiber("coop::this_fiber::yield");
  throw_on_error(fs.pending_interrupt(), "coop::this_fiber::yield");
  boost::this_fiber::yield();
  throw_on_error(fs.pending_interrupt(), "coop::this_fiber::yield");
}
} // namespace this_fiber

} // namespace coop
