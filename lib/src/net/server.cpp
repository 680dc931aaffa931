#include <coop/net/server.hpp>
#include <coop/net/unix.hpp>
#include <coop/timeout.hpp>

namespace coop::net {

template <class Protocol> void basic_server<Protocol>::close_listener() {
  if (listener_.is_open()) listener_.close(); // a fiber in accept wakes with operation_aborted
}

template <class Protocol>
std::size_t basic_server<Protocol>::stop_until(std::chrono::steady_clock::time_point deadline) {
  close_listener();    // new clients are refused from now on
  shield no_interrupt; // clean-up: runs to the end in a cancelled fiber too
  std::size_t cancelled = 0;
  for (;;) {
    boost::system::error_code ec;
    {
      coop::timeout drain(deadline); // created inside the shield: it applies
      connections_.join(ec);
    }
    if (ec) { // the deadline passed: cancel the rest and wait for them to unwind
      cancelled += connections_.size();
      connections_.cancel();
      connections_.join(ec);
    }
    // serve() sees the closed listener; a connection it accepted just before
    // may have joined the group meanwhile: drain that one too (the deadline
    // may have passed: then it is cancelled at once).
    serving_.wait(ec);
    if (connections_.empty()) return cancelled;
  }
}

template class basic_server<boost::asio::ip::tcp>;
template class basic_server<boost::asio::local::stream_protocol>;

} // namespace coop::net
