// apps/loadgen/main.cpp — drives a TCP echo server: N connections, each sends a
// message, waits for the whole echo, checks it byte for byte, and repeats.
// Reports requests/s, MB/s and latency percentiles. Written on coop itself:
// one fiber per connection, on one or more runtime threads.
#include "histogram.hpp"

#include <app.hpp>
#include <coop/coop.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock = std::chrono::steady_clock;
using loadgen::histogram;
using namespace std::chrono_literals;
namespace net = coop::net;

const char* const name = "loadgen";

struct settings {
  net::tcp::endpoint server;
  std::string host;
  std::size_t connections = 1;
  std::size_t size = 64;
  std::chrono::nanoseconds duration{};
  std::chrono::nanoseconds warmup{};
  unsigned threads = 1;
  std::size_t connect_concurrency = 200; ///< connects in flight at once, in all
  std::chrono::nanoseconds request_timeout{};
  std::chrono::nanoseconds connect_timeout{}; ///< how long to keep retrying one connection
  int server_pid = 0;                         ///< 0: do not sample the server's CPU time
  double rate = 0;                            ///< requests/s in all, paced per connection; 0: as fast as it can
  bool stream = false;                        ///< send without waiting for each echo (`stream_client`)
  bool json = false;
};

/// When the run starts and ends; written by main before it opens the gate.
struct schedule {
  clock::time_point window_begin; ///< end of warm-up: requests count from here
  clock::time_point end;          ///< no request starts after this
};

/// One runtime thread's results. The atomics are read by the progress
/// display while the run goes on; the rest is read only after it ended.
struct thread_results {
  std::atomic<std::uint64_t> completed{0}; ///< requests done, warm-up included
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> connected{0};
  std::atomic<std::uint64_t> connect_failures{0};
  std::atomic<std::uint64_t> connect_retries{0};
  std::atomic<std::uint64_t> attempted{0}; ///< connections whose first connect finished (either way)
  std::uint64_t requests = 0;              ///< in the measurement window
  std::uint64_t mismatches = 0;
  std::uint64_t timeouts = 0;
  histogram latency;
  std::string first_error;
};

/// Per runtime thread: a gate the connection fibers wait at until every
/// connection is open, and a limit on connects in flight.
struct thread_context {
  explicit thread_context(std::size_t max_connecting) : connect_slots(max_connecting) {}
  coop::channel<char> gate{0};       ///< closed by main: "go"
  coop::channel<char> connect_slots; ///< a semaphore: push to take a slot, pop to give it back
  thread_results results;
};

bool worth_retrying(const boost::system::error_code& ec) {
  namespace e = boost::asio::error;
  return ec == e::connection_refused || ec == e::try_again || ec == e::would_block || ec == e::timed_out ||
         ec == e::no_buffer_space || ec == e::connection_reset || ec == e::connection_aborted ||
         ec == boost::system::errc::address_not_available || ec == boost::system::errc::resource_unavailable_try_again;
}

/// Connects, retrying politely (10 ms, doubling up to 1 s) on refusals and
/// transient shortages, until `give_up`. Holds one of the thread's connect slots.
std::optional<net::tcp_stream> connect_with_retry(const settings& s, thread_context& ctx, clock::time_point give_up) {
  auto delay = 10ms;
  for (;;) {
    boost::system::error_code ec;
    ctx.connect_slots.push('x');
    std::optional<net::tcp_stream> stream;
    {
      coop::timeout limit(give_up);
      stream.emplace(net::connect(s.server, ec));
    }
    ctx.connect_slots.pop();
    if (!ec) return stream;
    if (!worth_retrying(ec) || clock::now() + delay >= give_up) {
      ctx.results.connect_failures.fetch_add(1, std::memory_order_relaxed);
      if (ctx.results.first_error.empty()) ctx.results.first_error = "connect: " + ec.message();
      return std::nullopt;
    }
    ctx.results.connect_retries.fetch_add(1, std::memory_order_relaxed);
    coop::sleep_for(delay);
    delay = std::min<std::chrono::milliseconds>(delay * 2, 1s);
  }
}

/// Sends a message and reads its echo. Messages larger than what the socket
/// buffers surely hold are written by a second fiber while this one reads, or
/// client and server would both wait for the other to read.
void round_trip(net::tcp_stream& stream, const std::vector<char>& message, std::vector<char>& reply,
                boost::system::error_code& ec) {
  constexpr std::size_t write_then_read_limit = 32 * 1024;
  if (message.size() <= write_then_read_limit) {
    stream.write_all(boost::asio::buffer(message), ec);
    if (!ec) stream.read_exact(boost::asio::buffer(reply), ec);
    return;
  }
  boost::system::error_code write_ec;
  coop::task<void> writer = coop::spawn([&] { stream.write_all(boost::asio::buffer(message), write_ec); });
  stream.read_exact(boost::asio::buffer(reply), ec);
  if (ec) writer.cancel();
  boost::system::error_code join_ec;
  coop::shield wait_for_writer; // it uses our locals: never leave before it is gone
  writer.join(join_ec);
  if (!ec) ec = write_ec;
}

/// --stream: one fiber sends message after message without waiting for
/// their echoes (the socket buffers bound how many are in flight) while this
/// one reads the echoes back and checks each; a message's latency runs from
/// its send to the end of its echo, which includes its wait behind the
/// messages ahead of it in the buffers. At the end the sender shuts its side
/// down, and the server's close ends the reading once every echo is in.
void stream_client(const settings& s, const schedule& when, thread_results& r, net::tcp_stream& stream,
                   const std::vector<char>& pattern) {
  std::deque<clock::time_point> sent; // send times of the messages whose echo is still due
  boost::system::error_code write_ec;
  coop::task<void> sender = coop::spawn([&] {
    std::vector<char> message = pattern;
    for (std::uint64_t sequence = 0; clock::now() < when.end; ++sequence) {
      if (s.size >= sizeof sequence) std::memcpy(message.data(), &sequence, sizeof sequence);
      sent.push_back(clock::now());
      stream.write_all(boost::asio::buffer(message), write_ec);
      if (write_ec) return;
    }
    stream.shutdown_send(write_ec);
  });
  std::vector<char> expected = pattern, reply(s.size);
  boost::system::error_code ec;
  for (std::uint64_t sequence = 0;; ++sequence) {
    stream.read_exact(boost::asio::buffer(reply), ec);
    if (ec) break; // eof: every echo is in (or the connection failed: below)
    const auto finished = clock::now();
    if (s.size >= sizeof sequence) std::memcpy(expected.data(), &sequence, sizeof sequence);
    if (sent.empty() || std::memcmp(expected.data(), reply.data(), s.size) != 0) {
      ++r.mismatches;
      ec = boost::system::errc::make_error_code(boost::system::errc::bad_message);
      break;
    }
    const auto started = sent.front();
    sent.pop_front();
    r.completed.store(r.completed.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    // Counted when its echo ends within the window: with the socket buffers
    // full, a message waits long behind the others, and counting by its
    // send as well would leave a short window nearly empty.
    if (finished >= when.window_begin && finished <= when.end) {
      ++r.requests;
      r.latency.record(static_cast<std::uint64_t>(std::chrono::nanoseconds(finished - started).count()));
    }
  }
  if (ec == boost::asio::error::eof && sent.empty() && !write_ec) ec.clear();
  if (ec) sender.cancel();
  boost::system::error_code join_ec;
  coop::shield wait_for_sender; // it uses our locals: never leave before it is gone
  sender.join(join_ec);
  if (!ec) ec = write_ec;
  if (ec) {
    if (ec == coop::errc::timed_out) ++r.timeouts;
    if (r.first_error.empty()) r.first_error = ec.message();
    r.errors.fetch_add(1, std::memory_order_relaxed);
  }
}

/// One connection's whole life: connect, wait at the gate, then request after
/// request until the end of the run.
void client(const settings& s, const schedule& when, thread_context& ctx, std::size_t index) {
  thread_results& r = ctx.results;
  std::optional<net::tcp_stream> stream = connect_with_retry(s, ctx, clock::now() + s.connect_timeout);
  if (stream) r.connected.fetch_add(1, std::memory_order_relaxed);
  r.attempted.fetch_add(1, std::memory_order_relaxed);
  ctx.gate.pop(); // returns once main closes the gate
  if (!stream) return;

  // A pattern of its own per connection; the first 8 bytes carry a sequence
  // number so that a stale or reordered echo cannot pass for the right one.
  std::vector<char> message(s.size), reply(s.size);
  for (std::size_t k = 0; k < s.size; ++k)
    message[k] = static_cast<char>('a' + (k * 7 + index) % 26);
  std::uint64_t sequence = 0;

  // Every request must finish by end + request_timeout; one that hangs fails.
  coop::timeout overall(when.end + s.request_timeout);
  if (s.stream) return stream_client(s, when, r, *stream, message);

  // --rate: this connection sends every `interval`, the connections' phases
  // spread over one interval; a late request is not made up for by a burst.
  const bool paced = s.rate > 0;
  const auto interval =
      paced ? std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(double(s.connections) / s.rate))
            : clock::duration::zero();
  auto next_send = clock::now() + interval * static_cast<long>(index) / static_cast<long>(s.connections);
  while (clock::now() < when.end) {
    if (paced) {
      if (next_send >= when.end) return;
      coop::sleep_until(next_send);
      next_send = std::max(next_send + interval, clock::now());
    }
    if (s.size >= sizeof sequence) std::memcpy(message.data(), &sequence, sizeof sequence);
    ++sequence;
    boost::system::error_code ec;
    auto started = clock::now();
    round_trip(*stream, message, reply, ec);
    auto finished = clock::now();
    if (!ec && std::memcmp(message.data(), reply.data(), s.size) != 0) {
      ++r.mismatches;
      ec = boost::system::errc::make_error_code(boost::system::errc::bad_message);
    }
    if (ec) {
      if (ec == coop::errc::timed_out) ++r.timeouts;
      if (r.first_error.empty()) r.first_error = ec.message();
      r.errors.fetch_add(1, std::memory_order_relaxed);
      // Start over on a new connection while the run lasts.
      stream.reset();
      if (clock::now() >= when.end) return;
      stream = connect_with_retry(s, ctx, when.end);
      if (!stream) return;
      continue;
    }
    r.completed.store(r.completed.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (started >= when.window_begin && finished <= when.end) {
      ++r.requests;
      r.latency.record(static_cast<std::uint64_t>(std::chrono::nanoseconds(finished - started).count()));
    }
  }
}

/// utime + stime of process `pid` in seconds (from /proc/PID/stat), or -1.
double process_cpu_seconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto paren = stat.rfind(')'); // the command name may contain spaces
  if (paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(paren + 1));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) { // field 3 is the state
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return double(utime + stime) / double(::sysconf(_SC_CLK_TCK));
}

double seconds_of(std::chrono::nanoseconds d) {
  return std::chrono::duration<double>(d).count();
}

std::chrono::nanoseconds seconds_option(const char* option, double seconds, double min) {
  if (!(seconds >= min) || seconds > 1e6)
    coop_app::usage_error(name, std::string("--") + option + ": out of range (" + std::to_string(seconds) + ")");
  return std::chrono::nanoseconds(static_cast<long long>(std::llround(seconds * 1e9)));
}

net::tcp::endpoint resolve(const std::string& host, int port) {
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(host, ec);
  if (!ec) return {address, static_cast<unsigned short>(port)};
  boost::asio::io_context io;
  net::tcp::resolver resolver(io);
  auto results = resolver.resolve(host, std::to_string(port), ec);
  if (ec || results.empty()) coop_app::usage_error(name, "--host: cannot resolve '" + host + "': " + ec.message());
  return *results.begin();
}

settings parse_settings(int argc, char** argv) {
  namespace po = coop_app::po;
  settings s;
  int port = -1;
  double duration = 5, warmup = 0, request_timeout = 10, connect_timeout = 10;
  po::options_description options("Options");
  // clang-format off
  options.add_options()
      ("host", po::value(&s.host)->default_value("127.0.0.1"), "server address or name")
      ("port,p", po::value(&port)->required(), "server port")
      ("connections,c", po::value(&s.connections)->default_value(1), "concurrent connections")
      ("size,s", po::value(&s.size)->default_value(64), "message size in bytes")
      ("duration,d", po::value(&duration)->default_value(5), "measured SECONDS")
      ("warmup,w", po::value(&warmup)->default_value(0), "SECONDS of load before measuring")
      ("threads,t", po::value(&s.threads)->default_value(1), "coop runtime threads")
      ("connect-concurrency", po::value(&s.connect_concurrency)->default_value(200), "connects in flight at once")
      ("connect-timeout", po::value(&connect_timeout)->default_value(10),
       "SECONDS to keep retrying a connection that is refused before counting it failed")
      ("request-timeout", po::value(&request_timeout)->default_value(10),
       "SECONDS a request may still take after the end before it counts as an error")
      ("server-pid", po::value(&s.server_pid)->default_value(0),
       "also report that (local) process's CPU time per request during the measurement")
      ("rate", po::value(&s.rate)->default_value(0),
       "at most this many requests/s in all, spread evenly over the connections (0: no limit)")
      ("stream", po::bool_switch(&s.stream),
       "streaming: each connection sends its messages back to back without waiting for the echoes, "
       "which it reads and checks as they come (latency: from a message's send to its echo)")
      ("json", po::bool_switch(&s.json), "print one JSON object at the end, nothing else");
  // clang-format on
  coop_app::parse(argc, argv, name,
                  "Drives a TCP echo server: each connection sends a message of --size bytes,\n"
                  "waits for the complete echo, checks it byte for byte, and repeats.\n"
                  "All connections are opened first (at most --connect-concurrency at once,\n"
                  "retrying refusals with back-off), then the run starts. Prints requests/s,\n"
                  "MB/s (echoed payload, 10^6 bytes), latency p50/p90/p99/max, errors and\n"
                  "connect failures; live progress on a terminal. Exits 1 when any request\n"
                  "or connection failed.",
                  options);
  if (port < 0 || port > 65535) coop_app::usage_error(name, "--port: must be between 0 and 65535");
  if (s.connections < 1 || s.connections > 1'000'000) coop_app::usage_error(name, "--connections: must be at least 1");
  if (s.size < 1 || s.size > (std::size_t{1} << 30)) coop_app::usage_error(name, "--size: must be 1 byte to 1 GiB");
  if (s.threads < 1 || s.threads > 256) coop_app::usage_error(name, "--threads: must be between 1 and 256");
  if (s.connect_concurrency < 1) coop_app::usage_error(name, "--connect-concurrency: must be at least 1");
  if (!(s.rate >= 0) || s.rate > 1e9) coop_app::usage_error(name, "--rate: must be between 0 and 1e9 requests/s");
  if (s.stream && s.rate > 0) coop_app::usage_error(name, "--stream and --rate exclude each other");
  s.duration = seconds_option("duration", duration, 0.001);
  s.warmup = seconds_option("warmup", warmup, 0);
  s.request_timeout = seconds_option("request-timeout", request_timeout, 0.001);
  s.connect_timeout = seconds_option("connect-timeout", connect_timeout, 0.001);
  s.server = resolve(s.host, port);
  return s;
}

struct totals {
  std::uint64_t completed = 0, errors = 0, connected = 0, connect_failures = 0, connect_retries = 0, attempted = 0;
};

totals sum(const std::vector<std::unique_ptr<thread_context>>& contexts) {
  totals t;
  for (auto& c : contexts) {
    const thread_results& r = c->results;
    t.completed += r.completed.load(std::memory_order_relaxed);
    t.errors += r.errors.load(std::memory_order_relaxed);
    t.connected += r.connected.load(std::memory_order_relaxed);
    t.connect_failures += r.connect_failures.load(std::memory_order_relaxed);
    t.connect_retries += r.connect_retries.load(std::memory_order_relaxed);
    t.attempted += r.attempted.load(std::memory_order_relaxed);
  }
  return t;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string json_string(const std::string& v) {
  std::string out = "\"";
  for (char ch : v) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) continue;
    out += ch;
  }
  return out + "\"";
}

} // namespace

int main(int argc, char** argv) {
  settings s = parse_settings(argc, argv);
  coop_app::raise_open_file_limit();
  const bool terminal = ::isatty(STDOUT_FILENO) != 0;
  const bool plain_progress = !terminal && !s.json;

  std::vector<std::unique_ptr<thread_context>> contexts;
  for (unsigned i = 0; i < s.threads; ++i)
    contexts.push_back(std::make_unique<thread_context>(std::max<std::size_t>(1, s.connect_concurrency / s.threads)));
  schedule when{};

  coop::runtime rt(s.threads);
  // Each thread starts its share of the connections, then waits for them.
  auto connect_started = clock::now();
  std::vector<coop::task<void>> shares;
  for (unsigned i = 0; i < s.threads; ++i)
    shares.push_back(rt.spawn_on(i, [&s, &when, &ctx = *contexts[i], i, threads = s.threads] {
      std::vector<coop::task<void>> clients;
      for (std::size_t c = i; c < s.connections; c += threads)
        clients.push_back(coop::spawn([&s, &when, &ctx, c] { client(s, when, ctx, c); }));
      coop::join_all(clients);
      for (auto& t : clients)
        t.get();
    }));

  // Wait until every connection is open (or failed for good), then go.
  for (auto last_shown = clock::now(); sum(contexts).attempted < s.connections;) {
    std::this_thread::sleep_for(10ms);
    if (terminal && clock::now() - last_shown >= 1s) {
      totals t = sum(contexts);
      std::cout << "\rconnecting: " << t.connected << "/" << s.connections << " open, " << t.connect_failures
                << " failed, " << t.connect_retries << " retries   " << std::flush;
      last_shown = clock::now();
    }
  }
  auto connect_time = clock::now() - connect_started;
  auto start = clock::now();
  when.window_begin = start + s.warmup;
  when.end = when.window_begin + s.duration;
  for (auto& c : contexts)
    c->gate.close(); // happens-before every fiber's pop() returning

  // Progress, once a second, until every connection has finished.
  std::uint64_t last_completed = sum(contexts).completed;
  // The server's CPU time at the window's edges (sampled by this thread).
  double server_cpu_begin = -1, server_cpu_end = -1;
  bool window_begun = false, window_ended = false;
  auto next_report = start + 1s;
  auto all_done = [&] {
    for (auto& t : shares)
      if (!t.done()) return false;
    return true;
  };
  while (!all_done()) {
    auto now = clock::now();
    if (s.server_pid != 0 && !window_begun && now >= when.window_begin) {
      server_cpu_begin = process_cpu_seconds(s.server_pid);
      window_begun = true;
    }
    if (s.server_pid != 0 && !window_ended && now >= when.end) {
      server_cpu_end = process_cpu_seconds(s.server_pid);
      window_ended = true;
    }
    auto next_edge = !window_begun ? when.window_begin : !window_ended ? when.end : now + 20ms;
    std::this_thread::sleep_until(std::min(now + 20ms, std::max(next_edge, now + 100us)));
    now = clock::now();
    if (now < next_report || !(terminal || plain_progress)) continue;
    totals t = sum(contexts);
    double elapsed = seconds_of(now - start);
    std::ostringstream line;
    line << fixed(elapsed, 0) << "s " << (now < when.window_begin ? "warm-up " : "") << (t.completed - last_completed)
         << " req/s, " << fixed(double(t.completed - last_completed) * double(s.size) / 1e6, 2) << " MB/s, " << t.errors
         << " errors, " << t.connected << " connections";
    if (terminal)
      std::cout << "\r" << line.str() << "      " << std::flush;
    else
      std::cout << line.str() << "\n" << std::flush;
    last_completed = t.completed;
    next_report += 1s;
  }
  if (terminal) std::cout << "\n";
  if (s.server_pid != 0 && window_begun && !window_ended) server_cpu_end = process_cpu_seconds(s.server_pid);

  int status = 0;
  try {
    for (auto& t : shares)
      t.get();
  } catch (const std::exception& e) {
    std::cerr << name << ": " << e.what() << "\n";
    status = 1;
  }

  histogram latency;
  totals t = sum(contexts);
  std::uint64_t requests = 0, mismatches = 0, timeouts = 0;
  std::string first_error;
  for (auto& c : contexts) {
    latency.merge(c->results.latency);
    requests += c->results.requests;
    mismatches += c->results.mismatches;
    timeouts += c->results.timeouts;
    if (first_error.empty()) first_error = c->results.first_error;
  }
  double seconds = seconds_of(s.duration);
  double rps = double(requests) / seconds;
  double mbps = double(requests) * double(s.size) / seconds / 1e6;
  auto us = [](std::uint64_t ns) { return double(ns) / 1000.0; };
  if (t.errors != 0 || t.connect_failures != 0) status = 1;
  double server_cpu_us = -1; // per request in the window
  if (server_cpu_begin >= 0 && server_cpu_end >= 0 && requests > 0)
    server_cpu_us = (server_cpu_end - server_cpu_begin) * 1e6 / double(requests);

  if (s.json) {
    std::cout << "{\"host\": " << json_string(s.host) << ", \"port\": " << s.server.port()
              << ", \"connections\": " << s.connections << ", \"size\": " << s.size << ", \"threads\": " << s.threads
              << ", \"duration_s\": " << seconds << ", \"warmup_s\": " << seconds_of(s.warmup)
              << ", \"requests\": " << requests << ", \"requests_per_sec\": " << fixed(rps, 1)
              << ", \"mb_per_sec\": " << fixed(mbps, 3)
              << ", \"latency_us\": {\"p50\": " << fixed(us(latency.percentile(0.50)), 1)
              << ", \"p90\": " << fixed(us(latency.percentile(0.90)), 1)
              << ", \"p99\": " << fixed(us(latency.percentile(0.99)), 1) << ", \"max\": " << fixed(us(latency.max()), 1)
              << "}, \"errors\": " << t.errors << ", \"mismatches\": " << mismatches << ", \"timeouts\": " << timeouts
              << ", \"connected\": " << t.connected << ", \"connect_failures\": " << t.connect_failures
              << ", \"connect_retries\": " << t.connect_retries
              << ", \"connect_time_s\": " << fixed(seconds_of(connect_time), 3)
              << ", \"server_cpu_us_per_request\": " << fixed(server_cpu_us, 2)
              << ", \"first_error\": " << json_string(first_error) << "}" << std::endl;
  } else {
    std::cout << "server:           " << s.server << "\n"
              << "connections:      " << t.connected << " of " << s.connections << " opened in "
              << fixed(seconds_of(connect_time), 2) << " s (" << t.connect_failures << " failed, " << t.connect_retries
              << " retries)\n"
              << "message size:     " << s.size << " bytes\n"
              << "measured:         " << fixed(seconds, 2) << " s after " << fixed(seconds_of(s.warmup), 2)
              << " s warm-up\n"
              << "requests:         " << requests << "\n"
              << "requests/s:       " << fixed(rps, 1) << "\n"
              << "MB/s:             " << fixed(mbps, 3) << "\n"
              << "latency p50:      " << fixed(us(latency.percentile(0.50)), 1) << " us\n"
              << "latency p90:      " << fixed(us(latency.percentile(0.90)), 1) << " us\n"
              << "latency p99:      " << fixed(us(latency.percentile(0.99)), 1) << " us\n"
              << "latency max:      " << fixed(us(latency.max()), 1) << " us\n"
              << "errors:           " << t.errors << " (" << mismatches << " mismatched echoes, " << timeouts
              << " timeouts)\n";
    if (server_cpu_us >= 0) std::cout << "server CPU:       " << fixed(server_cpu_us, 2) << " us per request\n";
    if (!first_error.empty()) std::cout << "first error:      " << first_error << "\n";
    std::cout << std::flush;
  }
  return status;
}
