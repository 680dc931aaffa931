// lib/src/net/fd_table.hpp — what a runtime thread keeps about the descriptors
// its fibers wait on with coop::wait_readable / wait_writable (coop/fd.hpp).
#pragma once

// First, in a block of its own (include sorting must not move it): the
// reactor's header pulls in the scheduler's code, which needs what this
// declares.
#include <boost/asio/io_context.hpp>

#include <boost/asio/detail/reactor.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

namespace coop::detail {

/// One descriptor registered with a thread's reactor (Asio's epoll reactor,
/// through its per-descriptor state) for readiness waits. Never closes the
/// caller's descriptor.
struct fd_entry {
  using reactor = boost::asio::detail::reactor;
  explicit fd_entry(reactor& r) noexcept : reactor_(r) {}
  ~fd_entry() { drop(); }
  fd_entry(const fd_entry&) = delete;
  fd_entry& operator=(const fd_entry&) = delete;

  /// Registers `registered_fd` (0, or the errno of the refusal).
  int enter() noexcept;
  /// Leaves the reactor; waits in progress end with operation_aborted.
  void drop() noexcept;

  reactor& reactor_;
  reactor::per_descriptor_data data = nullptr;
  int fd = -1;                  ///< the caller's descriptor
  int registered_fd = -1;       ///< `fd`, or coop's duplicate of it
  std::uint32_t generation = 0; ///< `forget_fd` count of `fd` when registered
  /// `registered_fd` is a duplicate of `fd` that coop made (the descriptor
  /// was already registered with this reactor by an Asio object): closed
  /// when dropped, and registered for one wait only.
  bool duplicate = false;
  bool registered = false;
  bool forgotten = false; ///< dropped by `forget_fd`: its waiters fail with bad_descriptor
};

/// The descriptors one runtime thread waits on, registered at their first
/// wait and kept until `forget_fd` (or the thread's end), so a wait costs no
/// `epoll_ctl`. Used only on its thread; `forget_fd` on another thread posts
/// here. A process-wide count per descriptor number (bumped by `forget_fd`)
/// tells an entry that outlived its descriptor from a current one.
class fd_table : public std::enable_shared_from_this<fd_table> {
public:
  static std::shared_ptr<fd_table> create(boost::asio::io_context& io);
  ~fd_table();
  fd_table(const fd_table&) = delete;
  fd_table& operator=(const fd_table&) = delete;

  /// The registration of `fd` (made now if needed); null with `ec` set when
  /// the reactor refused it. A duplicate entry must be handed back to
  /// `done` after its wait.
  std::shared_ptr<fd_entry> entry(int fd, boost::system::error_code& ec);
  void done(const std::shared_ptr<fd_entry>& e) noexcept;

  /// Drops `fd`'s entries registered before `generation` (all of them when
  /// 0), waking their waiters.
  void forget(int fd, std::uint32_t generation) noexcept;

  /// `forget_fd`: bumps `fd`'s count, forgets it here (the calling thread's
  /// table, if any), posts the same to the other threads that have it and
  /// waits until they have done it (so the caller may close `fd` at once).
  static void forget_everywhere(int fd, fd_table* mine) noexcept;

  fd_entry::reactor& reactor() noexcept { return reactor_; }

private:
  explicit fd_table(boost::asio::io_context& io);

  boost::asio::io_context& io_;
  fd_entry::reactor& reactor_;
  unsigned slot_ = 0; ///< this table's place in the process-wide list
  std::unordered_map<int, std::shared_ptr<fd_entry>> entries_;
  std::vector<std::shared_ptr<fd_entry>> duplicates_; ///< in use by a wait
  /// forget_fd rounds posted here and not yet done (under the registry's
  /// mutex): done by the posted handler, or by the destructor for a handler
  /// that never ran.
  std::vector<std::shared_ptr<struct forget_round>> pending_;
};

class fiber_state;
struct wait_info;
struct worker;

/// How a wait for readiness ended.
enum class ready_result { ready, deadline, failed };

/// Parks `fs` until the descriptor `fd`, registered with `r` as `data`,
/// is readable (or writable): one reactor operation on the fiber's stack,
/// queued on that registration (no `epoll_ctl`), through the one park path
/// (timeout, cancel and shield as for every wait). `failed` sets `ec`: the
/// interruption, `operation_aborted` when the registration was dropped
/// meanwhile (the socket closed, the descriptor forgotten), or an error.
/// `deadline`: `deadline` passed first. The caller has passed `fs`'s
/// checkpoint and seen the descriptor not ready.
ready_result park_until_ready(fiber_state& fs, fd_entry::reactor& r, int fd,
                              fd_entry::reactor::per_descriptor_data& data, bool for_write,
                              std::chrono::steady_clock::time_point deadline, const wait_info& info,
                              boost::system::error_code& ec) noexcept;

/// The reactor of `w`'s io_context.
fd_entry::reactor& reactor_of(worker& w);

/// `coop::wait_readable_until` (or `wait_writable_until`) for coop::hooks:
/// the same wait, shown as a hooked call ("hooked read", `wait_kind::hooked`).
bool wait_fd_for_hooks(int fd, bool for_write, std::chrono::steady_clock::time_point deadline,
                       boost::system::error_code& ec);

} // namespace coop::detail
