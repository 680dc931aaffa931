#include "core/worker.hpp"
#include <coop/io.hpp>
#include <coop/yield.hpp>

#include <boost/asio/signal_set.hpp>

namespace coop {

boost::asio::io_context& this_thread_io() {
  return detail::require_worker("coop::this_thread_io").io;
}

int wait_for_signal(std::initializer_list<int> signals, boost::system::error_code& ec) {
  auto& fs = detail::require_fiber("coop::wait_for_signal");
  boost::asio::signal_set set(fs.owner->io);
  for (int s : signals)
    set.add(s);
  static const detail::wait_info info{wait_kind::signal, "signal"};
  return set.async_wait(detail::yield_for(info, ec));
}

int wait_for_signal(std::initializer_list<int> signals) {
  boost::system::error_code ec;
  int sig = wait_for_signal(signals, ec);
  throw_on_error(ec, "coop::wait_for_signal");
  return sig;
}

} // namespace coop
