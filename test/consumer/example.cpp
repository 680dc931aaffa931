// A first program as a user writes it: an echo server, three clients and a
// timeout on one runtime. Must print "timed out" then "3 echoed".
#include <coop/coop.hpp>

#include <array>
#include <iostream>
using namespace std::chrono_literals;

int main() {
  return coop::run([]() -> int {
    coop::net::tcp_listener listener({boost::asio::ip::make_address("127.0.0.1"), 0});
    auto port = listener.local_endpoint().port();
    auto server = coop::spawn([&] {
      for (;;) {
        coop::net::tcp_stream conn = listener.accept();
        coop::spawn([c = std::move(conn)]() mutable {
          std::array<char, 4096> buf;
          boost::system::error_code ec;
          for (;;) {
            std::size_t n = c.read_some(boost::asio::buffer(buf), ec);
            if (ec) return;
            c.write_all(boost::asio::buffer(buf.data(), n));
          }
        }).detach();
      }
    });
    coop::channel<int> results(16);
    for (int i = 0; i < 3; ++i)
      coop::spawn([&, i] {
        auto s = coop::net::connect("127.0.0.1", port);
        std::string msg = "hello " + std::to_string(i);
        s.write_all(boost::asio::buffer(msg));
        std::string back(msg.size(), '\0');
        s.read_exact(boost::asio::buffer(back));
        results.push(back == msg ? 1 : 0);
      }).detach();
    int ok = 0;
    for (int i = 0; i < 3; ++i)
      ok += *results.pop();
    try {
      coop::timeout t(50ms);
      coop::sleep_for(1s);
    } catch (const coop::timeout_error&) {
      std::cout << "timed out\n";
    }
    server.cancel();
    server.join();
    std::cout << ok << " echoed\n";
    return ok == 3 ? 0 : 1;
  });
}
