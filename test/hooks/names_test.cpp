// test/hooks/names_test.cpp — coop::hooks preloaded (LD_PRELOAD, not
// linked) ahead of slow_lookup.cpp's shim: getaddrinfo, gethostbyname_r and
// gethostbyname run on coop's offload pool while the fiber parks, with
// coop's timeouts; everywhere else they are libc's.
#define BOOST_TEST_MODULE coop_hooks_names
#include "support.hpp"

#include "hooks_support.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using hooks_support::hooks_off;

/// getaddrinfo's first IPv4 address as text, or "error <rc>".
std::string lookup(const char* name) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(name, "80", &hints, &res);
  if (rc != 0) return "error " + std::to_string(rc);
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr, text, sizeof text);
  ::freeaddrinfo(res);
  return text;
}

} // namespace

COOP_MT_TEST_CASE(getaddrinfo_runs_off_the_thread_while_the_fiber_parks) {
  if (hooks_off()) return;
  struct outcome {
    std::string address;
    std::chrono::steady_clock::duration took;
    long others_turns;
  };
  std::vector<coop::task<outcome>> lookups; // one on each runtime thread, at once
  for (unsigned i = 0; i < rt.size(); ++i)
    lookups.push_back(rt.spawn_on(i, [] {
      test_support::turn_counter others;
      outcome o;
      o.took = test_support::elapsed([&] { o.address = lookup("slow.coop.test"); });
      o.others_turns = others.turns();
      return o;
    }));
  for (auto& l : lookups) { // (Boost.Test's checks on this thread only)
    const outcome o = l.get();
    BOOST_TEST(o.address == "127.0.0.1");
    BOOST_TEST(o.took >= 300ms);
    BOOST_TEST(o.others_turns > 10); // the thread ran other fibers meanwhile
  }
}

COOP_TEST_CASE(a_timeout_ends_a_lookup_with_eai_system_and_etimedout) {
  if (hooks_off()) return;
  std::string result;
  int err = 0;
  const auto took = test_support::elapsed([&] {
    coop::timeout t(50ms);
    result = lookup("slow.coop.test");
    err = errno;
    BOOST_CHECK_THROW(coop::sleep_for(0ms), coop::timeout_error); // the next coop call
  });
  BOOST_TEST(result == "error " + std::to_string(EAI_SYSTEM));
  BOOST_TEST(err == ETIMEDOUT);
  BOOST_TEST(took < 150ms * hooks_support::slowdown);
}

COOP_TEST_CASE(gethostbyname_r_and_gethostbyname_fill_the_callers_entry) {
  if (hooks_off()) return;
  test_support::turn_counter others;
  hostent entry{};
  char buf[2048];
  hostent* result = nullptr;
  int h_err = 0;
  BOOST_TEST(::gethostbyname_r("slow.coop.test", &entry, buf, sizeof buf, &result, &h_err) == 0);
  BOOST_TEST_REQUIRE(result == &entry);
  BOOST_TEST(std::string(entry.h_name) == "localhost");
  // Every pointer of the entry is in the caller's buffer, not the pool's.
  BOOST_TEST((entry.h_name >= buf && entry.h_name < buf + sizeof buf));
  BOOST_TEST_REQUIRE(entry.h_addr_list[0] != nullptr);
  BOOST_TEST((entry.h_addr_list[0] >= buf && entry.h_addr_list[0] < buf + sizeof buf));
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(entry.h_addrtype, entry.h_addr_list[0], text, sizeof text);
  BOOST_TEST((std::string(text) == "127.0.0.1" || std::string(text) == "::1"), text);
  BOOST_TEST(others.turns() > 10);

  hostent* h = ::gethostbyname("slow.coop.test");
  BOOST_TEST_REQUIRE(h != nullptr);
  BOOST_TEST(std::string(h->h_name) == "localhost");
}

COOP_TEST_CASE(a_plain_thread_looks_up_as_usual) {
  if (hooks_off()) return;
  std::string address;
  std::thread t([&] { address = lookup("slow.coop.test"); });
  t.join();
  BOOST_TEST(address == "127.0.0.1");
}

COOP_TEST_CASE(with_coop_hooks_0_a_lookup_blocks_the_thread) {
  if (!hooks_off()) return; // (the run with COOP_HOOKS=0)
  test_support::turn_counter others;
  coop::this_fiber::yield();
  const long before = others.turns();
  BOOST_TEST(lookup("slow.coop.test") == "127.0.0.1");
  BOOST_TEST(others.turns() == before);
}
