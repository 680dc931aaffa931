#include "core/worker.hpp"
#include <coop/blocking_scope.hpp>
#include <coop/detail/io_mode.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/query.hpp>
#include <boost/fiber/operations.hpp>

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <string>

namespace coop {
namespace detail {
namespace {
thread_local int blocking_depth = 0;

[[noreturn]] void outside(const char* what) {
  throw usage_error(std::string("coop: ") + what +
                    " was called outside a coop runtime; call it from a fiber (coop::run, "
                    "coop::spawn) or on a plain thread inside a coop::blocking_scope");
}

/// Objects used only synchronously still need an io_context; this one never runs.
boost::asio::io_context& blocking_io() {
  static boost::asio::io_context io;
  return io;
}

/// A `poll` that reported `p`: true when ready, false with `ec` set when the
/// descriptor is not open.
bool ready_or_invalid(const pollfd& p, boost::system::error_code& ec) {
  if (p.revents & POLLNVAL) {
    ec = boost::asio::error::bad_descriptor;
    return false;
  }
  return true;
}
} // namespace

bool in_blocking_scope() noexcept {
  return blocking_depth > 0;
}

bool is_blocking_io(const boost::asio::any_io_executor& ex) noexcept {
  auto& ctx = boost::asio::query(ex, boost::asio::execution::context);
  return &ctx == static_cast<boost::asio::execution_context*>(&blocking_io());
}

bool wait_ready(int fd, bool for_write, boost::system::error_code& ec, steady_time own_deadline) {
  wait_context& wc = current_wait_context();
  for (;;) {
    if ((ec = wc.pending_interrupt())) return false;
    const steady_time deadline = (std::min)(wc.interrupt_deadline(), own_deadline);
    int ms = -1;
    if (deadline != no_deadline) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      ms = static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
    }
    pollfd p{fd, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
    int r = ::poll(&p, 1, ms);
    if (r > 0) return ready_or_invalid(p, ec); // ready, or an error the next system call reports
    if (r < 0 && errno != EINTR) {
      ec = errno_error();
      return false;
    }
    // The call's own deadline ends it quietly, unless a timeout is due too
    // (an interruption wins, as in `park`).
    if (r == 0 && own_deadline != no_deadline && std::chrono::steady_clock::now() >= own_deadline) {
      ec = wc.pending_interrupt();
      return false;
    }
  }
}

io_mode mode_for(const boost::asio::any_io_executor& ex, const char* what) {
  if (fiber_state* fs = current_fiber_state()) {
    auto& ctx = boost::asio::query(ex, boost::asio::execution::context);
    require_own_io(*fs, ctx, what);
    return {fs};
  }
  if (blocking_depth > 0) {
    if (!is_blocking_io(ex))
      throw usage_error(std::string("coop: ") + what +
                        " on a plain thread with an object that belongs to a runtime thread");
    return {nullptr};
  }
  outside(what);
}

fiber_state* begin_buffered_read(boost::system::error_code& ec) noexcept {
  fiber_state* fs = current_fiber_state();
  (fs ? static_cast<wait_context&>(*fs) : current_wait_context()).checkpoint(ec);
  return fs;
}

fiber_state* begin_call(const boost::asio::any_io_executor& ex, const char* what, boost::system::error_code& ec) {
  io_mode mode = mode_for(ex, what);
  wait_context& wc = mode.fiber ? *mode.fiber : current_wait_context();
  wc.checkpoint(ec);
  return mode.fiber;
}

void require_own_io(const fiber_state& fs, const boost::asio::execution_context& ctx, const char* what) {
  if (&ctx != static_cast<boost::asio::execution_context*>(&fs.owner->io))
    throw usage_error(std::string("coop: ") + what +
                      " on an object that belongs to another runtime thread, or to a runtime that has "
                      "ended (fibers and their sockets stay on the thread that created them)");
}

void require_owner(const boost::asio::any_io_executor& ex, const char* what) {
  if (is_blocking_io(ex)) return;
  if (fiber_state* fs = current_fiber_state())
    require_own_io(*fs, boost::asio::query(ex, boost::asio::execution::context), what);
  else
    throw usage_error(std::string("coop: ") + what +
                      " on an object of a runtime thread from outside its fibers; call it from a fiber of "
                      "the thread that created the object");
}

std::shared_ptr<void> keep_io_alive(const boost::asio::any_io_executor& ex) noexcept {
  worker* w = current_worker();
  auto& ctx = boost::asio::query(ex, boost::asio::execution::context);
  if (w && &ctx == static_cast<boost::asio::execution_context*>(&w->io)) return w->io_holder;
  return nullptr;
}

boost::asio::io_context& io_for_new_object(const char* what) {
  if (worker* w = current_worker()) return w->io;
  if (blocking_depth > 0) return blocking_io();
  outside(what);
}

} // namespace detail

blocking_scope::blocking_scope() {
  if (detail::current_worker())
    throw usage_error("coop: blocking_scope on a runtime thread would block every fiber of it");
  ++detail::blocking_depth;
}
blocking_scope::~blocking_scope() {
  --detail::blocking_depth;
}

} // namespace coop
