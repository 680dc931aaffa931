// A short program that runs coop's fiber runtime on two threads, for the test
// runtime_valgrind (memcheck with --error-exitcode): fibers on every runtime
// thread, channels and tasks across threads, loopback sockets, timeouts,
// exceptions thrown and caught on fiber stacks, offload, and many short fibers
// whose stacks go back to the pool. Prints "ok" and exits 0 when every step
// gave the expected result.
#include <coop/coop.hpp>

#include <array>
#include <atomic>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

int main() {
  coop::runtime rt(2);
  std::atomic<int> failures{0};
  auto expect = [&](bool ok, const char* what) {
    if (!ok) {
      std::cerr << "valgrind_smoke: " << what << " failed\n";
      ++failures;
    }
  };

  // A channel between the two runtime threads.
  coop::channel<int> numbers(4);
  auto producer = rt.spawn_on(1, [&] {
    for (int i = 1; i <= 200; ++i)
      numbers.push(i);
    numbers.close();
  });
  long sum = rt.spawn_on(0, [&] {
                 long s = 0;
                 while (auto v = numbers.pop())
                   s += *v;
                 return s;
               }).get();
  producer.join();
  expect(sum == 200 * 201 / 2, "channel across threads");

  // An echo over loopback: the server on thread 0, the client on thread 1.
  coop::channel<unsigned short> ports(1);
  auto server = rt.spawn_on(0, [&] {
    coop::net::tcp_listener listener({boost::asio::ip::make_address("127.0.0.1"), 0});
    ports.push(listener.local_endpoint().port());
    coop::net::tcp_stream conn = listener.accept();
    std::array<char, 256> buf;
    boost::system::error_code ec;
    for (;;) {
      std::size_t n = conn.read_some(boost::asio::buffer(buf), ec);
      if (ec) return;
      conn.write_all(boost::asio::buffer(buf.data(), n));
    }
  });
  bool echoed = rt.spawn_on(1, [&] {
                    auto s = coop::net::connect("127.0.0.1", *ports.pop());
                    for (int i = 0; i < 20; ++i) {
                      std::string msg = "message " + std::to_string(i);
                      s.write_all(boost::asio::buffer(msg));
                      std::string back(msg.size(), '\0');
                      s.read_exact(boost::asio::buffer(back));
                      if (back != msg) return false;
                    }
                    return true;
                  }).get();
  server.join();
  expect(echoed, "loopback echo");

  // Timeouts, exceptions on fiber stacks, offload, many short fibers.
  rt.run_on_each([&](unsigned) {
    bool timed_out = false;
    try {
      coop::timeout t(10ms);
      coop::sleep_for(10s);
    } catch (const coop::timeout_error&) {
      timed_out = true;
    }
    bool caught = false;
    try {
      coop::spawn([] { throw std::runtime_error("on a fiber stack"); }).get();
    } catch (const std::runtime_error&) {
      caught = true;
    }
    int offloaded = coop::offload([] { return 42; });
    std::vector<coop::task<int>> tasks;
    for (int i = 0; i < 100; ++i)
      tasks.push_back(coop::spawn([i] {
        coop::this_fiber::yield();
        return i;
      }));
    int total = 0;
    for (auto& t : tasks)
      total += t.get();
    expect(timed_out && caught && offloaded == 42 && total == 4950, "timeout, exception, offload or fibers");
  });

  if (failures) return 1;
  std::cout << "ok\n";
  return 0;
}
