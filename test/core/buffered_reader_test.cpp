#define BOOST_TEST_MODULE coop buffered reader
// coop::net::buffered_reader: each call, the line bound, end of stream in the
// middle of a line, interruptions, fairness, and the streams it reads.
#include "support.hpp"

#include <boost/asio/local/connect_pair.hpp>

#include <array>
#include <atomic>
#include <string>
#include <thread>

namespace {

using test_support::connected_pair;
using test_support::expect_cancel;
using test_support::expect_timeout;
using error_code = boost::system::error_code;
using tcp_reader = coop::net::buffered_reader<coop::net::tcp_stream>;

/// Sends `text` from `to`, then lets the reading fiber see it.
void send(coop::net::tcp_stream& to, std::string_view text) {
  to.write_all(boost::asio::buffer(text));
}

} // namespace

COOP_TEST_CASE(read_line_drops_the_line_end_and_read_until_keeps_the_delimiter) {
  auto [a, b] = connected_pair();
  tcp_reader in(b);
  send(a, "one\r\ntwo\nthree");
  BOOST_TEST(in.read_line() == "one");
  BOOST_TEST(in.read_line() == "two");
  BOOST_TEST(in.buffered() == 5u); // "three": no line end yet
  send(a, "\r");
  auto more = coop::spawn([&a = a] {
    coop::sleep_for(5ms);
    send(a, "\nfour;;five;;\n\n"); // the line end arrives split
  });
  BOOST_TEST(in.read_line() == "three");
  BOOST_TEST(in.read_until(";;") == "four;;");
  BOOST_TEST(in.read_until(";;") == "five;;");
  BOOST_TEST(in.read_line() == "");
  BOOST_TEST(in.read_line() == "");
  BOOST_TEST(in.buffered() == 0u);
  more.join();
  BOOST_TEST(&in.stream() == &b);
}

COOP_TEST_CASE(peek_waits_for_n_bytes_and_leaves_them_buffered) {
  auto [a, b] = connected_pair();
  tcp_reader in(b, 16);
  send(a, "ab");
  auto rest = coop::spawn([&a = a] {
    coop::sleep_for(5ms);
    send(a, "cdef");
  });
  BOOST_TEST(in.peek(4) == "abcd");
  BOOST_TEST(in.peek(2) == "ab");
  BOOST_TEST(in.consume(1) == 1u);
  std::array<char, 3> three{};
  BOOST_TEST(in.read_some(boost::asio::buffer(three)) == 3u);
  BOOST_TEST(std::string(three.data(), 3) == "bcd");
  rest.join();
  error_code ec;
  BOOST_TEST(in.peek(17, ec).empty()); // more than max_line can ever hold
  BOOST_TEST((ec == boost::asio::error::invalid_argument));
  BOOST_TEST(in.peek(2) == "ef");
  BOOST_TEST(in.consume(10) == 2u); // only what is buffered
  BOOST_TEST(in.buffered() == 0u);
}

COOP_TEST_CASE(read_some_serves_the_buffer_first_then_reads_the_stream) {
  auto [a, b] = connected_pair();
  tcp_reader in(b);
  send(a, "head\nbody");
  BOOST_TEST(in.read_line() == "head");
  std::array<char, 16> small{};
  BOOST_TEST(in.read_some(boost::asio::buffer(small)) == 4u); // only what was buffered
  BOOST_TEST(std::string(small.data(), 4) == "body");
  // Empty: a large read goes straight into the caller's buffer.
  std::string big(100'000, 'x'), back(big.size(), '\0');
  auto writer = coop::spawn([&a = a, &big] { a.write_all(boost::asio::buffer(big)); });
  std::size_t got = 0;
  while (got < back.size())
    got += in.read_some(boost::asio::buffer(back.data() + got, back.size() - got));
  writer.join();
  BOOST_TEST(in.buffered() == 0u);
  BOOST_TEST((back == big));
  BOOST_TEST(in.read_some(boost::asio::buffer(small.data(), 0)) == 0u);
}

COOP_TEST_CASE(read_exact_takes_the_buffered_bytes_then_the_rest) {
  auto [a, b] = connected_pair();
  tcp_reader in(b);
  send(a, "len 10\n0123");
  BOOST_TEST(in.read_line() == "len 10");
  auto rest = coop::spawn([&a = a] {
    coop::sleep_for(5ms);
    send(a, "456789tail");
  });
  std::array<char, 10> body{};
  BOOST_TEST(in.read_exact(boost::asio::buffer(body)) == 10u);
  BOOST_TEST(std::string(body.data(), body.size()) == "0123456789");
  rest.join();
  BOOST_TEST(in.peek(4) == "tail");
  a.shutdown_send();
  std::array<char, 8> more{};
  error_code ec;
  BOOST_TEST(in.read_exact(boost::asio::buffer(more), ec) == 4u); // "tail", then the end
  BOOST_TEST((ec == boost::asio::error::eof));
  BOOST_CHECK_THROW(in.read_exact(boost::asio::buffer(more)), boost::system::system_error);
}

COOP_TEST_CASE(a_line_longer_than_max_line_fails_without_buffering_more) {
  auto [a, b] = connected_pair();
  tcp_reader in(b, 100);
  BOOST_TEST(in.max_line() == 100u);
  send(a, std::string(99, 'y') + "\n"); // 100 bytes with the line end: the longest allowed
  BOOST_TEST(in.read_line().size() == 99u);
  // A peer that sends an endless line: the reader stops at max_line bytes.
  std::atomic<bool> stop{false};
  auto endless = coop::spawn([&a = a, &stop] {
    std::string chunk(4096, 'z');
    error_code ec;
    for (int i = 0; i < 256 && !stop && !ec; ++i) // 1 MiB at most
      a.write_all(boost::asio::buffer(chunk), ec);
  });
  error_code ec;
  BOOST_TEST(in.read_line(ec).empty());
  BOOST_TEST((ec == boost::asio::error::not_found));
  BOOST_TEST(in.buffered() == 100u);
  BOOST_CHECK_THROW(in.read_until("\n"), boost::system::system_error); // still too long
  BOOST_TEST(in.buffered() == 100u);
  stop = true;
  b.close();
  endless.join();
}

COOP_TEST_CASE(the_end_of_the_stream_in_the_middle_of_a_line_keeps_the_partial_line) {
  auto [a, b] = connected_pair();
  tcp_reader in(b);
  send(a, "whole\npartial");
  a.shutdown_send();
  BOOST_TEST(in.read_line() == "whole");
  error_code ec;
  BOOST_TEST(in.read_line(ec).empty());
  BOOST_TEST((ec == boost::asio::error::eof));
  BOOST_TEST(in.buffered() == 7u);
  BOOST_TEST(in.peek(7) == "partial");
  std::array<char, 16> buf{};
  BOOST_TEST(in.read_some(boost::asio::buffer(buf)) == 7u);
  in.read_some(boost::asio::buffer(buf), ec);
  BOOST_TEST((ec == boost::asio::error::eof));
  BOOST_CHECK_THROW(in.read_line(), boost::system::system_error);
}

COOP_TEST_CASE(a_timeout_or_cancel_loses_nothing_already_received) {
  auto [a, b] = connected_pair();
  tcp_reader in(b);
  send(a, "par");
  expect_timeout([&in = in] { (void)in.read_line(); });
  expect_cancel([&in = in] { (void)in.read_line(); });
  expect_timeout([&in = in] { (void)in.peek(4); });
  BOOST_TEST(in.buffered() == 3u);
  send(a, "tial\n");
  BOOST_TEST(in.read_line() == "partial");
  // An interruption that is due fails the call at entry, even with a line buffered.
  send(a, "ready\n");
  BOOST_TEST(in.peek(6) == "ready\n");
  {
    coop::timeout t(1ms);
    error_code slept;
    coop::sleep_for(5ms, slept);
    BOOST_CHECK_THROW((void)in.read_line(), coop::timeout_error);
  }
  BOOST_TEST(in.read_line() == "ready");
}

COOP_TEST_CASE(lines_already_buffered_still_let_the_other_fibers_run) {
  // A peer that is always ahead: every read_line is served from the buffer,
  // without a system call or a yield, yet the other fibers of the thread run
  // once every detail::direct_io_budget (16) calls.
  auto [a, b] = connected_pair();
  constexpr int lines = 1600; // 9,600 bytes: fit the socket buffers
  std::string pipelined;
  for (int i = 0; i < lines; ++i)
    pipelined += "PING\r\n";
  send(a, pipelined);
  tcp_reader in(b);
  BOOST_TEST(in.peek(pipelined.size()).size() == pipelined.size()); // all of it buffered
  test_support::turn_counter ticker;                                // another fiber of this thread, counting its turns
  long before = ticker.turns();
  for (int i = 0; i < lines; ++i)
    BOOST_TEST_REQUIRE(in.read_line() == "PING");
  long during = ticker.turns() - before;
  BOOST_TEST(during >= lines / 32, "the other fiber ran " << during << " times during " << lines << " lines");
  BOOST_TEST(during <= lines / 4, "the reader yielded " << during << " times in " << lines << " buffered lines");
}

COOP_TEST_CASE(it_reads_a_unix_stream_too) {
  boost::asio::local::stream_protocol::socket s1(coop::this_thread_io()), s2(coop::this_thread_io());
  boost::asio::local::connect_pair(s1, s2);
  coop::net::unix_stream a(std::move(s1)), b(std::move(s2));
  coop::net::buffered_reader in(b);
  a.write_all(boost::asio::buffer(std::string_view("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
  BOOST_TEST(in.read_line() == "GET / HTTP/1.1");
  BOOST_TEST(in.read_line() == "Host: x");
  BOOST_TEST(in.read_line() == "");
}

BOOST_AUTO_TEST_CASE(it_reads_on_a_plain_thread_in_a_blocking_scope) {
  std::string got;
  error_code late;
  std::atomic<bool> finished{false};
  coop::run([&] {
    coop::net::tcp_listener l(test_support::loopback());
    auto port = l.local_endpoint().port();
    std::thread t([&, port] {
      coop::blocking_scope blocking;
      auto s = coop::net::connect("127.0.0.1", port);
      coop::net::buffered_reader in(s);
      got = std::string(in.read_line());
      coop::timeout limit(20ms);
      (void)in.read_line(late); // nothing more comes: the timeout bounds the wait
      finished = true;
    });
    auto c = l.accept();
    c.write_all(boost::asio::buffer(std::string_view("hello\r\n")));
    while (!finished)
      coop::sleep_for(1ms);
    t.join();
  });
  BOOST_TEST(got == "hello");
  BOOST_TEST((late == coop::errc::timed_out));
}
