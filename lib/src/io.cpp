#include <coop/detail/worker.hpp>
#include <coop/io.hpp>
#include <coop/yield.hpp>

#include <boost/asio/signal_set.hpp>

namespace coop {

boost::asio::io_context& this_thread_io() {
  return detail::require_worker("coop::this_thread_io").io;
}

int wait_for_signal(std::initializer_list<int> signals) {
  auto& fs = detail::require_fiber("coop::wait_for_signal");
  boost::asio::signal_set set(fs.owner->io);
  for (int s : signals)
    set.add(s);
  return set.async_wait(coop::yield);
}

} // namespace coop
