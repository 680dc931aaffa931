#include "core/worker.hpp"
#include <coop/net/serve.hpp>
#include <coop/this_fiber.hpp>

#include <algorithm>
#include <chrono>

namespace coop::detail {
namespace {

bool ends_the_loop(const boost::system::error_code& ec) {
  return ec == coop::errc::cancelled || ec == coop::errc::timed_out || ec == boost::asio::error::operation_aborted ||
         ec == boost::asio::error::bad_descriptor;
}

bool only_this_connection(const boost::system::error_code& ec) {
  return ec == boost::asio::error::connection_aborted || ec == boost::asio::error::connection_reset ||
         ec == boost::system::errc::protocol_error;
}

} // namespace

template <class Protocol>
std::optional<net::basic_stream<Protocol>> accept_for_serve(net::basic_listener<Protocol>& listener,
                                                            const net::serve_options& options) {
  std::chrono::milliseconds delay{0};
  for (;;) {
    boost::system::error_code ec;
    net::basic_stream<Protocol> stream = listener.accept(ec);
    if (!ec) {
      if (worker* w = current_worker()) w->counters.serve_accepted.add();
      if (delay.count() != 0 && options.on_accept_error) options.on_accept_error({});
      return stream;
    }
    if (ends_the_loop(ec)) return std::nullopt;
    if (only_this_connection(ec)) continue;
    // Out of descriptors, say: the connection waits in the kernel's backlog
    // while this fiber pauses and the others run (and free descriptors).
    if (delay.count() == 0 && options.on_accept_error) options.on_accept_error(ec);
    delay = std::clamp(delay * 2, std::chrono::milliseconds(1), std::chrono::milliseconds(100));
    coop::sleep_for(delay, ec);
    if (ec) return std::nullopt;
  }
}

serve_connection_count::serve_connection_count() noexcept : worker_(current_worker()) {
  if (worker_) static_cast<worker*>(worker_)->counters.serve_open.add();
}

serve_connection_count::~serve_connection_count() {
  if (worker_) static_cast<worker*>(worker_)->counters.serve_open.sub();
}

void note_serve_limit_wait() noexcept {
  if (worker* w = current_worker()) w->counters.serve_limit_waits.add();
}

template std::optional<net::tcp_stream> accept_for_serve(net::tcp_listener&, const net::serve_options&);
template std::optional<net::basic_stream<boost::asio::local::stream_protocol>>
accept_for_serve(net::basic_listener<boost::asio::local::stream_protocol>&, const net::serve_options&);

} // namespace coop::detail
