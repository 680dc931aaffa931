#define BOOST_TEST_MODULE coop_misuse
// Misuse is an error, not a crash: each case raises coop::usage_error with a
// message saying what was wrong, and leaves the program able to go on.
#include "support.hpp"

#include <boost/asio/steady_timer.hpp>

#include <fcntl.h>

#include <optional>
#include <string>

namespace {

/// The usage_error message `fn` throws ("" if it throws none).
template <class F> std::string usage_error_of(F fn) {
  try {
    fn();
  } catch (const coop::usage_error& e) {
    return e.what();
  }
  return {};
}

bool fd_is_open(int fd) {
  return ::fcntl(fd, F_GETFD) != -1;
}

} // namespace

/// A two-thread runtime and sockets of its thread 0 (a connected TCP pair, a
/// listener, a UDP socket), for calls made from thread 1; destroyed on
/// thread 0, their owner.
struct sockets_of_thread_0 {
  coop::runtime rt{2};
  std::optional<test_support::stream_pair> pair;
  std::optional<coop::net::tcp_listener> listener;
  std::optional<coop::net::udp_socket> udp;

  sockets_of_thread_0() {
    rt.spawn_on(0, [this] {
        pair.emplace(test_support::connected_pair());
        listener.emplace(test_support::loopback());
        udp.emplace(boost::asio::ip::udp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
      }).get();
  }
  ~sockets_of_thread_0() {
    rt.spawn_on(0, [this] {
        pair.reset();
        listener.reset();
        udp.reset();
      }).get();
  }
};

/// `m` is the usage_error of `call` on another runtime thread's object.
void refused_on_another_thread(const std::string& m, const char* call) {
  BOOST_TEST(m.find(call) != std::string::npos, m);
  BOOST_TEST(m.find("another runtime thread") != std::string::npos, m);
}

BOOST_FIXTURE_TEST_CASE(close_from_another_runtime_thread_is_a_usage_error, sockets_of_thread_0) {
  rt.spawn_on(1, [&] {
      refused_on_another_thread(usage_error_of([&] { pair->client.close(); }), "coop::net::tcp_stream::close");
      boost::system::error_code ec;
      BOOST_CHECK_THROW(pair->client.close(ec), coop::usage_error); // the ec form too: misuse is not an I/O error
      BOOST_CHECK_THROW(pair->client.shutdown_send(ec), coop::usage_error);
      refused_on_another_thread(usage_error_of([&] { listener->close(); }), "coop::net::tcp_listener::close");
      refused_on_another_thread(usage_error_of([&] { udp->close(); }), "coop::net::udp_socket::close");
    }).get();
  BOOST_TEST(pair->client.is_open()); // nothing was closed
  BOOST_TEST(listener->is_open());
  rt.spawn_on(0,
              [&] { // the owner may
                pair->client.close();
                listener->close();
                udp->close();
              })
      .get();
}

BOOST_FIXTURE_TEST_CASE(socket_calls_on_an_object_of_another_runtime_thread_are_usage_errors_and_move_no_byte,
                        sockets_of_thread_0) {
  // Every socket call checks at its start that the socket belongs to the
  // calling fiber's thread, the ec forms too, before any system call.
  rt.spawn_on(1, [&] {
      char c = 'x';
      boost::system::error_code ec;
      refused_on_another_thread(usage_error_of([&] { pair->server.read_some(boost::asio::buffer(&c, 1), ec); }),
                                "coop::net::tcp_stream::read_some");
      refused_on_another_thread(usage_error_of([&] { pair->client.write_some(boost::asio::buffer(&c, 1), ec); }),
                                "coop::net::tcp_stream::write_some");
      refused_on_another_thread(usage_error_of([&] { pair->client.write_all(boost::asio::buffer(&c, 1)); }),
                                "coop::net::tcp_stream::write_some");
      refused_on_another_thread(usage_error_of([&] { listener->accept(ec); }), "coop::net::tcp_listener::accept");
      refused_on_another_thread(
          usage_error_of([&] { udp->send_to(boost::asio::buffer(&c, 1), udp->local_endpoint(), ec); }),
          "coop::net::udp_socket::send_to");
      refused_on_another_thread(usage_error_of([&] { udp->receive(boost::asio::buffer(&c, 1), ec); }),
                                "coop::net::udp_socket::receive");
    }).get();
  rt.spawn_on(0, [&] {
      BOOST_TEST(pair->server.socket().available() == 0u); // nothing was written
      BOOST_TEST(udp->socket().available() == 0u);
    }).get();
}

BOOST_AUTO_TEST_CASE(close_on_a_plain_thread_is_a_usage_error) {
  std::optional<test_support::stream_pair> pair;
  coop::run([&] {
    pair.emplace(test_support::connected_pair());
    std::string m;
    std::thread([&] { m = usage_error_of([&] { pair->client.close(); }); }).join();
    BOOST_TEST(m.find("from outside its fibers") != std::string::npos, m);
    pair.reset();
  });
}

BOOST_AUTO_TEST_CASE(an_io_object_that_outlives_its_run_is_a_usage_error_to_use_and_closes_cleanly) {
  // Under ASan or valgrind, destroying these after the run touched the freed
  // reactor before: each object now keeps its io_context alive.
  std::optional<test_support::stream_pair> pair;
  std::optional<coop::net::tcp_listener> listener;
  std::optional<coop::net::udp_socket> udp;
  coop::run([&] {
    pair.emplace(test_support::connected_pair());
    listener.emplace(test_support::loopback());
    udp.emplace(boost::asio::ip::udp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  });
  char c;
  std::string m = usage_error_of([&] { pair->server.read_some(boost::asio::buffer(&c, 1)); });
  BOOST_TEST(m.find("outside a coop runtime") != std::string::npos, m);
  coop::run([&] { // a later run on the same thread is another runtime
    std::string later = usage_error_of([&] { pair->server.read_some(boost::asio::buffer(&c, 1)); });
    BOOST_TEST(later.find("a runtime that has ended") != std::string::npos, later);
    BOOST_CHECK_THROW(listener->accept(), coop::usage_error);
  });
  int fd = pair->client.socket().native_handle();
  BOOST_TEST(fd_is_open(fd));
  pair.reset();
  listener.reset();
  udp.reset();
  BOOST_TEST(!fd_is_open(fd));
}

BOOST_AUTO_TEST_CASE(an_asio_object_of_another_runtime_thread_with_coop_yield_is_a_usage_error) {
  coop::runtime rt(2);
  std::optional<boost::asio::steady_timer> timer;
  rt.spawn_on(0, [&] { timer.emplace(coop::this_thread_io(), std::chrono::milliseconds(1)); }).get();
  rt.spawn_on(1, [&] {
      std::string m = usage_error_of([&] { timer->async_wait(coop::yield); });
      BOOST_TEST(m.find("coop::yield: an Asio operation") != std::string::npos, m);
      BOOST_TEST(m.find("another runtime thread") != std::string::npos, m);
    }).get();
  rt.spawn_on(0, [&] {
      timer->async_wait(coop::yield); // on its own thread it works
      timer.reset();
    }).get();
}

BOOST_AUTO_TEST_CASE(destroying_a_runtime_on_its_own_thread_is_a_usage_error) {
  auto* rt = new coop::runtime(2);
  auto t = rt->spawn_on(1, [rt] {
    coop::sleep_for(10ms);
    return usage_error_of([rt] { delete rt; });
  });
  std::string m = t.get(); // the runtime's threads end once their fibers are done
  BOOST_TEST(m.find("coop::runtime destroyed on one of its own threads") != std::string::npos, m);
}
