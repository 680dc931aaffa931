// coop/io.hpp — the calling runtime thread's io_context, and waiting for signals.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/system/error_code.hpp>

#include <initializer_list>

namespace coop {

/// The io_context of the calling runtime thread, for Asio objects coop does
/// not wrap (UDP sockets, timers, signal sets...). Use them with
/// `coop::yield` from fibers of this thread only. Throws `usage_error`
/// outside a runtime thread.
///
/// Example:
/// @code
///   boost::asio::ip::udp::socket sock(coop::this_thread_io(), endpoint);
///   std::size_t n = sock.async_receive_from(buf, from, coop::yield);
/// @endcode
boost::asio::io_context& this_thread_io();

/// Suspends the calling fiber until one of `signals` (e.g. SIGINT, SIGTERM)
/// is delivered to the process; returns its number. While a fiber waits,
/// those signals no longer terminate the process. Interruptible by
/// `coop::timeout` and `task::cancel()`.
int wait_for_signal(std::initializer_list<int> signals);
/// Like `wait_for_signal`, reporting an interruption into `ec` (returns 0).
int wait_for_signal(std::initializer_list<int> signals, boost::system::error_code& ec);

} // namespace coop
