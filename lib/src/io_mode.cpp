#include <coop/blocking_scope.hpp>
#include <coop/detail/io_mode.hpp>
#include <coop/detail/worker.hpp>

#include <boost/asio/execution/context.hpp>
#include <boost/asio/query.hpp>

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
} // namespace

bool in_blocking_scope() noexcept {
  return blocking_depth > 0;
}

timeout_node*& blocking_timeouts() noexcept {
  thread_local timeout_node* head = nullptr;
  return head;
}

std::optional<std::chrono::steady_clock::time_point> blocking_deadline() noexcept {
  std::optional<std::chrono::steady_clock::time_point> earliest;
  for (timeout_node* t = blocking_timeouts(); t; t = t->outer)
    if (!t->disarmed && (!earliest || t->deadline < *earliest)) earliest = t->deadline;
  return earliest;
}

bool wait_ready(int fd, bool for_write, boost::system::error_code& ec) {
  for (;;) {
    auto deadline = blocking_deadline();
    auto now = std::chrono::steady_clock::now();
    if (deadline && now >= *deadline) {
      ec = make_error_code(errc::timed_out);
      return false;
    }
    int ms = -1;
    if (deadline) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - now).count();
      ms = static_cast<int>(std::min<long long>(left, 1 << 30));
    }
    pollfd p{fd, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
    int r = ::poll(&p, 1, ms);
    if (r > 0) return true; // ready, or an error the next system call reports
    if (r < 0 && errno != EINTR) {
      ec.assign(errno, boost::system::system_category());
      return false;
    }
  }
}

io_mode mode_for(const boost::asio::any_io_executor& ex, const char* what) {
  if (fiber_state* fs = current_fiber_state()) {
    auto& ctx = boost::asio::query(ex, boost::asio::execution::context);
    if (&ctx != static_cast<boost::asio::execution_context*>(&fs->owner->io))
      throw usage_error(std::string("coop: ") + what +
                        " on an object that belongs to another runtime thread (fibers and their "
                        "sockets stay on the thread that created them)");
    return {fs};
  }
  if (blocking_depth > 0) return {nullptr};
  outside(what);
}

boost::asio::io_context& io_for_new_object(const char* what) {
  if (worker* w = current_worker()) return w->io;
  if (blocking_depth > 0) {
    // Objects used only synchronously still need an io_context; this one is
    // never run.
    static boost::asio::io_context blocking_io;
    return blocking_io;
  }
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
