#define BOOST_TEST_MODULE coop_udp
// Datagram sockets: coop::net::udp_socket.
#include "support.hpp"

#include <array>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace {

using coop::net::udp;
using coop::net::udp_socket;

udp::endpoint loopback() {
  return {boost::asio::ip::make_address("127.0.0.1"), 0};
}

/// An echo server fiber on a socket of the calling thread, returning each
/// datagram to its sender until cancelled; returns the task and its address.
std::pair<coop::task<void>, udp::endpoint> echo_server() {
  auto s = std::make_shared<udp_socket>(loopback());
  udp::endpoint where = s->local_endpoint();
  auto t = coop::spawn([s] {
    std::vector<char> datagram(64 * 1024);
    udp::endpoint sender;
    for (;;) {
      std::size_t n = s->receive_from(boost::asio::buffer(datagram), sender);
      s->send_to(boost::asio::buffer(datagram.data(), n), sender);
    }
  });
  return {std::move(t), where};
}

using test_support::expect_cancel;
using test_support::expect_timeout;

} // namespace

COOP_TEST_CASE(a_socket_on_port_zero_gets_a_real_port) {
  udp_socket s(loopback());
  BOOST_TEST(s.local_endpoint().port() != 0);
  BOOST_TEST(s.local_endpoint().address().to_string() == "127.0.0.1");
  BOOST_TEST(s.is_open());
  s.close();
  BOOST_TEST(!s.is_open());
}

COOP_TEST_CASE(datagrams_of_many_sizes_go_to_and_come_from_the_right_endpoint) {
  coop::timeout guard(10s);
  auto [server, where] = echo_server();
  udp_socket c(loopback());
  std::vector<char> back(64 * 1024);
  for (std::size_t size : {0u, 1u, 100u, 1472u, 9000u, 60000u}) {
    std::string msg(size, static_cast<char>('a' + size % 26));
    BOOST_TEST(c.send_to(boost::asio::buffer(msg), where) == size);
    udp::endpoint from;
    std::size_t n = c.receive_from(boost::asio::buffer(back), from);
    BOOST_TEST(n == size);
    BOOST_TEST((from == where));
    BOOST_TEST((std::string(back.data(), n) == msg));
  }
  // Several buffers make one datagram.
  std::array<boost::asio::const_buffer, 3> parts{boost::asio::buffer("gat", 3), boost::asio::buffer("her", 3),
                                                 boost::asio::buffer("ed", 2)};
  c.send_to(parts, where);
  udp::endpoint from;
  std::size_t n = c.receive_from(boost::asio::buffer(back), from);
  BOOST_TEST(std::string(back.data(), n) == "gathered");
  server.cancel();
}

COOP_TEST_CASE(a_connected_socket_talks_to_its_peer_only) {
  coop::timeout guard(10s);
  auto [server, where] = echo_server();
  udp_socket c(loopback());
  c.connect(where);
  BOOST_TEST((c.remote_endpoint() == where));
  udp_socket stranger(loopback());
  stranger.send_to(boost::asio::buffer("not for you", 11), c.local_endpoint()); // filtered by the kernel
  c.send(boost::asio::buffer("ping", 4));
  std::array<char, 64> buf;
  std::size_t n = c.receive(boost::asio::buffer(buf));
  BOOST_TEST(std::string(buf.data(), n) == "ping");
  server.cancel();
}

COOP_TEST_CASE(a_datagram_larger_than_the_buffer_is_truncated_and_reported) {
  udp_socket a(loopback()), b(loopback());
  std::string big(100, 'x');
  big.replace(0, 10, "0123456789");
  a.send_to(boost::asio::buffer(big), b.local_endpoint());
  a.send_to(boost::asio::buffer("next", 4), b.local_endpoint());
  std::array<char, 10> small;
  udp::endpoint from;
  boost::system::error_code ec;
  std::size_t n = b.receive_from(boost::asio::buffer(small), from, ec);
  BOOST_TEST((ec == boost::asio::error::message_size));
  BOOST_TEST(n == small.size()); // the prefix is there...
  BOOST_TEST(std::string(small.data(), n) == "0123456789");
  BOOST_TEST((from == a.local_endpoint()));
  n = b.receive_from(boost::asio::buffer(small), from, ec); // ...the rest is gone
  BOOST_TEST(!ec);
  BOOST_TEST(std::string(small.data(), n) == "next");
  // The throwing forms throw it, connected or not.
  a.send_to(boost::asio::buffer(big), b.local_endpoint());
  try {
    b.receive_from(boost::asio::buffer(small), from);
    BOOST_FAIL("a truncated datagram was not reported");
  } catch (const boost::system::system_error& e) {
    BOOST_TEST((e.code() == boost::asio::error::message_size));
  }
  b.connect(a.local_endpoint());
  a.send_to(boost::asio::buffer(big), b.local_endpoint());
  BOOST_CHECK_THROW(b.receive(boost::asio::buffer(small)), boost::system::system_error);
  // A buffer of exactly the datagram's size is not truncation.
  a.send_to(boost::asio::buffer(big.data(), 10), b.local_endpoint());
  BOOST_TEST(b.receive(boost::asio::buffer(small)) == 10u);
}

COOP_TEST_CASE(too_many_buffers_for_one_datagram_is_an_error_not_a_partial_datagram) {
  udp_socket a(loopback()), b(loopback());
  std::vector<boost::asio::const_buffer> parts(65, boost::asio::buffer("x", 1));
  boost::system::error_code ec;
  BOOST_TEST(a.send_to(parts, b.local_endpoint(), ec) == 0u);
  BOOST_TEST((ec == boost::asio::error::invalid_argument));
  parts.resize(64);
  BOOST_TEST(a.send_to(parts, b.local_endpoint()) == 64u);
  std::array<char, 100> buf;
  udp::endpoint from;
  BOOST_TEST(b.receive_from(boost::asio::buffer(buf), from) == 64u);
}

COOP_TEST_CASE(timeout_and_cancel_interrupt_receive_from_and_receive) {
  udp_socket s(loopback());
  std::array<char, 16> buf;
  udp::endpoint from;
  expect_timeout([&] { s.receive_from(boost::asio::buffer(buf), from); });
  expect_cancel([&] { s.receive_from(boost::asio::buffer(buf), from); });
  udp_socket peer(loopback());
  s.connect(peer.local_endpoint());
  expect_timeout([&] { s.receive(boost::asio::buffer(buf)); });
  expect_cancel([&] { s.receive(boost::asio::buffer(buf)); });
  // Still usable: nothing was lost or left pending.
  peer.send_to(boost::asio::buffer("after", 5), s.local_endpoint());
  BOOST_TEST(s.receive(boost::asio::buffer(buf)) == 5u);
}

COOP_TEST_CASE(an_interruption_already_due_fails_every_call_at_entry) {
  // Sends never wait on loopback (the kernel delivers or drops at once), so
  // the entry check is what a timeout or cancel can show for them.
  udp_socket a(loopback()), b(loopback());
  a.send_to(boost::asio::buffer("waiting", 7), b.local_endpoint()); // a receive could complete at once
  std::array<char, 16> buf;
  udp::endpoint from;
  {
    coop::timeout t(1ms);
    boost::system::error_code expired;
    coop::sleep_for(5ms, expired); // ends when the timeout expires; it stays due
    BOOST_CHECK_THROW(a.send_to(boost::asio::buffer("x", 1), b.local_endpoint()), coop::timeout_error);
    BOOST_CHECK_THROW(b.receive_from(boost::asio::buffer(buf), from), coop::timeout_error);
    boost::system::error_code ec;
    a.connect(b.local_endpoint()); // never waits, so never interrupted
    BOOST_TEST(a.send(boost::asio::buffer("x", 1), ec) == 0u);
    BOOST_TEST((ec == coop::errc::timed_out));
  }
  auto t = coop::spawn([&] {
    boost::system::error_code ec;
    coop::sleep_for(10s, ec); // cancelled here
    std::array<boost::system::error_code, 4> ecs;
    a.send(boost::asio::buffer("x", 1), ecs[0]);
    a.send_to(boost::asio::buffer("x", 1), b.local_endpoint(), ecs[1]);
    b.receive_from(boost::asio::buffer(buf), from, ecs[2]);
    b.receive(boost::asio::buffer(buf), ecs[3]);
    return ecs;
  });
  coop::this_fiber::yield();
  t.cancel();
  for (auto& ec : t.get())
    BOOST_TEST((ec == coop::errc::cancelled));
  BOOST_TEST(b.receive_from(boost::asio::buffer(buf), from) == 7u); // nothing was consumed or sent
  BOOST_TEST((from == a.local_endpoint()));
}

COOP_TEST_CASE(a_shield_keeps_a_receive_going_through_a_cancel) {
  udp_socket a(loopback()), b(loopback());
  bool waiting = false;
  std::string in_shield;
  auto t = coop::spawn([&] {
    std::array<char, 16> buf;
    udp::endpoint from;
    {
      coop::shield s;
      waiting = true;
      std::size_t n = b.receive_from(boost::asio::buffer(buf), from);
      in_shield.assign(buf.data(), n);
    }
    boost::system::error_code ec;
    b.receive_from(boost::asio::buffer(buf), from, ec);
    return ec;
  });
  test_support::yield_until([&] { return waiting; });
  t.cancel();
  coop::this_fiber::yield();
  a.send_to(boost::asio::buffer("late", 4), b.local_endpoint());
  BOOST_TEST((t.get() == coop::errc::cancelled)); // deferred to the first call after the shield
  BOOST_TEST(in_shield == "late");
}

COOP_TEST_CASE(closing_the_socket_ends_a_waiting_receive) {
  udp_socket s(loopback());
  boost::system::error_code ec;
  auto t = coop::spawn([&] {
    std::array<char, 16> buf;
    udp::endpoint from;
    s.receive_from(boost::asio::buffer(buf), from, ec);
  });
  coop::this_fiber::yield();
  s.close();
  t.join();
  BOOST_TEST((ec == boost::asio::error::operation_aborted));
}

COOP_TEST_CASE(a_connected_socket_hears_that_its_peer_is_gone) {
  udp_socket closed(loopback());
  auto gone = closed.local_endpoint();
  closed.close();
  udp_socket s(loopback());
  s.connect(gone);
  s.send(boost::asio::buffer("anyone?", 7)); // ICMP port unreachable comes back
  std::array<char, 16> buf;
  boost::system::error_code ec;
  coop::timeout t(5s);
  s.receive(boost::asio::buffer(buf), ec);
  BOOST_TEST((ec == boost::asio::error::connection_refused));
}

COOP_MT_TEST_CASE(one_socket_per_runtime_thread_all_talking_to_one_server) {
  auto [server, where] = echo_server(); // thread 0
  std::vector<coop::task<int>> clients;
  for (unsigned i = 0; i < 2 * rt.size(); ++i)
    clients.push_back(rt.spawn_on(i % rt.size(), [where = where, i] {
      coop::timeout guard(10s);
      udp_socket s(loopback()); // belongs to this thread
      const bool connected = i % 2 == 1;
      if (connected) s.connect(where);
      int ok = 0;
      std::array<char, 128> buf;
      for (int k = 0; k < 20; ++k) { // one datagram in flight: loopback drops none
        std::string msg = "client " + std::to_string(i) + " datagram " + std::to_string(k);
        std::size_t n = 0;
        if (connected) {
          s.send(boost::asio::buffer(msg));
          n = s.receive(boost::asio::buffer(buf));
        } else {
          s.send_to(boost::asio::buffer(msg), where);
          udp::endpoint from;
          n = s.receive_from(boost::asio::buffer(buf), from);
          if (from != where) continue;
        }
        ok += std::string(buf.data(), n) == msg;
      }
      return ok;
    }));
  for (auto& c : clients)
    BOOST_TEST(c.get() == 20);
  server.cancel();
  server.join();
}

COOP_MT_TEST_CASE(every_runtime_thread_runs_its_own_udp_echo) {
  std::vector<coop::task<bool>> threads;
  for (unsigned i = 0; i < rt.size(); ++i)
    threads.push_back(rt.spawn_on(i, [i] {
      coop::timeout guard(10s);
      auto [server, where] = echo_server();
      udp_socket c(loopback());
      std::string msg(1000, static_cast<char>('a' + i));
      c.send_to(boost::asio::buffer(msg), where);
      std::array<char, 2000> buf;
      udp::endpoint from;
      std::size_t n = c.receive_from(boost::asio::buffer(buf), from);
      server.cancel();
      server.join();
      return std::string(buf.data(), n) == msg && from == where;
    }));
  for (auto& t : threads)
    BOOST_TEST(t.get());
}

BOOST_AUTO_TEST_CASE(the_same_calls_work_on_a_plain_thread_in_a_blocking_scope) {
  std::string got, got_connected;
  std::atomic<bool> finished{false};
  coop::run([&] {
    auto [server, where] = echo_server();
    std::thread t([&, where = where] {
      coop::blocking_scope blocking;
      udp_socket s(loopback());
      s.send_to(boost::asio::buffer("thread", 6), where);
      std::array<char, 16> buf;
      udp::endpoint from;
      std::size_t n = s.receive_from(boost::asio::buffer(buf), from);
      if (from == where) got.assign(buf.data(), n);
      s.connect(where);
      s.send(boost::asio::buffer("again", 5));
      n = s.receive(boost::asio::buffer(buf));
      got_connected.assign(buf.data(), n);
      finished = true;
    });
    test_support::yield_until([&] { return finished.load(); });
    t.join();
    server.cancel();
    server.join();
  });
  BOOST_TEST(got == "thread");
  BOOST_TEST(got_connected == "again");
}

BOOST_AUTO_TEST_CASE(a_timeout_bounds_blocking_calls_on_a_plain_thread) {
  coop::blocking_scope blocking;
  udp_socket a(loopback()), b(loopback());
  std::array<char, 16> buf;
  udp::endpoint from;
  {
    coop::timeout t(30ms);
    BOOST_CHECK_THROW(b.receive_from(boost::asio::buffer(buf), from), coop::timeout_error);
  }
  b.connect(a.local_endpoint());
  {
    coop::timeout t(30ms);
    boost::system::error_code ec;
    b.receive(boost::asio::buffer(buf), ec);
    BOOST_TEST((ec == coop::errc::timed_out));
  }
  {
    coop::timeout t(1ms);
    std::this_thread::sleep_for(5ms);
    BOOST_CHECK_THROW(a.send_to(boost::asio::buffer("x", 1), b.local_endpoint()), coop::timeout_error); // due at entry
  }
  {
    coop::timeout generous(5s); // a deadline that does not expire changes nothing
    a.send_to(boost::asio::buffer("in time", 7), b.local_endpoint());
    BOOST_TEST(b.receive(boost::asio::buffer(buf)) == 7u);
  }
  // Without a timeout: blocking in the kernel, truncation reported the same way.
  std::string big(40, 'y');
  a.send_to(boost::asio::buffer(big), b.local_endpoint());
  boost::system::error_code ec;
  BOOST_TEST(b.receive(boost::asio::buffer(buf), ec) == buf.size());
  BOOST_TEST((ec == boost::asio::error::message_size));
  {
    coop::timeout generous(5s); // and with one (poll first, then receive)
    a.send_to(boost::asio::buffer(big), b.local_endpoint());
    BOOST_TEST(b.receive_from(boost::asio::buffer(buf), from, ec) == buf.size());
    BOOST_TEST((ec == boost::asio::error::message_size));
  }
}

BOOST_AUTO_TEST_CASE(udp_sockets_outside_a_runtime_or_on_another_thread_are_a_usage_error) {
  BOOST_CHECK_THROW(udp_socket s(loopback()), coop::usage_error);
  coop::runtime rt(1);
  auto foreign = rt.spawn_on(0, [] { return std::make_shared<udp_socket>(loopback()); }).get();
  coop::run([&] {
    std::array<char, 4> buf;
    udp::endpoint from;
    BOOST_CHECK_THROW(foreign->receive_from(boost::asio::buffer(buf), from), coop::usage_error);
    BOOST_CHECK_THROW(foreign->send_to(boost::asio::buffer(buf), from), coop::usage_error);
  });
  rt.spawn_on(0, [foreign]() mutable { foreign.reset(); }).get();
}
