// bench/echo_bench.cpp — the smallest coop echo server (a fiber per connection,
// read_some then write_all), to compare system calls and CPU per request against
// the baselines in bench/baselines/ (B1 epoll, B2 Asio callbacks) in the same
// run; and a coop client that sends an exact number of requests, so that
// counts per request (system calls, instructions) come out exact.
//
//   echo_bench server coop     prints "listening on 127.0.0.1:PORT", serves until SIGINT/SIGTERM
//   echo_bench client PORT CONNECTIONS REQUESTS SIZE [PAUSE_US]
//
// PAUSE_US: each connection waits that long after an echo before it sends
// its next request, so that the server's next read finds nothing and waits
// (a server slowed down by valgrind would otherwise find the next request
// already there: the client answers within microseconds).
#include <coop/coop.hpp>

#include <csignal>

#include <array>
#include <atomic>
#include <chrono>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;

namespace {

constexpr std::size_t buffer_size = 4096;

int coop_server() {
  return coop::run([] {
    coop::net::tcp_listener listener({asio::ip::make_address("127.0.0.1"), 0});
    std::cout << "listening on 127.0.0.1:" << listener.local_endpoint().port() << std::endl;
    auto acceptor = coop::spawn([&] {
      for (;;)
        coop::spawn([c = listener.accept()]() mutable {
          std::array<char, buffer_size> buf;
          boost::system::error_code ec;
          for (;;) {
            std::size_t n = c.read_some(asio::buffer(buf), ec);
            if (ec) return;
            c.write_all(asio::buffer(buf.data(), n), ec);
            if (ec) return;
          }
        }).detach();
    });
    coop::wait_for_signal({SIGINT, SIGTERM});
    acceptor.cancel();
    acceptor.join(); // it uses the listener: let it finish first
    return 0;
  });
}

int client(std::uint16_t port, int connections, long requests, std::size_t size, std::chrono::microseconds pause) {
  return coop::run([&] {
    std::atomic<long> failures{0};
    std::vector<coop::task<void>> tasks;
    long per = requests / connections;
    for (int i = 0; i < connections; ++i)
      tasks.push_back(coop::spawn([&] {
        boost::system::error_code ec;
        auto s = coop::net::connect("127.0.0.1", port);
        std::string msg(size, 'x'), back(size, '\0');
        for (long r = 0; r < per; ++r) {
          if (r > 0 && pause.count() > 0) coop::sleep_for(pause);
          s.write_all(asio::buffer(msg), ec);
          if (!ec) s.read_exact(asio::buffer(back), ec);
          if (ec || back != msg) {
            ++failures;
            return;
          }
        }
      }));
    coop::join_all(tasks);
    std::cout << "requests " << per * connections << " failures " << failures.load() << std::endl;
    return failures.load() == 0 ? 0 : 1;
  });
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 2 && args[0] == "server") {
    if (args[1] == "coop") return coop_server();
  }
  if ((args.size() == 5 || args.size() == 6) && args[0] == "client") {
    try {
      return client(static_cast<std::uint16_t>(std::stoi(args[1])), std::stoi(args[2]), std::stol(args[3]),
                    std::stoul(args[4]), std::chrono::microseconds(args.size() == 6 ? std::stol(args[5]) : 0));
    } catch (const std::logic_error& e) { // std::stoi and friends: not a number
      std::cerr << "echo_bench: client: not a number among the arguments (" << e.what() << ")\n";
      return 2;
    }
  }
  std::cerr << "usage: echo_bench server coop | echo_bench client PORT CONNECTIONS REQUESTS SIZE [PAUSE_US]\n";
  return 2;
}
