#define BOOST_TEST_MODULE coop_tls
#include "support.hpp"

#include <coop/net/tls.hpp>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#ifndef COOP_OPENSSL_EXECUTABLE
#define COOP_OPENSSL_EXECUTABLE "openssl"
#endif

namespace {

namespace ssl = coop::net::ssl;
using boost::system::error_code;

/// A self-signed certificate for "localhost" and 127.0.0.1, made by the
/// openssl command line tool in a fresh temporary directory for this run.
struct test_certificate {
  std::filesystem::path dir;
  std::string cert, key;

  test_certificate() {
    std::string pattern = (std::filesystem::temp_directory_path() / "coop-tls-XXXXXX").string();
    BOOST_TEST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
    cert = (dir / "cert.pem").string();
    key = (dir / "key.pem").string();
    std::string cmd = std::string(COOP_OPENSSL_EXECUTABLE) +
                      " req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost"
                      " -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 1 -keyout '" +
                      key + "' -out '" + cert + "' >/dev/null 2>&1";
    BOOST_TEST_REQUIRE(std::system(cmd.c_str()) == 0, "could not run: " << cmd);
  }
  ~test_certificate() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
};

test_certificate* the_certificate = nullptr;

struct certificate_fixture {
  test_certificate certificate;
  certificate_fixture() { the_certificate = &certificate; }
  ~certificate_fixture() { the_certificate = nullptr; }
};

const test_certificate& certificate() {
  BOOST_TEST_REQUIRE(the_certificate != nullptr);
  return *the_certificate;
}

ssl::context server_context() {
  return coop::net::tls_server_context(certificate().cert, certificate().key);
}
/// Trusts exactly the test certificate.
ssl::context client_context() {
  return coop::net::tls_client_context(certificate().cert);
}

/// The OpenSSL reason of a handshake failure (0 for other errors).
int ssl_reason(const error_code& ec) {
  if (ec.category() != boost::asio::error::get_ssl_category()) return 0;
  return ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return s;
}

/// Echoes over TLS until the peer's close_notify, then answers it.
void echo(coop::net::tls_stream& s) {
  std::array<char, 4096> buf;
  error_code ec;
  for (;;) {
    std::size_t n = s.read_some(boost::asio::buffer(buf), ec);
    if (ec == boost::asio::error::eof) {
      s.shutdown(ec);
      return;
    }
    if (ec) return;
    s.write_all(boost::asio::buffer(buf.data(), n), ec);
    if (ec) return;
  }
}

/// A TLS echo server on the calling runtime thread. `sni` receives the
/// server name the last client sent ("" for none). Stops (cancelled and
/// joined) at the end of its scope, before the context goes away.
struct echo_server {
  std::uint16_t port;
  std::shared_ptr<std::string> sni = std::make_shared<std::string>();
  coop::task<void> task;

  explicit echo_server(ssl::context& ctx) {
    auto listener = std::make_shared<coop::net::tcp_listener>(test_support::loopback());
    port = listener->local_endpoint().port();
    task = coop::spawn([listener, &ctx, sni = sni] {
      coop::task_group connections;
      for (;;) {
        connections.spawn([tcp = listener->accept(), &ctx, sni]() mutable {
          error_code ec;
          auto s = coop::net::tls_accept(std::move(tcp), ctx, ec);
          if (ec) return;
          const char* name = SSL_get_servername(s.native_handle(), TLSEXT_NAMETYPE_host_name);
          *sni = name ? name : "";
          echo(s);
        });
      }
    });
  }
  echo_server(const echo_server&) = delete;
  ~echo_server() {
    task.cancel();
    task.join();
  }
};

/// A TCP peer that accepts one connection and never speaks TLS: it reads
/// what arrives (counting bytes) and holds the connection until its scope ends.
struct silent_peer {
  std::uint16_t port;
  std::shared_ptr<std::atomic<std::size_t>> received = std::make_shared<std::atomic<std::size_t>>(0);
  coop::task<void> task;

  silent_peer() {
    auto listener = std::make_shared<coop::net::tcp_listener>(test_support::loopback());
    port = listener->local_endpoint().port();
    task = coop::spawn([listener, received = received] {
      auto c = listener->accept();
      std::array<char, 4096> buf;
      error_code ec;
      for (;;) {
        std::size_t n = c.read_some(boost::asio::buffer(buf), ec);
        if (ec) break;
        *received += n;
      }
      if (ec != coop::errc::cancelled) coop::sleep_for(std::chrono::hours(1)); // hold it open
    });
  }
  silent_peer(const silent_peer&) = delete;
  ~silent_peer() {
    task.cancel();
    task.join();
  }
};

/// A TLS client and server connected on the calling runtime thread.
struct tls_pair {
  coop::net::tls_stream client;
  coop::net::tls_stream server;
};

tls_pair connected_tls_pair(ssl::context& server_ctx, ssl::context& client_ctx) {
  coop::net::tcp_listener l(test_support::loopback());
  auto port = l.local_endpoint().port();
  auto c = coop::spawn([port, &client_ctx] { return coop::net::tls_connect("127.0.0.1", port, client_ctx); });
  auto s = coop::net::tls_accept(l.accept(), server_ctx);
  return {c.get(), std::move(s)};
}

} // namespace

BOOST_TEST_GLOBAL_FIXTURE(certificate_fixture);

COOP_TEST_CASE(echo_round_trip_between_fibers) {
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  echo_server server(server_ctx);
  auto s = coop::net::tls_connect("localhost", server.port, client_ctx);
  BOOST_TEST(s.remote_endpoint().port() == server.port);

  s.write_all(boost::asio::buffer(std::string("one\ntwo\n")));
  std::string line;
  std::size_t n = s.read_until(line, "\n");
  BOOST_TEST(line.substr(0, n) == "one\n");
  line.erase(0, n);
  n = s.read_until(line, "\n");
  BOOST_TEST(line.substr(0, n) == "two\n");
  BOOST_TEST(*server.sni == "localhost"); // SNI went out with the name

  for (std::size_t size : {1u, 16384u, 16385u, 1u << 20}) {
    std::string msg = pattern(size), back(size, '\0');
    auto writer = coop::spawn([&] { s.write_all(boost::asio::buffer(msg)); }); // full duplex
    BOOST_TEST(s.read_exact(boost::asio::buffer(back)) == size);
    writer.join();
    BOOST_TEST((back == msg));
  }

  s.shutdown(); // the server reads eof and answers with its close_notify
  std::array<char, 1> b;
  error_code ec;
  s.read_some(boost::asio::buffer(b), ec);
  BOOST_TEST((ec == boost::asio::error::eof));
}

COOP_TEST_CASE(an_ip_address_is_verified_against_the_certificate_and_sends_no_sni) {
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  echo_server server(server_ctx);
  *server.sni = "unset";
  auto s = coop::net::tls_connect("127.0.0.1", server.port, client_ctx); // the certificate has IP:127.0.0.1
  s.write_all(boost::asio::buffer("x", 1));
  std::array<char, 1> b;
  s.read_exact(boost::asio::buffer(b));
  BOOST_TEST(*server.sni == "");
}

COOP_TEST_CASE(host_name_verification_rejects_a_name_the_certificate_lacks) {
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  echo_server server(server_ctx);
  const coop::net::tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), server.port);

  error_code ec;
  coop::net::tls_connect(ep, "not-localhost", client_ctx, ec);
  BOOST_TEST(ssl_reason(ec) == SSL_R_CERTIFICATE_VERIFY_FAILED, ec.message());
  BOOST_CHECK_THROW(coop::net::tls_connect(ep, "wronghost", client_ctx), boost::system::system_error);

  // The same endpoint with the certificate's name passes.
  auto s = coop::net::tls_connect(ep, "localhost", client_ctx);
  test_support::yield_until([&] { return *server.sni == "localhost"; });
}

COOP_TEST_CASE(the_system_trust_store_rejects_a_self_signed_certificate) {
  auto server_ctx = server_context();
  auto system_ctx = coop::net::tls_client_context();
  echo_server server(server_ctx);
  error_code ec;
  coop::net::tls_connect("localhost", server.port, system_ctx, ec);
  BOOST_TEST(ssl_reason(ec) == SSL_R_CERTIFICATE_VERIFY_FAILED, ec.message());

  // A context that does not verify peers checks no name either.
  ssl::context trusting(ssl::context::tls_client);
  trusting.set_verify_mode(ssl::verify_none);
  const coop::net::tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), server.port);
  auto s = coop::net::tls_connect(ep, "wronghost", trusting, ec);
  BOOST_TEST(!ec, ec.message());
}

COOP_TEST_CASE(client_handshake_times_out_on_a_peer_that_never_speaks_tls) {
  auto client_ctx = client_context();
  silent_peer peer;
  auto took = test_support::elapsed([&] {
    coop::timeout t(50ms);
    BOOST_CHECK_THROW(coop::net::tls_connect("127.0.0.1", peer.port, client_ctx), coop::timeout_error);
  });
  BOOST_TEST(took >= 50ms);
  test_support::yield_until([&] { return *peer.received > 0; }); // the ClientHello went out

  silent_peer peer2;
  error_code ec;
  {
    coop::timeout t(20ms);
    coop::net::tls_connect("localhost", peer2.port, client_ctx, ec);
  }
  BOOST_TEST((ec == coop::errc::timed_out));
}

COOP_TEST_CASE(client_handshake_is_cancellable) {
  auto client_ctx = client_context();
  silent_peer peer;
  auto t = coop::spawn([&] { coop::net::tls_connect("127.0.0.1", peer.port, client_ctx); });
  test_support::yield_until([&] { return *peer.received > 0; }); // now waiting for the ServerHello
  t.cancel();
  BOOST_CHECK_THROW(t.get(), coop::cancelled);
}

COOP_TEST_CASE(server_handshake_times_out_and_is_cancellable) {
  auto server_ctx = server_context();
  coop::net::tcp_listener l(test_support::loopback());
  auto port = l.local_endpoint().port();

  auto mute = coop::net::connect("127.0.0.1", port); // connects, never sends a ClientHello
  auto took = test_support::elapsed([&] {
    coop::timeout t(50ms);
    BOOST_CHECK_THROW(coop::net::tls_accept(l.accept(), server_ctx), coop::timeout_error);
  });
  BOOST_TEST(took >= 50ms);

  auto mute2 = coop::net::connect("127.0.0.1", port);
  std::atomic<bool> accepted{false};
  auto t = coop::spawn([&] {
    auto tcp = l.accept();
    accepted = true;
    error_code ec;
    coop::net::tls_accept(std::move(tcp), server_ctx, ec);
    return ec;
  });
  test_support::yield_until([&] { return accepted.load(); });
  coop::this_fiber::yield();
  t.cancel();
  BOOST_TEST((t.get() == coop::errc::cancelled));
}

COOP_TEST_CASE(an_interrupted_read_loses_nothing) {
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  tls_pair pair = connected_tls_pair(server_ctx, client_ctx);
  auto& client = pair.client;
  auto& server = pair.server;
  std::array<char, 16> buf;

  // Timeout while waiting.
  auto took = test_support::elapsed([&] {
    coop::timeout t(50ms);
    BOOST_CHECK_THROW(client.read_some(boost::asio::buffer(buf)), coop::timeout_error);
  });
  BOOST_TEST(took >= 50ms);

  // Cancel from another fiber while waiting.
  std::atomic<bool> reading{false};
  auto reader = coop::spawn([&] {
    reading = true;
    error_code ec;
    client.read_some(boost::asio::buffer(buf), ec);
    return ec;
  });
  test_support::yield_until([&] { return reading.load(); });
  coop::this_fiber::yield();
  reader.cancel();
  BOOST_TEST((reader.get() == coop::errc::cancelled));

  // An interruption already due fails the call even with data waiting...
  server.write_all(boost::asio::buffer("abc", 3));
  {
    coop::timeout t(0ms);
    error_code ec;
    client.read_some(boost::asio::buffer(buf), ec);
    BOOST_TEST((ec == coop::errc::timed_out));
  }
  // ...and the data is still there for the next read; the session is intact.
  client.read_exact(boost::asio::buffer(buf.data(), 3));
  BOOST_TEST(std::string(buf.data(), 3) == "abc");
  client.write_all(boost::asio::buffer("back", 4));
  server.read_exact(boost::asio::buffer(buf.data(), 4));
  BOOST_TEST(std::string(buf.data(), 4) == "back");
}

COOP_TEST_CASE(a_key_update_read_while_a_write_is_parked_keeps_both_directions_intact) {
  // Full duplex under pressure: the server's writer parks with records still
  // queued (the client reads nothing yet) when the client asks for a key
  // update (TLS 1.3 KeyUpdate, update_requested). The server's reader must
  // answer it while those records wait, and both directions must stay in
  // order. (OpenSSL over a socket BIO fails this: a handshake message cannot
  // be written while an application record is half sent.)
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  tls_pair pair = connected_tls_pair(server_ctx, client_ctx);
  auto& client = pair.client;
  auto& server = pair.server;
  BOOST_TEST_REQUIRE(SSL_version(client.native_handle()) == TLS1_3_VERSION);

  const std::string big = pattern(16u << 20); // more than loopback's socket buffers hold
  std::size_t server_wrote = 0;
  auto writer = coop::spawn([&] { server_wrote = server.write_all(boost::asio::buffer(big)); });
  test_support::yield_until([&] { return server_wrote == 0 && test_support::unsent_bytes(server.next_layer()) > 0; });
  coop::this_fiber::yield();
  BOOST_TEST(server_wrote == 0); // parked, not finished

  BOOST_TEST_REQUIRE(SSL_key_update(client.native_handle(), SSL_KEY_UPDATE_REQUESTED) == 1);
  client.write_all(boost::asio::buffer(std::string_view("ping\n"))); // the KeyUpdate goes out first
  std::string line;
  auto reader = coop::spawn([&] {
    server.read_until(line, "\n"); // reads the KeyUpdate and queues the answer behind the parked writer
  });
  reader.get();
  BOOST_TEST(line == "ping\n");

  std::string back(big.size(), '\0');
  client.read_exact(boost::asio::buffer(back)); // the old-key records, the answer, then the rest
  writer.get();
  BOOST_TEST(server_wrote == big.size());
  BOOST_TEST((back == big));

  server.write_all(boost::asio::buffer(std::string_view("after\n")));
  std::string after;
  client.read_until(after, "\n");
  BOOST_TEST(after == "after\n");
  client.write_all(boost::asio::buffer(std::string_view("again\n")));
  line.clear();
  server.read_until(line, "\n");
  BOOST_TEST(line == "again\n");
}

COOP_TEST_CASE(a_write_to_a_peer_that_does_not_read_times_out) {
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  tls_pair pair = connected_tls_pair(server_ctx, client_ctx);
  auto& client = pair.client;      // the server side never reads
  std::string big(64u << 20, 'w'); // more than loopback's socket buffers hold
  coop::timeout t(100ms);
  error_code ec;
  std::size_t n = client.write_all(boost::asio::buffer(big), ec);
  BOOST_TEST((ec == coop::errc::timed_out));
  BOOST_TEST(n < big.size());
}

COOP_TEST_CASE(shutdown_close_notify_and_truncation) {
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  std::array<char, 16> buf;
  error_code ec;
  {
    // Clean: the client's close_notify is the server's eof; its answer ends the client's shutdown.
    tls_pair pair = connected_tls_pair(server_ctx, client_ctx);
    auto& client = pair.client;
    auto& server = pair.server;
    auto closer = coop::spawn([&c = client] { c.shutdown(); });
    server.read_some(boost::asio::buffer(buf), ec);
    BOOST_TEST((ec == boost::asio::error::eof));
    server.shutdown(); // close_notify already received: returns at once
    closer.get();
  }
  {
    // The peer closes TCP without close_notify: a read reports truncation.
    tls_pair pair = connected_tls_pair(server_ctx, client_ctx);
    auto& client = pair.client;
    auto& server = pair.server;
    server.close();
    client.read_some(boost::asio::buffer(buf), ec);
    BOOST_TEST((ec == ssl::error::stream_truncated), ec.message());
  }
  {
    // A peer that answers close_notify by closing TCP: shutdown reports truncation.
    tls_pair pair = connected_tls_pair(server_ctx, client_ctx);
    auto& client = pair.client;
    auto& server = pair.server;
    auto closer = coop::spawn([&s = server, &buf] {
      error_code e;
      s.read_some(boost::asio::buffer(buf), e); // eof: the close_notify
      s.close();
      return e;
    });
    client.shutdown(ec);
    BOOST_TEST((ec == ssl::error::stream_truncated), ec.message());
    BOOST_TEST((closer.get() == boost::asio::error::eof));
  }
  {
    // A peer that never answers: bound the shutdown with a timeout.
    tls_pair pair = connected_tls_pair(server_ctx, client_ctx);
    auto& client = pair.client; // the server side never reads
    coop::timeout t(30ms);
    client.shutdown(ec);
    BOOST_TEST((ec == coop::errc::timed_out));
  }
}

COOP_TEST_CASE(a_shield_lets_a_cancelled_fiber_say_goodbye) {
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  tls_pair pair = connected_tls_pair(server_ctx, client_ctx);
  auto& client = pair.client;
  auto& server = pair.server;
  std::atomic<bool> reading{false};
  auto t = coop::spawn([&] {
    std::array<char, 16> buf;
    reading = true;
    error_code ec;
    client.read_some(boost::asio::buffer(buf), ec);
    BOOST_TEST((ec == coop::errc::cancelled));
    coop::shield s;
    client.shutdown(); // waits for the server's answer despite the cancel
  });
  test_support::yield_until([&] { return reading.load(); });
  t.cancel();
  std::array<char, 16> buf;
  error_code ec;
  server.read_some(boost::asio::buffer(buf), ec);
  BOOST_TEST((ec == boost::asio::error::eof));
  server.shutdown();
  t.get(); // the shielded shutdown succeeded
}

COOP_TEST_CASE(composed_operations_and_beast_run_over_it_with_coop_yield) {
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  tls_pair pair = connected_tls_pair(server_ctx, client_ctx);
  auto& client = pair.client;
  auto& server = pair.server;
  namespace http = boost::beast::http;

  http::request<http::string_body> req{http::verb::post, "/echo", 11};
  req.set(http::field::host, "localhost");
  req.body() = "hello over tls";
  req.prepare_payload();
  auto sender = coop::spawn([&] { http::async_write(client, req, coop::yield); });
  boost::beast::flat_buffer buffer;
  http::request<http::string_body> got;
  http::async_read(server, buffer, got, coop::yield);
  sender.get();
  BOOST_TEST(got.target() == "/echo");
  BOOST_TEST(got.body() == "hello over tls");

  std::array<char, 4> four;
  boost::asio::async_write(server, boost::asio::buffer("abcd", 4), coop::yield);
  BOOST_TEST(boost::asio::async_read(client, boost::asio::buffer(four), coop::yield) == 4u);
  {
    coop::timeout t(30ms);
    BOOST_CHECK_THROW(boost::asio::async_read(client, boost::asio::buffer(four), coop::yield), coop::timeout_error);
  }
}

COOP_MT_TEST_CASE(clients_on_every_runtime_thread) {
  auto server_ctx = server_context();
  auto client_ctx = client_context(); // one context shared by every thread
  echo_server server(server_ctx);
  std::vector<coop::task<std::string>> clients;
  for (unsigned i = 0; i < 2 * rt.size(); ++i)
    clients.push_back(rt.spawn_on(i % rt.size(), [&, i] {
      auto s = coop::net::tls_connect("localhost", server.port, client_ctx);
      std::string msg = "client " + std::to_string(i) + "\n", line;
      s.write_all(boost::asio::buffer(msg));
      s.read_until(line, "\n");
      s.shutdown();
      return line;
    }));
  for (unsigned i = 0; i < clients.size(); ++i)
    BOOST_TEST(clients[i].get() == "client " + std::to_string(i) + "\n");
}

COOP_MT_TEST_CASE(servers_on_every_runtime_thread) {
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  // Checked here, not in the fibers: Boost.Test's log is not thread-safe.
  std::vector<coop::task<bool>> rounds;
  for (unsigned i = 0; i < rt.size(); ++i)
    rounds.push_back(rt.spawn_on(i, [&] {
      tls_pair pair = connected_tls_pair(server_ctx, client_ctx);
      auto& client = pair.client;
      auto& server = pair.server;
      auto echoer = coop::spawn([&s = server] { echo(s); });
      std::string msg = pattern(100000), back(msg.size(), '\0');
      auto writer = coop::spawn([&] { client.write_all(boost::asio::buffer(msg)); });
      client.read_exact(boost::asio::buffer(back));
      writer.get();
      client.shutdown();
      echoer.get();
      return back == msg;
    }));
  for (auto& r : rounds)
    BOOST_TEST(r.get());
}

COOP_TEST_CASE(read_until_with_the_delimiter_already_buffered_does_not_yield_every_call) {
  // As for tcp_stream (core.hot_path): lines already in the caller's buffer
  // come back without Asio's operation (which completed through the
  // scheduler's queue: a yield per line), one yield per direct-I/O budget.
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  auto [client, server] = connected_tls_pair(server_ctx, client_ctx);
  std::string buffer;
  test_support::check_buffered_read_until_yields_rarely(server, buffer);
  // And when the line is not there yet, it still reads it from the peer.
  client.write_all(boost::asio::buffer(std::string_view("over TLS\n")));
  std::size_t n = server.read_until(buffer, "\n");
  BOOST_TEST(buffer.substr(0, n) == "over TLS\n");
}

COOP_TEST_CASE(a_buffered_reader_reads_lines_over_tls) {
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  auto [client, server] = connected_tls_pair(server_ctx, client_ctx);
  coop::net::buffered_reader in(server);
  client.write_all(boost::asio::buffer(std::string_view("PING\r\nECHO hi\r\nPAR")));
  BOOST_TEST(in.read_line() == "PING");
  BOOST_TEST(in.read_until("\r\n") == "ECHO hi\r\n");
  test_support::expect_timeout([&in = in] { (void)in.read_line(); });
  client.write_all(boost::asio::buffer(std::string_view("TIAL\n")));
  BOOST_TEST(in.read_line() == "PARTIAL");
}

COOP_TEST_CASE(a_stream_of_another_runtime_thread_is_a_usage_error) {
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  coop::runtime rt(1);
  auto pair =
      rt.spawn_on(0, [&] { return std::make_shared<tls_pair>(connected_tls_pair(server_ctx, client_ctx)); }).get();
  std::array<char, 1> b;
  BOOST_CHECK_THROW(pair->client.read_some(boost::asio::buffer(b)), coop::usage_error);
  rt.spawn_on(0, [pair]() mutable { pair.reset(); }).get();
}

BOOST_AUTO_TEST_CASE(a_plain_thread_gets_a_usage_error) {
  auto client_ctx = client_context();
  BOOST_CHECK_THROW(coop::net::tls_connect("127.0.0.1", 1, client_ctx), coop::usage_error); // no runtime
  std::uint16_t port = 0;
  std::atomic<bool> done{false};
  std::atomic<int> usage_errors{0};
  coop::run([&] {
    coop::net::tcp_listener l(test_support::loopback());
    port = l.local_endpoint().port();
    std::thread t([&] {
      coop::blocking_scope blocking;
      try {
        coop::net::tls_connect("127.0.0.1", port, client_ctx);
      } catch (const coop::usage_error&) {
        ++usage_errors;
      }
      auto tcp = coop::net::connect("127.0.0.1", port); // plain TCP works here
      try {
        coop::net::tls_accept(std::move(tcp), client_ctx);
      } catch (const coop::usage_error&) {
        ++usage_errors;
      }
      done = true;
    });
    auto c = l.accept();
    test_support::yield_until([&] { return done.load(); });
    t.join();
  });
  BOOST_TEST(usage_errors == 2);
}

BOOST_AUTO_TEST_CASE(context_helpers_name_the_file_they_cannot_use) {
  const auto& cert = certificate();
  try {
    coop::net::tls_server_context(cert.cert, "/nonexistent/key.pem");
    BOOST_FAIL("a missing key file was accepted");
  } catch (const boost::system::system_error& e) {
    BOOST_TEST(std::string(e.what()).find("/nonexistent/key.pem") != std::string::npos, e.what());
  }
  BOOST_CHECK_THROW(coop::net::tls_server_context("/nonexistent/cert.pem", cert.key), boost::system::system_error);
  BOOST_CHECK_THROW(coop::net::tls_server_context(cert.key, cert.key), boost::system::system_error); // not a cert
  BOOST_CHECK_THROW(coop::net::tls_client_context("/nonexistent/ca.pem"), boost::system::system_error);
  BOOST_CHECK_NO_THROW(coop::net::tls_server_context(cert.cert, cert.key));
}

COOP_TEST_CASE(a_server_context_bounds_the_handshake_with_its_own_timeout) {
  coop::net::tls_server_options options;
  options.handshake_timeout = 100ms;
  auto server_ctx = coop::net::tls_server_context(certificate().cert, certificate().key, options);
  coop::net::tcp_listener l(test_support::loopback());
  auto port = l.local_endpoint().port();

  auto mute = coop::net::connect("127.0.0.1", port); // never sends: no coop::timeout around the call
  error_code ec;
  auto took = test_support::elapsed([&] { coop::net::tls_accept(l.accept(), server_ctx, ec); });
  BOOST_TEST((ec == coop::errc::timed_out), ec.message());
  BOOST_TEST(took >= 100ms);
  BOOST_TEST(took < 10s); // not the default's 10 s, nor forever

  auto stalled = coop::net::connect("127.0.0.1", port); // the first byte of a record, then nothing
  stalled.write_all(boost::asio::buffer("\x16", 1));
  coop::net::tls_accept(l.accept(), server_ctx, ec);
  BOOST_TEST((ec == coop::errc::timed_out), ec.message());
}

COOP_TEST_CASE(a_client_that_closes_without_sending_costs_no_session) {
  auto server_ctx = server_context();
  coop::net::tcp_listener l(test_support::loopback());
  auto port = l.local_endpoint().port();
  { auto gone = coop::net::connect("127.0.0.1", port); } // closed before a byte was sent
  error_code ec;
  auto s = coop::net::tls_accept(l.accept(), server_ctx, ec);
  BOOST_TEST((ec == boost::asio::error::eof), ec.message());
  // The returned stream never ran a handshake: OpenSSL did not read a byte.
  BOOST_TEST(SSL_get_state(s.native_handle()) == TLS_ST_BEFORE);
}

COOP_TEST_CASE(a_server_context_limits_the_handshakes_in_progress) {
  coop::net::tls_server_options options;
  options.max_handshakes = 1;
  options.handshake_timeout = 300ms;
  auto server_ctx = coop::net::tls_server_context(certificate().cert, certificate().key, options);
  auto client_ctx = client_context();
  coop::net::tcp_listener l(test_support::loopback());
  auto port = l.local_endpoint().port();

  std::vector<std::string> events; // in the order the server's handshakes end
  coop::task_group handshakes;
  // A client that starts a handshake and stalls holds the only slot...
  auto stalled = coop::net::connect("127.0.0.1", port);
  stalled.write_all(boost::asio::buffer("\x16\x03\x01", 3));
  bool stalled_accepting = false;
  handshakes.spawn([&, tcp = l.accept()]() mutable {
    stalled_accepting = true; // from here it runs without a switch until its handshake parks, holding the slot
    error_code ec;
    coop::net::tls_accept(std::move(tcp), server_ctx, ec);
    events.push_back(ec == coop::errc::timed_out ? "stalled: timed out" : "stalled: " + ec.message());
  });
  test_support::yield_until([&] { return stalled_accepting; });
  // Not an ordering sleep: a margin. The good handshake's own 300 ms bound
  // must end after the stalled one's, which frees the slot for it.
  coop::sleep_for(50ms);
  // ...so a good client's handshake waits for it to end (here: its timeout).
  auto good = coop::spawn([&] { return coop::net::tls_connect("127.0.0.1", port, client_ctx); });
  handshakes.spawn([&, tcp = l.accept()]() mutable {
    error_code ec;
    auto s = coop::net::tls_accept(std::move(tcp), server_ctx, ec);
    events.push_back(ec ? "good: " + ec.message() : "good: done");
    if (!ec) echo(s);
  });
  auto client = good.get();
  handshakes.join_or_cancel_for(10s);
  BOOST_TEST(events.size() == 2u);
  if (events.size() == 2) {
    BOOST_TEST(events[0] == "stalled: timed out");
    BOOST_TEST(events[1] == "good: done");
  }
}
