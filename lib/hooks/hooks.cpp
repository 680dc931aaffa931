// lib/hooks/hooks.cpp — libcoop_hooks.so: libc's blocking socket, wait and
// sleep calls, made cooperative in coop fibers (docs/hooks.md).
//
// Each function here stands in for libc's (the program links this library
// ahead of libc, or preloads it) and calls libc's own through `dlsym(RTLD_NEXT)`.
// A call parks only when all of these hold: the hooks are on (COOP_HOOKS is
// not 0), the program links coop (it exports `coop_hooks_api_v1`), the
// caller is a coop fiber, and the call would block: a descriptor the caller
// believes blocking, no MSG_DONTWAIT, a wait with a timeout other than 0.
// Everything else goes straight to libc, so coop's own calls (non-blocking
// by construction), plain threads and offload threads see libc unchanged.
//
// To park, a descriptor must not block in the kernel: the first blocking
// call in a fiber sets O_NONBLOCK underneath and remembers that the caller
// did not; `fcntl(F_GETFL)` still shows the caller's flags, and a plain
// thread's later call on it waits in `poll` as the kernel would have blocked
// (honouring SO_RCVTIMEO/SO_SNDTIMEO).
#include "hooks/hooks_api.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#define COOP_HOOK extern "C" __attribute__((visibility("default")))

namespace {

// --- libc's own functions ----------------------------------------------------

template <class F> F next(const char* name) noexcept {
  return reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
}

struct libc_calls {
  ssize_t (*read)(int, void*, size_t) = next<decltype(read)>("read");
  ssize_t (*readv)(int, const iovec*, int) = next<decltype(readv)>("readv");
  ssize_t (*recv)(int, void*, size_t, int) = next<decltype(recv)>("recv");
  ssize_t (*recvfrom)(int, void*, size_t, int, sockaddr*, socklen_t*) = next<decltype(recvfrom)>("recvfrom");
  ssize_t (*recvmsg)(int, msghdr*, int) = next<decltype(recvmsg)>("recvmsg");
  ssize_t (*write)(int, const void*, size_t) = next<decltype(write)>("write");
  ssize_t (*writev)(int, const iovec*, int) = next<decltype(writev)>("writev");
  ssize_t (*send)(int, const void*, size_t, int) = next<decltype(send)>("send");
  ssize_t (*sendto)(int, const void*, size_t, int, const sockaddr*, socklen_t) = next<decltype(sendto)>("sendto");
  ssize_t (*sendmsg)(int, const msghdr*, int) = next<decltype(sendmsg)>("sendmsg");
  int (*socket)(int, int, int) = next<decltype(socket)>("socket");
  int (*connect)(int, const sockaddr*, socklen_t) = next<decltype(connect)>("connect");
  int (*accept)(int, sockaddr*, socklen_t*) = next<decltype(accept)>("accept");
  int (*accept4)(int, sockaddr*, socklen_t*, int) = next<decltype(accept4)>("accept4");
  int (*close)(int) = next<decltype(close)>("close");
  int (*fcntl)(int, int, ...) = next<decltype(fcntl)>("fcntl");
  int (*fcntl64)(int, int, ...) = next<decltype(fcntl)>("fcntl64"); ///< what C++ code calls (glibc 2.28+)
  int (*ioctl)(int, unsigned long, ...) = next<decltype(ioctl)>("ioctl");
  int (*setsockopt)(int, int, int, const void*, socklen_t) = next<decltype(setsockopt)>("setsockopt");
  int (*poll)(pollfd*, nfds_t, int) = next<decltype(poll)>("poll");
  int (*ppoll)(pollfd*, nfds_t, const timespec*, const sigset_t*) = next<decltype(ppoll)>("ppoll");
  int (*select)(int, fd_set*, fd_set*, fd_set*, timeval*) = next<decltype(select)>("select");
  int (*pselect)(int, fd_set*, fd_set*, fd_set*, const timespec*, const sigset_t*) = next<decltype(pselect)>("pselect");
  int (*clock_nanosleep)(clockid_t, int, const timespec*,
                         timespec*) = next<decltype(clock_nanosleep)>("clock_nanosleep");
  int (*getaddrinfo)(const char*, const char*, const addrinfo*,
                     addrinfo**) = next<decltype(getaddrinfo)>("getaddrinfo");
  int (*gethostbyname_r)(const char*, hostent*, char*, size_t, hostent**,
                         int*) = next<decltype(gethostbyname_r)>("gethostbyname_r");
  int (*dup)(int) = next<decltype(dup)>("dup");
  int (*dup2)(int, int) = next<decltype(dup2)>("dup2");
  int (*dup3)(int, int, int) = next<decltype(dup3)>("dup3");
  int (*nanosleep)(const timespec*, timespec*) = next<decltype(nanosleep)>("nanosleep");
  int (*usleep)(useconds_t) = next<decltype(usleep)>("usleep");
  unsigned (*sleep)(unsigned) = next<decltype(sleep)>("sleep");
};

const libc_calls& libc() noexcept {
  static const libc_calls calls;
  return calls;
}

// --- coop, when the program has it ------------------------------------------

const coop_hooks_api* coop_api() noexcept {
  static const coop_hooks_api* const api = []() -> const coop_hooks_api* {
    const char* on = std::getenv("COOP_HOOKS");
    if (on && std::strcmp(on, "0") == 0) return nullptr;
    auto get = reinterpret_cast<const coop_hooks_api* (*)()>(::dlsym(RTLD_DEFAULT, "coop_hooks_api_v1"));
    return get ? get() : nullptr;
  }();
  return api;
}

/// coop's interface when the caller is a coop fiber (and the hooks are on).
const coop_hooks_api* fiber_api() noexcept {
  const coop_hooks_api* api = coop_api();
  return api && api->in_fiber() ? api : nullptr;
}

// --- what the hooks know of each descriptor ---------------------------------

constexpr int max_tracked = 1 << 16; ///< descriptors above are passed through

enum : std::uint8_t {
  known = 1,     ///< looked at (the flags below are valid)
  socket_fd = 2, ///< a socket: its blocking calls can park
  user_nb = 4,   ///< the caller made it non-blocking
  hook_nb = 8,   ///< the hooks made it non-blocking underneath
  waited = 16,   ///< a fiber waited on it: forget it in coop before it closes
};

struct fd_state {
  std::atomic<std::uint8_t> flags{0};
  std::atomic<std::int64_t> recv_timeout_ns{0}; ///< SO_RCVTIMEO; 0: none
  std::atomic<std::int64_t> send_timeout_ns{0}; ///< SO_SNDTIMEO; 0: none
};

fd_state fds[max_tracked];

fd_state* state_of(int fd) noexcept {
  return fd >= 0 && fd < max_tracked ? &fds[fd] : nullptr;
}

void reset(int fd, std::uint8_t flags) noexcept {
  if (fd_state* s = state_of(fd)) {
    s->recv_timeout_ns.store(0, std::memory_order_relaxed);
    s->send_timeout_ns.store(0, std::memory_order_relaxed);
    s->flags.store(flags, std::memory_order_relaxed);
  }
}

/// The flags of `fd`, looking at it the first time (a descriptor made
/// before the hooks saw it, or by a call they do not cover).
std::uint8_t flags_of(int fd, fd_state& s) noexcept {
  std::uint8_t f = s.flags.load(std::memory_order_relaxed);
  if (f & known) return f;
  struct stat st;
  f = known;
  if (::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
    f |= socket_fd;
    const int fl = libc().fcntl(fd, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK)) f |= user_nb;
  }
  s.flags.store(f, std::memory_order_relaxed);
  return f;
}

std::int64_t now_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

/// A call on `fd` that may block: how it is to be made.
struct blocking_call {
  fd_state* state = nullptr;           ///< null: straight to libc
  const coop_hooks_api* api = nullptr; ///< set: park the fiber; null: emulate the kernel's blocking in `poll`
  std::int64_t deadline_ns = -1;       ///< SO_RCVTIMEO/SO_SNDTIMEO from now, or -1
};

blocking_call classify(int fd, bool for_write, int msg_flags = 0) noexcept {
  blocking_call c;
  fd_state* s = state_of(fd);
  if (!s || (msg_flags & MSG_DONTWAIT)) return c;
  const coop_hooks_api* api = fiber_api();
  std::uint8_t f = s->flags.load(std::memory_order_relaxed);
  if (!(f & known)) {
    if (!api) return c; // not a fiber, not seen yet: nothing of ours applies
    f = flags_of(fd, *s);
  }
  if (!(f & socket_fd) || (f & user_nb)) return c;
  if (!api && !(f & hook_nb)) return c; // a plain thread on a descriptor we never touched: libc blocks
  if (api && !(f & hook_nb)) {
    const int fl = libc().fcntl(fd, F_GETFL);
    if (fl < 0 || libc().fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return c;
    s->flags.fetch_or(hook_nb, std::memory_order_relaxed);
  }
  c.state = s;
  c.api = api;
  const std::int64_t t = (for_write ? s->send_timeout_ns : s->recv_timeout_ns).load(std::memory_order_relaxed);
  if (t > 0) c.deadline_ns = now_ns() + t;
  return c;
}

/// Waits until `fd` is ready: the fiber parks, or (a plain thread on a
/// descriptor made non-blocking underneath) `poll` stands in for the
/// kernel's blocking. 0 when ready; an errno value otherwise (EAGAIN: the
/// socket's own timeout passed).
int wait_ready(int fd, bool for_write, const blocking_call& c) noexcept {
  if (c.api) {
    c.state->flags.fetch_or(waited, std::memory_order_relaxed);
    return c.api->wait_fd(fd, for_write ? 1 : 0, c.deadline_ns);
  }
  for (;;) {
    int timeout_ms = -1;
    if (c.deadline_ns >= 0) {
      const std::int64_t left = c.deadline_ns - now_ns();
      if (left <= 0) return EAGAIN;
      timeout_ms = static_cast<int>((left + 999'999) / 1'000'000);
    }
    pollfd p{fd, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
    const int r = libc().poll(&p, 1, timeout_ms);
    if (r > 0) return 0;
    if (r == 0) return EAGAIN;
    if (errno != EINTR) return errno;
  }
}

/// The loop of every hooked call that may block: try; when it would block,
/// wait; try again.
template <class Try> ssize_t io(int fd, bool for_write, int msg_flags, Try attempt) noexcept {
  const blocking_call c = classify(fd, for_write, msg_flags);
  if (!c.state) return attempt();
  for (;;) {
    const ssize_t r = attempt();
    if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return r;
    if (const int e = wait_ready(fd, for_write, c); e != 0) {
      errno = e;
      return -1;
    }
  }
}

void track_new_socket(int fd, bool nonblocking) noexcept {
  reset(fd, static_cast<std::uint8_t>(known | socket_fd | (nonblocking ? user_nb : 0)));
}

std::int64_t timeval_ns(const void* v, socklen_t len) noexcept {
  if (!v || len < sizeof(timeval)) return 0;
  const auto* tv = static_cast<const timeval*>(v);
  return std::int64_t(tv->tv_sec) * 1'000'000'000 + std::int64_t(tv->tv_usec) * 1000;
}

/// Parks the calling fiber for `ns`: 0, or an errno value when interrupted.
int fiber_sleep(const coop_hooks_api* api, std::int64_t ns) noexcept {
  return api->sleep_until(ns <= 0 ? now_ns() : now_ns() + ns);
}

} // namespace

// --- reads ----------------------------------------------------------------------

COOP_HOOK ssize_t read(int fd, void* buf, size_t n) {
  return io(fd, false, 0, [&] { return libc().read(fd, buf, n); });
}
COOP_HOOK ssize_t readv(int fd, const iovec* iov, int count) {
  return io(fd, false, 0, [&] { return libc().readv(fd, iov, count); });
}
COOP_HOOK ssize_t recv(int fd, void* buf, size_t n, int flags) {
  return io(fd, false, flags, [&] { return libc().recv(fd, buf, n, flags); });
}
COOP_HOOK ssize_t recvfrom(int fd, void* buf, size_t n, int flags, sockaddr* from, socklen_t* len) {
  return io(fd, false, flags, [&] { return libc().recvfrom(fd, buf, n, flags, from, len); });
}
COOP_HOOK ssize_t recvmsg(int fd, msghdr* msg, int flags) {
  return io(fd, false, flags, [&] { return libc().recvmsg(fd, msg, flags); });
}

// --- writes ---------------------------------------------------------------------

COOP_HOOK ssize_t write(int fd, const void* buf, size_t n) {
  return io(fd, true, 0, [&] { return libc().write(fd, buf, n); });
}
COOP_HOOK ssize_t writev(int fd, const iovec* iov, int count) {
  return io(fd, true, 0, [&] { return libc().writev(fd, iov, count); });
}
COOP_HOOK ssize_t send(int fd, const void* buf, size_t n, int flags) {
  return io(fd, true, flags, [&] { return libc().send(fd, buf, n, flags); });
}
COOP_HOOK ssize_t sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* to, socklen_t len) {
  return io(fd, true, flags, [&] { return libc().sendto(fd, buf, n, flags, to, len); });
}
COOP_HOOK ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  return io(fd, true, flags, [&] { return libc().sendmsg(fd, msg, flags); });
}

// --- sockets: making, connecting, accepting, closing ------------------------------

COOP_HOOK int socket(int domain, int type, int protocol) {
  const int fd = libc().socket(domain, type, protocol);
  if (fd >= 0) track_new_socket(fd, type & SOCK_NONBLOCK);
  return fd;
}

COOP_HOOK int connect(int fd, const sockaddr* to, socklen_t len) {
  const blocking_call c = classify(fd, true);
  const int r = libc().connect(fd, to, len);
  if (!c.state || r == 0 || errno != EINPROGRESS) return r;
  // In progress underneath, where the caller expected connect to block:
  // wait until writable, then the outcome is SO_ERROR.
  if (const int e = wait_ready(fd, true, c); e != 0) {
    errno = e == EAGAIN ? EINPROGRESS : e; // SO_SNDTIMEO passed: what the kernel's blocking connect says
    return -1;
  }
  int err = 0;
  socklen_t err_len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) < 0) return -1;
  if (err != 0) {
    errno = err;
    return -1;
  }
  return 0;
}

COOP_HOOK int accept4(int fd, sockaddr* from, socklen_t* len, int flags) {
  const int r = static_cast<int>(io(fd, false, 0, [&] { return ssize_t(libc().accept4(fd, from, len, flags)); }));
  if (r >= 0) track_new_socket(r, flags & SOCK_NONBLOCK);
  return r;
}
COOP_HOOK int accept(int fd, sockaddr* from, socklen_t* len) {
  const int r = static_cast<int>(io(fd, false, 0, [&] { return ssize_t(libc().accept(fd, from, len)); }));
  if (r >= 0) track_new_socket(r, false);
  return r;
}

COOP_HOOK int close(int fd) {
  if (fd_state* s = state_of(fd)) {
    // A fiber waiting on it wakes with EBADF; the number may be reused at once.
    if (s->flags.load(std::memory_order_relaxed) & waited)
      if (const coop_hooks_api* api = coop_api()) api->forget_fd(fd);
    reset(fd, 0);
  }
  return libc().close(fd);
}

namespace {

/// A new descriptor for the same open file (and socket) as `from`: the same
/// flags, O_NONBLOCK and timeouts being the file's and the socket's, not the
/// descriptor's.
void copy_state(int from, int to) noexcept {
  fd_state* a = state_of(from);
  fd_state* b = state_of(to);
  if (!b) return;
  if (!a) {
    reset(to, 0);
    return;
  }
  b->recv_timeout_ns.store(a->recv_timeout_ns.load(std::memory_order_relaxed), std::memory_order_relaxed);
  b->send_timeout_ns.store(a->send_timeout_ns.load(std::memory_order_relaxed), std::memory_order_relaxed);
  b->flags.store(static_cast<std::uint8_t>(a->flags.load(std::memory_order_relaxed) & ~waited),
                 std::memory_order_relaxed);
}

/// `to` is about to be replaced (dup2, dup3): as if closed.
void forget_replaced(int to) noexcept {
  if (fd_state* s = state_of(to); s && (s->flags.load(std::memory_order_relaxed) & waited))
    if (const coop_hooks_api* api = coop_api()) api->forget_fd(to);
}

} // namespace

COOP_HOOK int dup(int fd) {
  const int r = libc().dup(fd);
  if (r >= 0) copy_state(fd, r);
  return r;
}
COOP_HOOK int dup2(int fd, int to) {
  if (fd != to) forget_replaced(to);
  const int r = libc().dup2(fd, to);
  if (r >= 0 && fd != to) copy_state(fd, r);
  return r;
}
COOP_HOOK int dup3(int fd, int to, int flags) {
  if (fd != to) forget_replaced(to);
  const int r = libc().dup3(fd, to, flags);
  if (r >= 0) copy_state(fd, r);
  return r;
}

// --- the caller's view of O_NONBLOCK and of the socket timeouts ------------------

namespace {

int hooked_fcntl(int (*real)(int, int, ...), int fd, int cmd, long arg) {
  fd_state* s = state_of(fd);
  const std::uint8_t f = s ? s->flags.load(std::memory_order_relaxed) : 0;
  if (s && (f & hook_nb) && cmd == F_GETFL) {
    const int fl = real(fd, F_GETFL);
    return fl < 0 ? fl : ((f & user_nb) ? fl : (fl & ~O_NONBLOCK));
  }
  if (s && cmd == F_SETFL && (f & known)) {
    const bool nb = arg & O_NONBLOCK;
    const int r = real(fd, F_SETFL, (f & hook_nb) ? (arg | O_NONBLOCK) : arg);
    if (r == 0) {
      if (nb)
        s->flags.fetch_or(user_nb, std::memory_order_relaxed);
      else
        s->flags.fetch_and(static_cast<std::uint8_t>(~user_nb), std::memory_order_relaxed);
    }
    return r;
  }
  return real(fd, cmd, arg);
}

} // namespace

// Every command's argument fits in a long (an int, a long or a pointer).
COOP_HOOK int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  const long arg = va_arg(ap, long);
  va_end(ap);
  return hooked_fcntl(libc().fcntl, fd, cmd, arg);
}
COOP_HOOK int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  const long arg = va_arg(ap, long);
  va_end(ap);
  return hooked_fcntl(libc().fcntl64 ? libc().fcntl64 : libc().fcntl, fd, cmd, arg);
}

COOP_HOOK int ioctl(int fd, unsigned long request, ...) {
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  fd_state* s = state_of(fd);
  if (request == FIONBIO && s && arg) {
    const std::uint8_t f = s->flags.load(std::memory_order_relaxed);
    const bool nb = *static_cast<int*>(arg) != 0;
    int underneath = (nb || (f & hook_nb)) ? 1 : 0;
    const int r = libc().ioctl(fd, FIONBIO, &underneath);
    if (r == 0 && (f & known)) {
      if (nb)
        s->flags.fetch_or(user_nb, std::memory_order_relaxed);
      else
        s->flags.fetch_and(static_cast<std::uint8_t>(~user_nb), std::memory_order_relaxed);
    }
    return r;
  }
  return libc().ioctl(fd, request, arg);
}

COOP_HOOK int setsockopt(int fd, int level, int name, const void* value, socklen_t len) {
  const int r = libc().setsockopt(fd, level, name, value, len);
  if (r == 0 && level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO))
    if (fd_state* s = state_of(fd))
      (name == SO_RCVTIMEO ? s->recv_timeout_ns : s->send_timeout_ns)
          .store(timeval_ns(value, len), std::memory_order_relaxed);
  return r;
}

// --- waits ----------------------------------------------------------------------

namespace {

/// `poll` in a fiber: one park on every descriptor and the deadline at once
/// (CLOCK_MONOTONIC ns, -1 for none). Returns as `poll` does.
int park_poll(const coop_hooks_api* api, pollfd* fds_in, nfds_t n, std::int64_t deadline) {
  for (;;) {
    const int ready = libc().poll(fds_in, n, 0);
    if (ready != 0) return ready;
    int e = 0;
    if (n == 0) {
      e = deadline < 0 ? api->sleep_until(INT64_MAX) : api->sleep_until(deadline);
      if (e == 0) return 0;
    } else if (n == 1 && (fds_in[0].events & (POLLIN | POLLOUT)) != (POLLIN | POLLOUT)) {
      if (fd_state* s = state_of(fds_in[0].fd)) s->flags.fetch_or(waited, std::memory_order_relaxed);
      e = api->wait_fd(fds_in[0].fd, (fds_in[0].events & POLLOUT) ? 1 : 0, deadline);
    } else {
      // Several descriptors (or both directions): one park on an epoll set
      // of them, which is readable when any of them is ready.
      const int ep = ::epoll_create1(EPOLL_CLOEXEC);
      if (ep < 0) return -1;
      for (nfds_t i = 0; i < n; ++i) {
        epoll_event ev{};
        ev.events = static_cast<std::uint32_t>(fds_in[i].events & (POLLIN | POLLOUT | POLLPRI));
        ev.data.u64 = i;
        if (fds_in[i].fd >= 0) ::epoll_ctl(ep, EPOLL_CTL_ADD, fds_in[i].fd, &ev);
      }
      e = api->wait_fd(ep, 0, deadline);
      api->forget_fd(ep);
      libc().close(ep);
    }
    if (e == EAGAIN) return 0; // the poll's own timeout
    if (e != 0) {
      errno = e;
      return -1;
    }
  }
}

std::int64_t deadline_after(const timespec* t) noexcept {
  return t ? now_ns() + std::int64_t(t->tv_sec) * 1'000'000'000 + t->tv_nsec : -1;
}

bool is_zero(const timespec* t) noexcept {
  return t && t->tv_sec == 0 && t->tv_nsec == 0;
}

/// `select`/`pselect` in a fiber, over `park_poll`: the same descriptors
/// as pollfds, the results back into the sets.
int park_select(const coop_hooks_api* api, int nfds, fd_set* r, fd_set* w, fd_set* x, std::int64_t deadline) {
  if (nfds < 0 || nfds > FD_SETSIZE) {
    errno = EINVAL;
    return -1;
  }
  pollfd p[FD_SETSIZE];
  nfds_t n = 0;
  for (int fd = 0; fd < nfds; ++fd) {
    short ev = 0;
    if (r && FD_ISSET(fd, r)) ev |= POLLIN;
    if (w && FD_ISSET(fd, w)) ev |= POLLOUT;
    if (x && FD_ISSET(fd, x)) ev |= POLLPRI;
    if (ev) p[n++] = pollfd{fd, ev, 0};
  }
  const int ready = park_poll(api, p, n, deadline);
  if (ready < 0) return ready;
  if (r) FD_ZERO(r);
  if (w) FD_ZERO(w);
  if (x) FD_ZERO(x);
  int count = 0;
  for (nfds_t i = 0; i < n; ++i) {
    if (p[i].revents & POLLNVAL) {
      errno = EBADF;
      return -1;
    }
    const bool in = p[i].revents & (POLLIN | POLLHUP | POLLERR), out = p[i].revents & (POLLOUT | POLLERR),
               pri = p[i].revents & POLLPRI;
    if (r && in && (p[i].events & POLLIN)) FD_SET(p[i].fd, r), ++count;
    if (w && out && (p[i].events & POLLOUT)) FD_SET(p[i].fd, w), ++count;
    if (x && pri && (p[i].events & POLLPRI)) FD_SET(p[i].fd, x), ++count;
  }
  return count;
}

} // namespace

COOP_HOOK int poll(pollfd* fds_in, nfds_t n, int timeout_ms) {
  const coop_hooks_api* api = timeout_ms == 0 ? nullptr : fiber_api();
  if (!api) return libc().poll(fds_in, n, timeout_ms);
  return park_poll(api, fds_in, n, timeout_ms < 0 ? -1 : now_ns() + std::int64_t(timeout_ms) * 1'000'000);
}

// With a signal mask the caller asks for an atomic mask change around the
// wait, which a park cannot give: those calls go to libc.
COOP_HOOK int ppoll(pollfd* fds_in, nfds_t n, const timespec* timeout, const sigset_t* mask) {
  const coop_hooks_api* api = (mask || is_zero(timeout)) ? nullptr : fiber_api();
  if (!api) return libc().ppoll(fds_in, n, timeout, mask);
  return park_poll(api, fds_in, n, deadline_after(timeout));
}

COOP_HOOK int select(int nfds, fd_set* r, fd_set* w, fd_set* x, timeval* timeout) {
  const coop_hooks_api* api = (timeout && timeout->tv_sec == 0 && timeout->tv_usec == 0) ? nullptr : fiber_api();
  if (!api) return libc().select(nfds, r, w, x, timeout);
  const std::int64_t deadline =
      timeout ? now_ns() + std::int64_t(timeout->tv_sec) * 1'000'000'000 + std::int64_t(timeout->tv_usec) * 1000 : -1;
  const int result = park_select(api, nfds, r, w, x, deadline);
  if (timeout) { // Linux's select leaves the time not slept
    const std::int64_t left = std::max<std::int64_t>(0, deadline - now_ns());
    timeout->tv_sec = static_cast<time_t>(left / 1'000'000'000);
    timeout->tv_usec = static_cast<suseconds_t>(left % 1'000'000'000 / 1000);
  }
  return result;
}

COOP_HOOK int pselect(int nfds, fd_set* r, fd_set* w, fd_set* x, const timespec* timeout, const sigset_t* mask) {
  const coop_hooks_api* api = (mask || is_zero(timeout)) ? nullptr : fiber_api();
  if (!api) return libc().pselect(nfds, r, w, x, timeout, mask);
  return park_select(api, nfds, r, w, x, deadline_after(timeout));
}

// --- sleeps ---------------------------------------------------------------------

COOP_HOOK int nanosleep(const timespec* req, timespec* rem) {
  const coop_hooks_api* api = fiber_api();
  if (!api || !req) return libc().nanosleep(req, rem);
  if (req->tv_nsec < 0 || req->tv_nsec >= 1'000'000'000 || req->tv_sec < 0) {
    errno = EINVAL;
    return -1;
  }
  if (const int e = fiber_sleep(api, std::int64_t(req->tv_sec) * 1'000'000'000 + req->tv_nsec); e != 0) {
    errno = e;
    return -1;
  }
  return 0;
}

COOP_HOOK int usleep(useconds_t us) {
  const coop_hooks_api* api = fiber_api();
  if (!api) return libc().usleep(us);
  if (const int e = fiber_sleep(api, std::int64_t(us) * 1000); e != 0) {
    errno = e;
    return -1;
  }
  return 0;
}

// Returns the error number itself, as clock_nanosleep does (not errno).
COOP_HOOK int clock_nanosleep(clockid_t clock, int flags, const timespec* req, timespec* rem) {
  const coop_hooks_api* api = (clock == CLOCK_MONOTONIC || clock == CLOCK_REALTIME) && req ? fiber_api() : nullptr;
  if (!api) return libc().clock_nanosleep(clock, flags, req, rem);
  if (req->tv_nsec < 0 || req->tv_nsec >= 1'000'000'000 || req->tv_sec < 0) return EINVAL;
  std::int64_t ns = std::int64_t(req->tv_sec) * 1'000'000'000 + req->tv_nsec;
  if (flags & TIMER_ABSTIME) { // an absolute time on `clock`: the time left until it, on the monotonic clock
    timespec now;
    ::clock_gettime(clock, &now);
    ns -= std::int64_t(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
  }
  return fiber_sleep(api, ns);
}

COOP_HOOK unsigned sleep(unsigned seconds) {
  const coop_hooks_api* api = fiber_api();
  if (!api) return libc().sleep(seconds);
  const std::int64_t end = now_ns() + std::int64_t(seconds) * 1'000'000'000;
  if (api->sleep_until(end) == 0) return 0;
  const std::int64_t left = end - now_ns();
  return left > 0 ? static_cast<unsigned>((left + 999'999'999) / 1'000'000'000) : 0;
}

// --- name lookups: on coop's offload pool ---------------------------------------
//
// glibc's resolver makes its socket calls inside libc, where no hook sees
// them: the lookup itself runs on a pool thread while the fiber parks. The
// job owns copies of the arguments and its results; when the fiber is
// interrupted, the pool finishes (or skips) the job and the job frees what
// it found.

namespace {

struct lookup_job {
  std::atomic<int> refs{2}; // the caller's and the pool's
  // getaddrinfo
  std::string node, service;
  bool has_node = false, has_service = false, has_hints = false;
  addrinfo hints{};
  addrinfo* found = nullptr;
  int rc = 0;
  int err = 0; // errno after EAI_SYSTEM
  // gethostbyname_r
  std::string name;
  std::vector<char> buffer;
  hostent entry{};
  hostent* result = nullptr;
  int h_err = 0;
};

void release_job(void* p) {
  auto* job = static_cast<lookup_job*>(p);
  if (job->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (job->found) ::freeaddrinfo(job->found);
  delete job;
}

void run_getaddrinfo(void* p) {
  auto* job = static_cast<lookup_job*>(p);
  job->rc =
      libc().getaddrinfo(job->has_node ? job->node.c_str() : nullptr, job->has_service ? job->service.c_str() : nullptr,
                         job->has_hints ? &job->hints : nullptr, &job->found);
  job->err = errno;
}

void run_gethostbyname_r(void* p) {
  auto* job = static_cast<lookup_job*>(p);
  job->rc = libc().gethostbyname_r(job->name.c_str(), &job->entry, job->buffer.data(), job->buffer.size(), &job->result,
                                   &job->h_err);
}

/// Runs `fn(job)` on the pool: 0, or ETIMEDOUT/ECANCELED when the fiber was
/// interrupted first. The caller still holds its reference (`release_job`).
int run_lookup(const coop_hooks_api* api, void (*fn)(void*), lookup_job* job) noexcept {
  return api->offload(fn, job, &release_job);
}

/// The job's host entry moved into the caller's buffer: every pointer of
/// the entry points into the job's buffer, and moves by the same offset.
void relocate(const lookup_job& job, hostent* out, char* buf) noexcept {
  const char* base = job.buffer.data();
  std::memcpy(buf, base, job.buffer.size());
  auto move = [&](auto* p) {
    return p ? reinterpret_cast<decltype(p)>(buf + (reinterpret_cast<const char*>(p) - base)) : p;
  };
  *out = job.entry;
  out->h_name = move(job.entry.h_name);
  out->h_aliases = move(job.entry.h_aliases);
  out->h_addr_list = move(job.entry.h_addr_list);
  for (char** a = out->h_aliases; a && *a; ++a)
    *a = move(*a);
  for (char** a = out->h_addr_list; a && *a; ++a)
    *a = move(*a);
}

} // namespace

COOP_HOOK int getaddrinfo(const char* node, const char* service, const addrinfo* hints, addrinfo** res) {
  const coop_hooks_api* api = fiber_api();
  if (!api) return libc().getaddrinfo(node, service, hints, res);
  lookup_job* job = nullptr;
  try {
    job = new lookup_job;
    if ((job->has_node = node != nullptr)) job->node = node;
    if ((job->has_service = service != nullptr)) job->service = service;
    if ((job->has_hints = hints != nullptr)) {
      job->hints.ai_flags = hints->ai_flags;
      job->hints.ai_family = hints->ai_family;
      job->hints.ai_socktype = hints->ai_socktype;
      job->hints.ai_protocol = hints->ai_protocol;
    }
  } catch (...) {
    delete job;
    return EAI_MEMORY;
  }
  int rc = EAI_SYSTEM;
  if (const int e = run_lookup(api, &run_getaddrinfo, job); e != 0) {
    errno = e; // ETIMEDOUT, ECANCELED
  } else {
    rc = job->rc;
    if (rc == 0) {
      *res = job->found;
      job->found = nullptr;
    } else if (rc == EAI_SYSTEM) {
      errno = job->err;
    }
  }
  release_job(job);
  return rc;
}

COOP_HOOK int gethostbyname_r(const char* name, hostent* ret, char* buf, size_t buflen, hostent** result,
                              int* h_errnop) {
  const coop_hooks_api* api = fiber_api();
  if (!api || !name) return libc().gethostbyname_r(name, ret, buf, buflen, result, h_errnop);
  lookup_job* job = nullptr;
  try {
    job = new lookup_job;
    job->name = name;
    job->buffer.resize(buflen);
  } catch (...) {
    delete job;
    *result = nullptr;
    return ENOMEM;
  }
  int rc;
  if (const int e = run_lookup(api, &run_gethostbyname_r, job); e != 0) {
    rc = e; // ETIMEDOUT, ECANCELED: the error number, as gethostbyname_r returns it
    *result = nullptr;
    if (h_errnop) *h_errnop = NETDB_INTERNAL;
  } else {
    rc = job->rc;
    if (h_errnop) *h_errnop = job->h_err;
    *result = nullptr;
    if (rc == 0 && job->result) {
      relocate(*job, ret, buf);
      *result = ret;
    }
  }
  release_job(job);
  return rc;
}

COOP_HOOK hostent* gethostbyname(const char* name) {
  // Like glibc's, the result is overwritten by the next call (on this
  // thread: each runtime thread has its own).
  static thread_local hostent entry;
  static thread_local std::vector<char> buffer(1024);
  hostent* result = nullptr;
  int err = 0;
  for (;;) {
    const int rc = gethostbyname_r(name, &entry, buffer.data(), buffer.size(), &result, &err);
    if (rc != ERANGE || buffer.size() >= (1u << 20)) break;
    buffer.resize(buffer.size() * 2);
  }
  if (!result) h_errno = err;
  return result;
}
