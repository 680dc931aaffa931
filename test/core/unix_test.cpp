#define BOOST_TEST_MODULE coop_unix
// Unix-domain stream sockets: unix_listener, unix_connect, unix_stream.
#include "support.hpp"

#include <array>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using coop::net::unix_connect;
using coop::net::unix_listener;
using coop::net::unix_stream;

/// A fresh directory under /tmp (mkdtemp), removed with everything in it.
struct temp_dir {
  std::string path;
  temp_dir() {
    char name[] = "/tmp/coop-unix-test-XXXXXX";
    const char* made = ::mkdtemp(name);
    BOOST_REQUIRE(made != nullptr);
    path = made;
  }
  ~temp_dir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  std::string operator/(const std::string& name) const { return path + "/" + name; }
  bool empty() const { return fs::is_empty(path); }
};

bool is_socket_file(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

/// A name in Linux's abstract namespace, unique to this process and call.
std::string abstract_name() {
  static std::atomic<int> n{0};
  return "@coop-unix-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

/// Echoes on one connection until end of stream, then half-closes.
void echo(unix_stream c) {
  std::array<char, 4096> buf;
  boost::system::error_code ec;
  for (;;) {
    std::size_t n = c.read_some(boost::asio::buffer(buf), ec);
    if (ec == boost::asio::error::eof) {
      c.shutdown_send(ec);
      return;
    }
    if (ec) return;
    c.write_all(boost::asio::buffer(buf.data(), n), ec);
    if (ec) return;
  }
}

/// An echo server fiber on `l` (on the calling thread), accepting until cancelled.
coop::task<void> echo_server(unix_listener& l) {
  return coop::spawn([&l] {
    for (;;)
      coop::spawn([c = l.accept()]() mutable { echo(std::move(c)); }).detach();
  });
}

/// A connected pair over a socket file in `dir`, on the calling runtime thread.
struct stream_pair {
  unix_stream client;
  unix_stream server;
};
stream_pair connected_pair(const temp_dir& dir, const std::string& name = "pair.sock") {
  unix_listener l(dir / name);
  auto c = coop::spawn([path = dir / name] { return unix_connect(path); });
  auto s = l.accept();
  return {c.get(), std::move(s)};
}

using test_support::expect_cancel;
using test_support::expect_timeout;

} // namespace

COOP_TEST_CASE(unix_echo_round_trip) {
  coop::timeout guard(10s);
  temp_dir dir;
  unix_listener l(dir / "echo.sock");
  BOOST_TEST(l.local_endpoint().path() == dir / "echo.sock");
  auto server = echo_server(l);
  unix_stream c = unix_connect(dir / "echo.sock");
  std::string big(1 << 20, 'u'), back(big.size(), '\0');
  auto writer = coop::spawn([&] { c.write_all(boost::asio::buffer(big)); }); // more than the socket buffers
  BOOST_TEST(c.read_exact(boost::asio::buffer(back)) == big.size());
  writer.join();
  BOOST_TEST((back == big));
  c.write_all(boost::asio::buffer(std::string("one\ntwo\n")));
  std::string line;
  std::size_t n = c.read_until(line, "\n");
  BOOST_TEST(line.substr(0, n) == "one\n");
  line.erase(0, n);
  n = c.read_until(line, "\n");
  BOOST_TEST(line.substr(0, n) == "two\n");
  c.shutdown_send();
  std::array<char, 8> buf;
  boost::system::error_code ec;
  c.read_some(boost::asio::buffer(buf), ec);
  BOOST_TEST((ec == boost::asio::error::eof));
  server.cancel();
  server.join(); // the accept loop has let go of the listener
}

COOP_TEST_CASE(serve_runs_a_handler_per_unix_connection) {
  temp_dir dir;
  unix_listener l(dir / "serve.sock");
  coop::task_group connections;
  int served = 0;
  auto server = coop::spawn([&] {
    coop::net::serve(l, connections, [&](unix_stream c) {
      echo(std::move(c));
      ++served;
    });
  });
  for (int i = 0; i < 3; ++i) {
    auto c = unix_connect(dir / "serve.sock");
    c.write_all(boost::asio::buffer("abc", 3));
    c.shutdown_send();
    std::array<char, 3> b;
    c.read_exact(boost::asio::buffer(b));
    BOOST_TEST(std::string(b.data(), 3) == "abc");
  }
  server.cancel();
  server.join();
  connections.join();
  BOOST_TEST(served == 3);
}

COOP_TEST_CASE(the_listener_removes_its_socket_file_when_closed_or_destroyed) {
  temp_dir dir;
  {
    unix_listener l(dir / "a.sock");
    BOOST_TEST(is_socket_file(dir / "a.sock"));
  }
  BOOST_TEST(!fs::exists(dir / "a.sock"));
  unix_listener l(dir / "b.sock");
  BOOST_TEST(is_socket_file(dir / "b.sock"));
  l.close();
  BOOST_TEST(!fs::exists(dir / "b.sock"));
  // A moved listener removes the file once, when the last owner goes.
  std::optional<unix_listener> moved;
  {
    unix_listener c(dir / "c.sock");
    moved.emplace(std::move(c));
  }
  BOOST_TEST(is_socket_file(dir / "c.sock"));
  auto s = unix_connect(dir / "c.sock"); // still listening
  moved.reset();
  BOOST_TEST(dir.empty());
}

COOP_TEST_CASE(a_listener_leaves_alone_a_file_that_replaced_its_own) {
  temp_dir dir;
  const std::string path = dir / "x.sock";
  std::optional<unix_listener> first(std::in_place, path);
  fs::remove(path); // someone else cleaned up, and a new server took the path
  unix_listener second(path);
  first.reset();
  BOOST_TEST(is_socket_file(path));
  auto c = unix_connect(path); // the second one still answers
  auto s = second.accept();
  c.write_all(boost::asio::buffer("k", 1));
  std::array<char, 1> b;
  s.read_exact(boost::asio::buffer(b));
  BOOST_TEST(b[0] == 'k');
}

COOP_TEST_CASE(an_existing_path_fails_by_default_and_nothing_is_deleted) {
  temp_dir dir;
  const std::string stale = dir / "stale.sock";
  {
    // Out of the listener's reach, the file stays behind when it closes:
    // nobody listens on `stale` any more, as after a crash.
    unix_listener l(dir / "tmp.sock");
    fs::rename(dir / "tmp.sock", stale);
  }
  BOOST_TEST(is_socket_file(stale));
  boost::system::error_code ec;
  unix_connect(stale, ec);
  BOOST_TEST((ec == boost::asio::error::connection_refused));

  try {
    unix_listener l(stale);
    BOOST_FAIL("binding an existing path succeeded");
  } catch (const boost::system::system_error& e) {
    BOOST_TEST((e.code() == boost::asio::error::address_in_use));
    BOOST_TEST(std::string(e.what()).find("remove_stale_socket") != std::string::npos);
  }
  BOOST_TEST(is_socket_file(stale));

  // Asked to, it replaces a stale socket file...
  coop::net::listen_options replace;
  replace.remove_stale_socket = true;
  {
    unix_listener l(stale, replace);
    auto c = unix_connect(stale);
    auto s = l.accept();
  }
  BOOST_TEST(!fs::exists(stale));

  // ...but never a live listener's socket,
  unix_listener live(dir / "live.sock");
  BOOST_CHECK_THROW(unix_listener(dir / "live.sock", replace), boost::system::system_error);
  auto c = unix_connect(dir / "live.sock");
  auto s = live.accept();
  // ...nor a file that is not a socket.
  { std::ofstream(dir / "data.txt") << "keep me"; }
  BOOST_CHECK_THROW(unix_listener(dir / "data.txt", replace), boost::system::system_error);
  BOOST_TEST(fs::file_size(dir / "data.txt") == 7u);
}

COOP_TEST_CASE(connect_errors_are_errors) {
  temp_dir dir;
  boost::system::error_code ec;
  unix_connect(dir / "nothing-here.sock", ec);
  BOOST_TEST((ec == boost::asio::error::not_found || ec == boost::system::errc::no_such_file_or_directory));
  BOOST_CHECK_THROW(unix_connect(dir / "nothing-here.sock"), boost::system::system_error);
  unix_connect(std::string(200, 'p'), ec); // longer than sun_path
  BOOST_TEST((ec == boost::asio::error::name_too_long));
  BOOST_CHECK_THROW(unix_listener(std::string(200, 'p')), boost::system::system_error);
}

/// The what() of the system_error that `fn` throws ("" when it throws none).
template <class F> std::string error_text(F fn) {
  try {
    fn();
  } catch (const boost::system::system_error& e) {
    return e.what();
  }
  return {};
}

COOP_TEST_CASE(bind_and_connect_errors_name_the_path) {
  temp_dir dir;
  const std::string missing = dir / "nothing-here.sock";
  std::string text = error_text([&] { unix_connect(missing); });
  BOOST_TEST(text.find("'" + missing + "'") != std::string::npos, text);

  const std::string unheard = abstract_name(); // nobody listens on it: refused
  text = error_text([&] { unix_connect(unheard); });
  BOOST_TEST(text.find("'" + unheard + "'") != std::string::npos, text);

  const std::string no_dir = dir / "no-such-dir/x.sock";
  text = error_text([&] { unix_listener l(no_dir); });
  BOOST_TEST(text.find("bind '" + no_dir + "'") != std::string::npos, text);

  const std::string taken = abstract_name();
  unix_listener first(taken);
  text = error_text([&] { unix_listener second(std::string(1, '\0') + taken.substr(1)); });
  BOOST_TEST(text.find("bind '" + taken + "'") != std::string::npos, text); // '\0' shown as '@'
}

COOP_TEST_CASE(abstract_names_work_and_leave_no_file) {
  temp_dir dir;
  const std::string name = abstract_name();
  unix_listener l(name);
  BOOST_TEST(l.local_endpoint().path().front() == '\0');
  auto server = echo_server(l);
  auto c = unix_connect(name);
  c.write_all(boost::asio::buffer("abs", 3));
  std::array<char, 3> b;
  c.read_exact(boost::asio::buffer(b));
  BOOST_TEST(std::string(b.data(), 3) == "abs");
  // '\0' spells the same name as '@'.
  auto c2 = unix_connect(std::string(1, '\0') + name.substr(1));
  c2.write_all(boost::asio::buffer("z", 1));
  c2.read_exact(boost::asio::buffer(b.data(), 1));
  BOOST_TEST(b[0] == 'z');
  server.cancel();
  server.join(); // the accept loop has let go of the listener
}

COOP_TEST_CASE(timeout_and_cancel_interrupt_accept) {
  temp_dir dir;
  unix_listener l(dir / "accept.sock");
  expect_timeout([&] { l.accept(); });
  expect_cancel([&] { l.accept(); });
  // Still usable afterwards.
  auto c = coop::spawn([&] { return unix_connect(dir / "accept.sock"); });
  auto s = l.accept();
  c.get();
}

COOP_TEST_CASE(timeout_and_cancel_interrupt_reads) {
  temp_dir dir;
  auto p = connected_pair(dir);
  std::array<char, 16> buf;
  std::string line;
  expect_timeout([&] { p.server.read_some(boost::asio::buffer(buf)); });
  expect_cancel([&] { p.server.read_some(boost::asio::buffer(buf)); });
  expect_timeout([&] { p.server.read_exact(boost::asio::buffer(buf)); });
  expect_cancel([&] { p.server.read_exact(boost::asio::buffer(buf)); });
  expect_timeout([&] { p.server.read_until(line, "\n"); });
  expect_cancel([&] { p.server.read_until(line, "\n"); });
  // The stream stays usable after interrupted reads.
  p.client.write_all(boost::asio::buffer("hi", 2));
  BOOST_TEST(p.server.read_some(boost::asio::buffer(buf)) == 2u);
}

COOP_TEST_CASE(timeout_and_cancel_interrupt_writes_to_a_peer_that_does_not_read) {
  temp_dir dir;
  std::string big(64 << 20, 'x'); // more than the socket buffers hold
  auto p = connected_pair(dir, "w1.sock");
  expect_timeout([&] { p.client.write_all(boost::asio::buffer(big)); });
  auto q = connected_pair(dir, "w2.sock");
  expect_cancel([&] { q.client.write_all(boost::asio::buffer(big)); });
  auto r = connected_pair(dir, "w3.sock");
  expect_timeout([&] {
    for (;;)
      r.client.write_some(boost::asio::buffer(big));
  });
  expect_cancel([&] {
    for (;;)
      r.client.write_some(boost::asio::buffer(big));
  });
}

COOP_TEST_CASE(an_interruption_already_due_fails_every_call_at_entry) {
  temp_dir dir;
  unix_listener l(dir / "entry.sock");
  auto p = connected_pair(dir);
  p.client.write_all(boost::asio::buffer("ready", 5)); // the read could complete at once
  std::array<char, 5> buf;
  {
    coop::timeout t(1ms);
    boost::system::error_code expired;
    coop::sleep_for(5ms, expired); // ends when the timeout expires; it stays due
    BOOST_CHECK_THROW(unix_connect(dir / "entry.sock"), coop::timeout_error);
    BOOST_CHECK_THROW(p.server.read_some(boost::asio::buffer(buf)), coop::timeout_error);
    BOOST_CHECK_THROW(p.client.write_all(boost::asio::buffer("x", 1)), coop::timeout_error);
  }
  auto t = coop::spawn([&] {
    boost::system::error_code ec;
    coop::sleep_for(10s, ec); // cancelled here
    unix_connect(dir / "entry.sock", ec);
    return ec;
  });
  coop::this_fiber::yield();
  t.cancel();
  BOOST_TEST((t.get() == coop::errc::cancelled));
  BOOST_TEST(p.server.read_some(boost::asio::buffer(buf)) == 5u); // nothing was consumed
}

COOP_TEST_CASE(a_shield_keeps_a_read_going_through_a_cancel) {
  temp_dir dir;
  auto p = connected_pair(dir);
  std::string in_shield, after;
  bool waiting = false;
  auto t = coop::spawn([&] {
    {
      coop::shield s;
      std::array<char, 4> buf;
      waiting = true;
      p.server.read_exact(boost::asio::buffer(buf));
      in_shield.assign(buf.data(), 4);
    }
    boost::system::error_code ec;
    std::array<char, 1> b;
    p.server.read_some(boost::asio::buffer(b), ec);
    after = ec.message();
    return ec;
  });
  test_support::yield_until([&] { return waiting; });
  t.cancel();
  coop::this_fiber::yield();
  p.client.write_all(boost::asio::buffer("done", 4));
  BOOST_TEST((t.get() == coop::errc::cancelled)); // deferred to the first call after the shield
  BOOST_TEST(in_shield == "done");
}

COOP_MT_TEST_CASE(clients_on_every_runtime_thread_share_one_unix_server) {
  temp_dir dir;
  const std::string path = dir / "mt.sock";
  unix_listener l(path); // thread 0
  auto server = echo_server(l);
  std::vector<coop::task<int>> clients;
  for (unsigned i = 0; i < 2 * rt.size(); ++i)
    clients.push_back(rt.spawn_on(i % rt.size(), [path, i] {
      coop::timeout guard(10s);
      auto c = unix_connect(path); // this thread's own stream
      int ok = 0;
      for (int k = 0; k < 20; ++k) {
        std::string msg = "client " + std::to_string(i) + " message " + std::to_string(k) + "\n";
        c.write_all(boost::asio::buffer(msg));
        std::string line;
        std::size_t n = c.read_until(line, "\n");
        ok += line.substr(0, n) == msg;
      }
      return ok;
    }));
  for (auto& c : clients)
    BOOST_TEST(c.get() == 20);
  server.cancel();
  server.join(); // the accept loop has let go of the listener
}

COOP_MT_TEST_CASE(every_runtime_thread_runs_its_own_unix_server) {
  temp_dir dir;
  std::vector<coop::task<bool>> threads;
  for (unsigned i = 0; i < rt.size(); ++i)
    threads.push_back(rt.spawn_on(i, [&dir, i] {
      coop::timeout guard(10s);
      const std::string path = dir / ("t" + std::to_string(i) + ".sock");
      unix_listener l(path);
      auto server = echo_server(l);
      auto c = unix_connect(path);
      std::string msg(100000, static_cast<char>('a' + i)), back(msg.size(), '\0');
      auto w = coop::spawn([&] { c.write_all(boost::asio::buffer(msg)); });
      c.read_exact(boost::asio::buffer(back));
      w.join();
      server.cancel();
      server.join();
      return back == msg;
    }));
  for (auto& t : threads)
    BOOST_TEST(t.get());
  BOOST_TEST(dir.empty()); // every listener removed its file
}

BOOST_AUTO_TEST_CASE(the_same_calls_work_on_a_plain_thread_in_a_blocking_scope) {
  temp_dir dir;
  const std::string path = dir / "plain.sock";
  std::string got;
  std::atomic<bool> finished{false};
  coop::run([&] {
    unix_listener l(path);
    auto server = echo_server(l);
    std::thread t([&] {
      coop::blocking_scope blocking;
      auto c = unix_connect(path);
      c.write_all(boost::asio::buffer("thread\n", 7));
      std::string line;
      std::size_t n = c.read_until(line, "\n");
      got = line.substr(0, n);
      finished = true;
    });
    test_support::yield_until([&] { return finished.load(); });
    t.join();
    server.cancel();
    server.join();
  });
  BOOST_TEST(got == "thread\n");
  BOOST_TEST(dir.empty());
}

BOOST_AUTO_TEST_CASE(a_timeout_bounds_blocking_calls_on_a_plain_thread) {
  temp_dir dir;
  coop::blocking_scope blocking;
  unix_listener l(dir / "blocking.sock");
  {
    coop::timeout t(30ms);
    BOOST_CHECK_THROW(l.accept(), coop::timeout_error);
  }
  auto client = unix_connect(dir / "blocking.sock");
  auto server = l.accept(); // the peer: never reads or writes unless told
  std::array<char, 16> buf;
  std::string line;
  {
    coop::timeout t(30ms);
    BOOST_CHECK_THROW(client.read_some(boost::asio::buffer(buf)), coop::timeout_error);
  }
  server.write_all(boost::asio::buffer("par", 3));
  {
    coop::timeout t(30ms);
    BOOST_CHECK_THROW(client.read_exact(boost::asio::buffer(buf)), coop::timeout_error);
  }
  {
    coop::timeout t(30ms);
    BOOST_CHECK_THROW(client.read_until(line, "\n"), coop::timeout_error);
  }
  {
    std::string big(64 << 20, 'x');
    coop::timeout t(50ms);
    boost::system::error_code ec;
    client.write_all(boost::asio::buffer(big), ec);
    BOOST_TEST((ec == coop::errc::timed_out));
  }
  {
    coop::timeout t(1ms);
    std::this_thread::sleep_for(5ms);
    BOOST_CHECK_THROW(unix_connect(dir / "blocking.sock"), coop::timeout_error); // due at entry
  }
  // Without a timeout a fresh stream blocks in the kernel, and works.
  auto fresh = unix_connect(dir / "blocking.sock");
  auto peer = l.accept();
  peer.write_all(boost::asio::buffer("ok", 2));
  std::array<char, 2> ok;
  fresh.read_exact(boost::asio::buffer(ok));
  BOOST_TEST(std::string(ok.data(), 2) == "ok");
}

BOOST_AUTO_TEST_CASE(unix_sockets_outside_a_runtime_are_a_usage_error) {
  temp_dir dir;
  BOOST_CHECK_THROW(unix_listener(dir / "none.sock"), coop::usage_error);
  BOOST_CHECK_THROW(unix_connect(dir / "none.sock"), coop::usage_error);
  BOOST_TEST(dir.empty());
}
