// chat_server — every line a client sends goes to all the other clients.
//
// Each client has two fibers: a reader that takes the client's lines and
// queues them for everybody else, and a writer that sends the client what
// others said, in order. Between them sits the client's outbox, a
// coop::channel with room for --queue lines: the reader never waits for a
// slow client, and memory stays bounded (at most --queue x --max-line bytes
// per client).
//
// Policy for a slow client: when a line finds its outbox full, that client is
// disconnected (as Redis does with a pub/sub client over its output limit).
// Dropping lines instead would keep it connected but silently feed it a
// conversation with holes in it; closing tells it plainly and it can
// reconnect. A line longer than --max-line also ends that client's connection,
// and only that one.
//
// Policy for an idle client: --idle-timeout bounds how long a client may hold
// its connection without anything moving. A line to the client that cannot
// be written within it ends the connection (a client that never reads, even
// with room left in its outbox); so does a client from which no complete line
// arrived, and to which no line was written, for that long.
//
// The room (the set of members) is shared by all fibers without a lock: they
// all run on one thread, and a broadcast never blocks, so no other fiber can
// run in the middle of one.
//
//   chat_server --port 9001
//   nc 127.0.0.1 9001          (in two terminals, then type)
#include <app.hpp>
#include <coop/coop.hpp>

#include <chrono>
#include <csignal>
#include <iostream>
#include <set>
#include <string>
#include <string_view>

namespace {

using namespace std::chrono_literals;
using coop::net::tcp_stream;

using clock = std::chrono::steady_clock;

/// One connected client.
struct member {
  member(tcp_stream s, std::size_t queue) : stream(std::move(s)), outbox(queue) {}
  tcp_stream stream;
  coop::channel<std::string> outbox; ///< lines from others, waiting to be written
  std::string name = describe(stream);
  clock::time_point last_activity = clock::now(); ///< a line read from or written to the client

  static std::string describe(const tcp_stream& s) {
    boost::system::error_code ec;
    auto ep = s.remote_endpoint(ec);
    return ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  /// Ends the connection: the reader's and writer's pending calls fail at once.
  void disconnect() {
    outbox.close();
    boost::system::error_code ignored;
    stream.close(ignored);
  }
};

/// Everybody who is connected. Used by the fibers of one thread only.
class room {
public:
  void enter(member& m) { members_.insert(&m); }
  void leave(member& m) { members_.erase(&m); }

  /// Queues `line` for every member except `from`, without waiting.
  void broadcast(const member& from, std::string_view line) {
    for (member* m : members_) {
      if (m == &from) continue;
      if (m->outbox.try_push(std::string(line)) == coop::channel_status::full) {
        std::cerr << "chat_server: " << m->name << " is too slow, disconnecting it" << std::endl;
        m->disconnect(); // it leaves the room when its reader sees the closed socket
      }
    }
  }

private:
  std::set<member*> members_;
};

/// Serves one client until it leaves, fails, sends a too long line, is
/// disconnected as too slow, stays idle for `idle`, or the server shuts down.
void chat(room& everyone, tcp_stream stream, std::size_t queue, std::size_t max_line, std::chrono::milliseconds idle) {
  member me(std::move(stream), queue);
  everyone.enter(me);

  auto writer = coop::spawn([&me, idle] {
    for (const std::string& line : me.outbox) { // until the outbox is closed
      boost::system::error_code ec;
      {
        coop::timeout limit(idle);
        me.stream.write_all(boost::asio::buffer(line), ec);
      }
      if (ec == coop::errc::timed_out)
        std::cerr << "chat_server: " << me.name << " did not take a line within " << idle.count()
                  << " ms, disconnecting it" << std::endl;
      if (ec) break;
      me.last_activity = clock::now();
    }
    me.disconnect(); // a failed write ends the reader too
  });

  coop::net::buffered_reader input(me.stream, max_line);
  for (;;) {
    boost::system::error_code ec;
    std::string_view line; // "\n" included, valid until the next read
    {
      coop::timeout limit(me.last_activity + idle);
      line = input.read_until("\n", ec);
    }
    if (ec == coop::errc::timed_out && clock::now() < me.last_activity + idle)
      continue; // a line was written to the client meanwhile: not idle
    if (ec == boost::asio::error::not_found)
      std::cerr << "chat_server: " << me.name << " sent a line longer than " << max_line << " bytes" << std::endl;
    if (ec == coop::errc::timed_out)
      std::cerr << "chat_server: " << me.name << " was idle for " << idle.count() << " ms, disconnecting it"
                << std::endl;
    if (ec) break; // end of stream, reset, too long, idle, disconnected, cancelled
    me.last_activity = clock::now();
    everyone.broadcast(me, line);
    // Let the writers take the line before the next one: a client that sends
    // many lines at once gets them back from the buffer without a yield, and
    // a reader racing ahead would fill the others' outboxes, which the
    // slow-client policy would take for slow clients.
    coop::this_fiber::yield();
  }

  everyone.leave(me);
  me.disconnect();
  coop::shield no_cancel; // `writer` uses `me`: wait until it has left (it ends at once)
  writer.join();
}

} // namespace

int main(int argc, char** argv) {
  namespace po = coop_app::po;
  const std::string name = "chat_server";
  po::options_description options("Options");
  options.add_options()                                                                                           //
      ("host", po::value<std::string>()->default_value("127.0.0.1"), "address to listen on")                      //
      ("port", po::value<int>()->default_value(9001), "TCP port to listen on (0: any free port)")                 //
      ("queue", po::value<int>()->default_value(64), "lines waiting per client before it is dropped as too slow") //
      ("max-line", po::value<int>()->default_value(4096), "longest line accepted, in bytes, newline included")    //
      ("idle-timeout", po::value<double>()->default_value(300),
       "SECONDS a client may go without a line moving either way, or take to accept a line") //
      ("drain-timeout", po::value<double>()->default_value(1),
       "on SIGINT/SIGTERM: new clients are refused, connected ones are closed after SECONDS");
  coop_app::add_admin_option(options);
  auto vm = coop_app::parse(argc, argv, name, "Line chat: each line a client sends goes to all the others.", options);
  const unsigned short port = coop_app::parse_port(name, vm["port"].as<int>());
  const int queue = vm["queue"].as<int>();
  if (queue < 1 || queue > 1'000'000) coop_app::usage_error(name, "--queue must be 1..1000000");
  const int max_line = vm["max-line"].as<int>();
  if (max_line < 2 || max_line > (16 << 20)) coop_app::usage_error(name, "--max-line must be 2..16777216");
  const auto idle = coop_app::parse_seconds(name, "idle-timeout", vm["idle-timeout"].as<double>());
  const auto drain = coop_app::parse_seconds(name, "drain-timeout", vm["drain-timeout"].as<double>());
  const coop::net::tcp::endpoint where(coop_app::parse_address(name, vm["host"].as<std::string>()), port);
  coop_app::raise_open_file_limit();

  return coop_app::guarded_main(name, [&] {
    return coop::run(
        [&] {
          room everyone; // outlives the server and its sessions
          coop::net::tcp_server server(coop::net::tcp_listener(where), coop_app::log_accept_errors(name));
          // On a signal: the listener closes, the sessions get `drain`, then are cancelled.
          return coop_app::serve_until_signal(
              server,
              [&everyone, queue = std::size_t(queue), max_line = std::size_t(max_line), idle](tcp_stream c) {
                chat(everyone, std::move(c), queue, max_line, idle);
              },
              drain);
        },
        coop_app::run_options_of(vm));
  });
}
