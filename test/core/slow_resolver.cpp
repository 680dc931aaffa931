// test/core/slow_resolver.cpp — an LD_PRELOAD shim for the tests: resolving
// "slow.coop.test" takes 3 seconds and then fails, "unknown.coop.test" fails
// at once; every other name goes to the C library. It lets a test show that
// a timeout interrupts a resolve or connect() that is still resolving, and
// what an unknown name gives, without any name server.
#include <dlfcn.h>
#include <netdb.h>
#include <unistd.h>

#include <cstring>

extern "C" int getaddrinfo(const char* node, const char* service, const addrinfo* hints, addrinfo** res) {
  if (node && std::strcmp(node, "slow.coop.test") == 0) {
    ::sleep(3);
    return EAI_NONAME;
  }
  if (node && std::strcmp(node, "unknown.coop.test") == 0) return EAI_NONAME;
  using fn = int (*)(const char*, const char*, const addrinfo*, addrinfo**);
  static fn real = reinterpret_cast<fn>(::dlsym(RTLD_NEXT, "getaddrinfo"));
  return real(node, service, hints, res);
}
