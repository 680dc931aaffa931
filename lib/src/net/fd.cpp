// coop::wait_readable / wait_writable / forget_fd (coop/fd.hpp), and the
// per-thread table of registered descriptors behind them (fd_table.hpp).
#include "net/fd_table.hpp"

#include "core/worker.hpp"
#include <coop/detail/io_mode.hpp>
#include <coop/detail/park.hpp>
#include <coop/event.hpp>
#include <coop/fd.hpp>
#include <coop/timeout.hpp>

#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

#include <fcntl.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <new>

namespace coop {
namespace detail {
namespace {

// --- what the process knows per descriptor number -------------------------
//
// One 64-bit word per number: how many times `forget_fd` was called for it
// (high half), and which threads' tables have it registered (low half: bit k
// for table slot k < 31, bit 31 for all the others). Words come in chunks,
// allocated on first use and never freed; numbers past `max_tracked_fd` are
// not cached (registered for each wait).

constexpr int chunk_bits = 12;
constexpr int chunk_count = 4096;
constexpr int max_tracked_fd = chunk_count << chunk_bits; // 16 Mi descriptors
using fd_word = std::atomic<std::uint64_t>;
std::atomic<fd_word*> chunks[chunk_count];

fd_word* word_of(int fd, bool create) noexcept {
  if (fd < 0 || fd >= max_tracked_fd) return nullptr;
  auto& chunk = chunks[fd >> chunk_bits];
  fd_word* words = chunk.load(std::memory_order_acquire);
  if (!words && create) {
    auto* fresh = new (std::nothrow) fd_word[std::size_t{1} << chunk_bits]();
    if (!fresh) return nullptr;
    if (chunk.compare_exchange_strong(words, fresh, std::memory_order_acq_rel))
      words = fresh;
    else
      delete[] fresh; // another thread's chunk won
  }
  return words ? &words[fd & ((1 << chunk_bits) - 1)] : nullptr;
}

std::uint32_t generation_of(std::uint64_t word) noexcept {
  return static_cast<std::uint32_t>(word >> 32);
}

std::uint32_t slot_bit(unsigned slot) noexcept {
  return slot < 31 ? std::uint32_t{1} << slot : std::uint32_t{1} << 31;
}

// --- the tables of all runtime threads, for forget_fd ----------------------

struct table_slot {
  fd_table* table = nullptr;
  std::weak_ptr<fd_table> weak;
};
std::mutex registry_mutex;

} // namespace

/// One forget_fd call's wait for the other threads that held the descriptor.
struct forget_round {
  std::atomic<int> left{1}; // the caller's own part, given up when it starts waiting
  coop::event done;
  void arrive() noexcept {
    if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) done.set();
  }
};

namespace {

/// Takes `round` out of `t`'s pending list (under the registry's mutex) and
/// arrives for it, unless that was done already.
void finish_part(std::vector<std::shared_ptr<forget_round>>& pending,
                 const std::shared_ptr<forget_round>& round) noexcept {
  for (auto it = pending.begin(); it != pending.end(); ++it)
    if (*it == round) {
      pending.erase(it);
      round->arrive();
      return;
    }
}
std::vector<table_slot>& registry() {
  static auto* r = new std::vector<table_slot>; // never destroyed: threads may outlive static destructors
  return *r;
}

fd_table& table_of(worker& w) {
  if (!w.fds) w.fds = fd_table::create(w.io);
  return *w.fds;
}

/// One wait for readiness, as a reactor operation of Asio's epoll reactor
/// that lives on the waiting fiber's stack, and the `park` site of that
/// wait. Asio's own `async_wait` re-arms the descriptor with an `epoll_ctl`
/// on every wait (to see a level that is already there); coop's callers
/// have just seen EAGAIN (or looked with `poll`), so the operation only has
/// to wait for the next edge: started speculatively it reports "not done",
/// and done once the reactor calls it after an edge.
class ready_wait_op final : public boost::asio::detail::reactor_op {
public:
  ready_wait_op(fd_entry::reactor& r, int fd, fd_entry::reactor::per_descriptor_data& data, int op_type) noexcept
      : reactor_op(boost::system::error_code(), &perform, &complete), reactor_(r), data_(data), fd_(fd),
        op_type_(op_type) {
    cancellation_key_ = this;
  }

  void start() noexcept {
    reactor_.start_op(op_type_, fd_, data_, this, false, true);
    started_ = true;
  }
  const boost::system::error_code& result() const noexcept { return result_; }
  /// The wait was given up (an interruption, or the call's own deadline).
  bool withdrawn() const noexcept { return withdrawn_; }

  // The `park` site interface.
  bool completed() const noexcept { return done_; }
  void arm(const boost::fibers::waker& w) noexcept {
    waker_ = w;
    armed_ = true;
  }
  /// Gives the wait up (`why`: the interruption; empty: the call's own
  /// deadline). The reactor completes the operation (operation_aborted):
  /// the park waits for that.
  bool withdraw(spinlock_lock&, const boost::system::error_code& why) noexcept {
    interrupt_now(why);
    return false;
  }
  /// A cancel delivered while the fiber is parked: aborts the operation now.
  void interrupt_now(const boost::system::error_code& why) noexcept {
    interrupted_by_ = why;
    withdrawn_ = true;
    cancel();
  }
  /// The interruption that gave the wait up, if one did.
  const boost::system::error_code& interrupted_by() const noexcept { return interrupted_by_; }

private:
  void cancel() noexcept {
    if (!done_) reactor_.cancel_ops_by_key(fd_, data_, op_type_, this);
  }
  static status perform(reactor_op* base) { return static_cast<ready_wait_op*>(base)->started_ ? done : not_done; }
  /// Run by the io_context's scheduler (owner null: the io_context is being
  /// destroyed with the operation queued; it then ends as aborted).
  static void complete(void* owner, boost::asio::detail::operation* base, const boost::system::error_code&,
                       std::size_t) {
    auto* op = static_cast<ready_wait_op*>(base);
    op->result_ = owner ? op->ec_ : boost::system::error_code(boost::asio::error::operation_aborted);
    op->done_ = true;
    if (op->armed_) op->waker_.wake();
  }

  fd_entry::reactor& reactor_;
  fd_entry::reactor::per_descriptor_data& data_;
  int fd_;
  int op_type_;
  bool started_ = false;
  bool done_ = false;
  bool armed_ = false;
  bool withdrawn_ = false;
  boost::system::error_code result_;
  boost::system::error_code interrupted_by_;
  boost::fibers::waker waker_;
};

} // namespace

ready_result park_until_ready(fiber_state& fs, fd_entry::reactor& r, int fd,
                              fd_entry::reactor::per_descriptor_data& data, bool for_write, steady_time deadline,
                              const wait_info& info, boost::system::error_code& ec) noexcept {
  ready_wait_op op(r, fd, data, for_write ? fd_entry::reactor::write_op : fd_entry::reactor::read_op);
  op.start();
  spinlock unused; // the operation completes on this thread: nothing to guard
  spinlock_lock lk(unused);
  boost::system::error_code never; // the site never withdraws at once: the wait always completes
  park(fs, lk, op, info, deadline, never);
  if (op.interrupted_by()) { // a withdrawal that raced with readiness still reports the interruption
    ec = op.interrupted_by();
    return ready_result::failed;
  }
  if (op.result() == boost::asio::error::operation_aborted && op.withdrawn()) return ready_result::deadline;
  // operation_not_supported: a descriptor epoll does not take (a regular
  // file) is always ready.
  if (op.result() && op.result() != boost::asio::error::operation_not_supported) {
    ec = op.result(); // operation_aborted: the descriptor was closed (or forgotten) meanwhile
    return ready_result::failed;
  }
  return ready_result::ready;
}

fd_entry::reactor& reactor_of(worker& w) {
  return table_of(w).reactor();
}

namespace {

/// The one wait behind the public calls: true when `fd` is ready; false with
/// `ec` set on an error or interruption, with `ec` clear when `deadline`
/// passed first. Looks with one `poll` (timeout 0) before parking: the
/// caller has not just seen EAGAIN.
bool wait_fd(int fd, bool for_write, steady_time deadline, boost::system::error_code& ec, bool hooked = false) {
  ec.clear();
  if (fd < 0) {
    ec = boost::asio::error::bad_descriptor;
    return false;
  }
  fiber_state* fs = current_fiber_state();
  if (!fs) return wait_ready(fd, for_write, ec, deadline); // a plain thread: poll
  if (fs->checkpoint(ec)) return false;
  // Ready already? epoll reports edges, so look once (poll with timeout 0).
  if (wait_ready(fd, for_write, ec, std::chrono::steady_clock::now())) return true;
  if (ec) return false;
  if (deadline != no_deadline && std::chrono::steady_clock::now() >= deadline) return false;
  fd_table& table = table_of(*fs->owner);
  std::shared_ptr<fd_entry> e = table.entry(fd, ec);
  if (!e) return false;
  static constexpr const char* labels[2][2] = {{"readable", "writable"}, {"hooked read", "hooked write"}};
  const wait_kind kind = hooked ? wait_kind::hooked : for_write ? wait_kind::write : wait_kind::read;
  const wait_info info{kind, labels[hooked][for_write], nullptr, fd};
  const ready_result r =
      park_until_ready(*fs, table.reactor(), e->registered_fd, e->data, for_write, deadline, info, ec);
  table.done(e);
  if (e->forgotten) {
    ec = boost::asio::error::bad_descriptor;
    return false;
  }
  return r == ready_result::ready;
}

void wait_or_throw(int fd, bool for_write, const char* what) {
  boost::system::error_code ec;
  wait_fd(fd, for_write, no_deadline, ec);
  throw_on_error(ec, what);
}

bool wait_until_or_throw(int fd, bool for_write, steady_time deadline, const char* what) {
  boost::system::error_code ec;
  bool ready = wait_fd(fd, for_write, deadline, ec);
  throw_on_error(ec, what);
  return ready;
}

} // namespace

bool wait_fd_for_hooks(int fd, bool for_write, steady_time deadline, boost::system::error_code& ec) {
  return wait_fd(fd, for_write, deadline, ec, true);
}

// --- fd_entry, fd_table --------------------------------------------------

int fd_entry::enter() noexcept {
  int err = reactor_.register_descriptor(registered_fd, data);
  registered = err == 0;
  return err;
}

void fd_entry::drop() noexcept {
  if (!registered) return;
  registered = false;
  reactor_.deregister_descriptor(registered_fd, data, false); // EPOLL_CTL_DEL; queued waits end aborted
  reactor_.cleanup_descriptor_data(data);
  if (duplicate) ::close(registered_fd);
}

fd_table::fd_table(boost::asio::io_context& io) : io_(io), reactor_(boost::asio::use_service<fd_entry::reactor>(io)) {
  // As Asio's own services do: the io_context's scheduler runs the reactor
  // only once a user of it asked (a program whose only waits are these has
  // no socket service that would have).
  reactor_.init_task();
}

std::shared_ptr<fd_table> fd_table::create(boost::asio::io_context& io) {
  std::shared_ptr<fd_table> t(new fd_table(io));
  std::lock_guard lk(registry_mutex);
  auto& slots = registry();
  unsigned slot = 0;
  while (slot < slots.size() && slots[slot].table)
    ++slot;
  if (slot == slots.size()) slots.emplace_back();
  slots[slot] = {t.get(), t};
  t->slot_ = slot;
  return t;
}

fd_table::~fd_table() {
  {
    // First: from now on forget_fd posts nothing here, and no forget_fd
    // waits for a handler of ours that will never run.
    std::lock_guard lk(registry_mutex);
    registry()[slot_] = {};
    for (auto& round : pending_)
      round->arrive();
    pending_.clear();
  }
  // The entries leave the reactor (no fiber waits any more: the thread's
  // fibers have all ended).
  entries_.clear();
  duplicates_.clear();
}

std::shared_ptr<fd_entry> fd_table::entry(int fd, boost::system::error_code& ec) {
  fd_word* word = word_of(fd, true);
  const std::uint32_t generation = word ? generation_of(word->load(std::memory_order_acquire)) : 0;
  if (word) {
    if (auto it = entries_.find(fd); it != entries_.end()) {
      if (it->second->generation == generation) return it->second;
      // forget_fd was called on another thread and its post has not come
      // yet: the descriptor may be another one now.
      it->second->forgotten = true;
      it->second->drop();
      entries_.erase(it);
    }
  }
  auto e = std::make_shared<fd_entry>(reactor_);
  e->fd = e->registered_fd = fd;
  e->generation = generation;
  int err = e->enter();
  if (err == EEXIST) {
    // An Asio object of this thread (a coop socket, say) registered the
    // descriptor already, and epoll takes each one once: wait through a
    // duplicate, registered for this wait only.
    e->registered_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (e->registered_fd < 0) {
      ec = errno_error();
      return nullptr;
    }
    e->duplicate = true;
    if ((err = e->enter()) != 0) {
      ::close(e->registered_fd);
      ec.assign(err, boost::system::system_category());
      return nullptr;
    }
    duplicates_.push_back(e);
    return e;
  }
  if (err != 0) ec.assign(err, boost::system::system_category());
  if (ec) return nullptr;
  if (!word) {
    duplicates_.push_back(e); // not tracked: registered for this wait only
    return e;
  }
  word->fetch_or(slot_bit(slot_), std::memory_order_acq_rel);
  entries_.emplace(fd, e);
  return e;
}

void fd_table::done(const std::shared_ptr<fd_entry>& e) noexcept {
  for (auto it = duplicates_.begin(); it != duplicates_.end(); ++it)
    if (*it == e) {
      e->drop();
      duplicates_.erase(it);
      return;
    }
}

void fd_table::forget(int fd, std::uint32_t generation) noexcept {
  if (auto it = entries_.find(fd); it != entries_.end()) {
    auto& e = it->second;
    if (generation == 0 || static_cast<std::int32_t>(e->generation - generation) < 0) {
      e->forgotten = true;
      e->drop(); // its waits end with operation_aborted, reported as bad_descriptor
      entries_.erase(it);
    }
  }
  for (auto it = duplicates_.begin(); it != duplicates_.end();)
    if ((*it)->fd == fd) {
      (*it)->forgotten = true;
      (*it)->drop();
      it = duplicates_.erase(it);
    } else
      ++it;
}

void fd_table::forget_everywhere(int fd, fd_table* mine) noexcept {
  fd_word* word = word_of(fd, false);
  if (!word) {
    if (mine) mine->forget(fd, 0);
    return;
  }
  std::uint64_t old = word->load(std::memory_order_acquire);
  std::uint64_t next;
  do
    next = static_cast<std::uint64_t>(generation_of(old) + 1) << 32; // no table has it now
  while (!word->compare_exchange_weak(old, next, std::memory_order_acq_rel));
  const std::uint32_t generation = generation_of(next);
  std::uint32_t others = static_cast<std::uint32_t>(old);
  if (mine) {
    mine->forget(fd, generation);
    if (mine->slot_ < 31) others &= ~slot_bit(mine->slot_);
  }
  if (others == 0) return;
  auto round = std::make_shared<forget_round>();
  {
    std::lock_guard lk(registry_mutex);
    auto& slots = registry();
    for (unsigned slot = 0; slot < slots.size(); ++slot) {
      fd_table* t = slots[slot].table;
      if (!t || t == mine || (others & slot_bit(slot)) == 0) continue;
      try {
        t->pending_.push_back(round);
        round->left.fetch_add(1, std::memory_order_relaxed);
        boost::asio::post(t->io_, [weak = slots[slot].weak, fd, generation, round] {
          auto table = weak.lock();
          if (!table) return; // its destructor arrived for it
          table->forget(fd, generation);
          std::lock_guard lk(registry_mutex);
          finish_part(table->pending_, round);
        });
      } catch (...) {
        // Out of memory: that thread finds the entry stale at its next wait.
        finish_part(t->pending_, round);
      }
    }
  }
  round->arrive();
  // Wait until every other thread has dropped its registration, so that the
  // caller may close the descriptor (and the kernel reuse the number) at
  // once. Not interruptible: a timeout or cancel must not leave a
  // registration behind.
  try {
    coop::shield keep_going;
    boost::system::error_code ec;
    while (!round->done.is_set() && !ec)
      round->done.wait(ec);
  } catch (...) {
  }
}

} // namespace detail

void wait_readable(int fd, boost::system::error_code& ec) {
  detail::wait_fd(fd, false, detail::no_deadline, ec);
}
void wait_readable(int fd) {
  detail::wait_or_throw(fd, false, "coop::wait_readable");
}
void wait_writable(int fd, boost::system::error_code& ec) {
  detail::wait_fd(fd, true, detail::no_deadline, ec);
}
void wait_writable(int fd) {
  detail::wait_or_throw(fd, true, "coop::wait_writable");
}

bool wait_readable_until(int fd, std::chrono::steady_clock::time_point deadline, boost::system::error_code& ec) {
  return detail::wait_fd(fd, false, deadline, ec);
}
bool wait_readable_until(int fd, std::chrono::steady_clock::time_point deadline) {
  return detail::wait_until_or_throw(fd, false, deadline, "coop::wait_readable_until");
}
bool wait_writable_until(int fd, std::chrono::steady_clock::time_point deadline, boost::system::error_code& ec) {
  return detail::wait_fd(fd, true, deadline, ec);
}
bool wait_writable_until(int fd, std::chrono::steady_clock::time_point deadline) {
  return detail::wait_until_or_throw(fd, true, deadline, "coop::wait_writable_until");
}

void forget_fd(int fd) noexcept {
  detail::worker* w = detail::current_worker();
  detail::fd_table::forget_everywhere(fd, w && w->fds ? w->fds.get() : nullptr);
}

} // namespace coop
