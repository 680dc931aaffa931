// test/hooks/curl_test.cpp — coop::hooks under libcurl's blocking
// curl_easy_perform, against a local HTTP server that answers after 200 ms
// (a coop server in the same process).
#define BOOST_TEST_MODULE coop_hooks_curl
#include "support.hpp"

#include "hooks_support.hpp"

#include <curl/curl.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct curl_global {
  curl_global() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~curl_global() { curl_global_cleanup(); }
};

using hooks_support::hooks_off;

/// An HTTP/1.1 server on the calling runtime thread that answers every
/// request "ok" after `delay`; stops at the end of its scope.
struct slow_http_server {
  std::uint16_t port;
  coop::task<void> task;

  explicit slow_http_server(std::chrono::milliseconds delay) {
    auto listener = std::make_shared<coop::net::tcp_listener>(test_support::loopback());
    port = listener->local_endpoint().port();
    task = coop::spawn([listener, delay] {
      coop::task_group connections;
      for (;;)
        connections.spawn([c = listener->accept(), delay]() mutable {
          std::string request;
          boost::system::error_code ec;
          c.read_until(request, "\r\n\r\n", ec);
          if (ec) return;
          coop::sleep_for(delay);
          const std::string_view reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
          c.write_all(boost::asio::buffer(reply), ec);
        });
    });
  }
  slow_http_server(const slow_http_server&) = delete;
  ~slow_http_server() {
    task.cancel();
    task.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port) + "/"; }
};

std::size_t collect(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

/// One blocking GET; the body into `body`.
CURLcode get(const std::string& url, std::string& body, long timeout_ms = 0) {
  CURL* h = curl_easy_init();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  if (timeout_ms) curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  const CURLcode r = curl_easy_perform(h);
  curl_easy_cleanup(h);
  return r;
}

} // namespace

BOOST_TEST_GLOBAL_FIXTURE(curl_global);

COOP_TEST_CASE(a_hundred_fibers_run_curl_easy_perform_at_once_on_one_thread) {
  if (hooks_off()) return;
  slow_http_server server(200ms); // on the same runtime thread as the clients
  std::atomic<int> ok{0};
  const auto took = test_support::elapsed([&] {
    coop::task_group clients;
    for (int i = 0; i < 100; ++i)
      clients.spawn([&] {
        std::string body;
        if (get(server.url(), body) == CURLE_OK && body == "ok") ++ok;
      });
    clients.join();
  });
  BOOST_TEST(ok == 100);
  BOOST_TEST_MESSAGE("100 x curl_easy_perform (200 ms each): "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  BOOST_TEST(took <= 800ms * hooks_support::slowdown); // one after another: 20 s
}

COOP_MT_TEST_CASE(fibers_on_every_runtime_thread_run_curl_at_once) {
  if (hooks_off()) return;
  // One server on each thread, each thread's clients on its own server.
  std::vector<std::shared_ptr<slow_http_server>> servers(rt.size());
  for (unsigned i = 0; i < rt.size(); ++i)
    servers[i] = rt.spawn_on(i, [] { return std::make_shared<slow_http_server>(200ms); }).get();
  std::atomic<int> ok{0};
  std::vector<coop::task<void>> clients;
  const auto took = test_support::elapsed([&] {
    for (unsigned i = 0; i < 20 * rt.size(); ++i)
      clients.push_back(rt.spawn_on(i % rt.size(), [&ok, url = servers[i % rt.size()]->url()] {
        std::string body;
        if (get(url, body) == CURLE_OK && body == "ok") ++ok;
      }));
    for (auto& c : clients)
      c.get();
  });
  BOOST_TEST(ok == static_cast<int>(20 * rt.size()));
  BOOST_TEST(took <= 1s * hooks_support::slowdown); // one after another: 4 s per thread
  for (unsigned i = 0; i < rt.size(); ++i)          // each server stops on its own thread
    rt.spawn_on(i, [s = std::move(servers[i])]() mutable { s.reset(); }).get();
}

COOP_TEST_CASE(curlopt_timeout_ms_and_coop_timeout_are_both_honoured) {
  if (hooks_off()) return;
  slow_http_server server(200ms);
  std::string body;
  CURLcode r = CURLE_OK;
  auto took = test_support::elapsed([&] { r = get(server.url(), body, 50); });
  BOOST_TEST(r == CURLE_OPERATION_TIMEDOUT);
  BOOST_TEST(took < 150ms * hooks_support::slowdown);

  took = test_support::elapsed([&] {
    coop::timeout t(50ms);
    r = get(server.url(), body);
    BOOST_CHECK_THROW(coop::sleep_for(0ms), coop::timeout_error); // the next coop call
  });
  BOOST_TEST(r != CURLE_OK, curl_easy_strerror(r));
  BOOST_TEST(took < 150ms * hooks_support::slowdown);
}

COOP_TEST_CASE(a_plain_thread_runs_curl_as_usual) {
  if (hooks_off()) return;
  slow_http_server server(50ms); // its fibers run while this fiber waits for the thread
  std::string body;
  CURLcode r = CURLE_FAILED_INIT;
  std::atomic<bool> done{false};
  std::thread t([&] {
    r = get(server.url(), body);
    done = true;
  });
  test_support::yield_until([&] { return done.load(); });
  t.join();
  BOOST_TEST(r == CURLE_OK, curl_easy_strerror(r));
  BOOST_TEST(body == "ok");
}

COOP_TEST_CASE(without_hooks_curl_blocks_the_thread) {
  if (!hooks_off()) return; // (the run with COOP_HOOKS=0)
  coop::runtime other(1);   // the server must run elsewhere: this thread will block
  auto server = other.spawn_on(0, [] { return std::make_shared<slow_http_server>(50ms); }).get();
  test_support::turn_counter others;
  coop::this_fiber::yield();
  const long before = others.turns();
  std::string body;
  BOOST_TEST(get(server->url(), body) == CURLE_OK);
  BOOST_TEST(body == "ok");
  BOOST_TEST(others.turns() == before); // nothing else ran meanwhile
  other.spawn_on(0, [s = std::move(server)]() mutable { s.reset(); }).get();
}
