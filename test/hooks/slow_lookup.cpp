// test/hooks/slow_lookup.cpp — an LD_PRELOAD shim for hooks.names, loaded
// after libcoop_hooks.so: looking up "slow.coop.test" takes 300 ms (a raw
// nanosleep system call, which no hook sees) and then gives localhost's
// answer. So the hooked lookup, which runs this on a pool thread, shows
// whether the fiber's thread went on meanwhile. No name server is asked.
#include <dlfcn.h>
#include <netdb.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace {

bool slow(const char* name) {
  if (!name || std::strcmp(name, "slow.coop.test") != 0) return false;
  timespec t{0, 300'000'000};
  while (::syscall(SYS_nanosleep, &t, &t) == -1 && errno == EINTR) {
  } // (coop's stall report interrupts a thread it samples: sleep the rest)
  return true;
}

template <class F> F next(const char* name) {
  return reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
}

} // namespace

extern "C" int getaddrinfo(const char* node, const char* service, const addrinfo* hints, addrinfo** res) {
  static auto real = next<int (*)(const char*, const char*, const addrinfo*, addrinfo**)>("getaddrinfo");
  return real(slow(node) ? "127.0.0.1" : node, service, hints, res);
}

extern "C" int gethostbyname_r(const char* name, hostent* ret, char* buf, size_t len, hostent** result, int* err) {
  static auto real = next<int (*)(const char*, hostent*, char*, size_t, hostent**, int*)>("gethostbyname_r");
  return real(slow(name) ? "localhost" : name, ret, buf, len, result, err);
}
