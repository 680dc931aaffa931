// apps/coopctl/main.cpp — coopctl, a command-line client of the admin
// endpoint that a coop program serves (run_options::admin_socket, COOP_ADMIN):
//
//   coopctl SOCKET metrics                          /metrics as it comes
//   coopctl SOCKET fibers [--json] [--filter K=V]   /fibers as a table (or JSON)
//   coopctl SOCKET top [--interval S] [--iterations N]
//                                                   /metrics every S seconds:
//                                                   fibers by state, rates
//
// SOCKET is read as the server reads it: a Unix socket path when it has a '/'
// or no ':', else a TCP HOST:PORT (127.0.0.1:9100, [::1]:9100, localhost:9100).
// A client only (it does not link coop): one HTTP/1.1 GET per connection on
// Beast, each step within `io_timeout`. Exit status: 0 done, 1 the endpoint
// could not be asked or answered badly (one line "coopctl: SOCKET: ..."),
// 2 bad arguments (one line "coopctl: error: ... (try --help)").
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/src.hpp> // Boost.JSON header-only: in this one .cpp
#include <boost/program_options.hpp>

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
namespace po = boost::program_options;
using clock_type = std::chrono::steady_clock;

constexpr auto io_timeout = std::chrono::seconds(5);
const char* const name = "coopctl";

/// Exits 2 with "coopctl: error: MESSAGE (try --help)".
[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << name << ": error: " << message << " (try --help)" << std::endl;
  std::exit(2);
}

/// A failure to get an answer from the endpoint: exit status 1.
struct endpoint_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// --- Talking to the endpoint --------------------------------------------------

/// Where the endpoint is: a Unix socket path or a TCP endpoint.
struct address {
  std::string path; ///< empty for TCP
  asio::ip::tcp::endpoint tcp;
};

/// SOCKET by the server's rule; exits 2 when a HOST:PORT is malformed.
address parse_address(const std::string& socket) {
  if (socket.find('/') != std::string::npos || socket.find(':') == std::string::npos) return {socket, {}};
  const auto colon = socket.rfind(':');
  std::string host = socket.substr(0, colon);
  const std::string port = socket.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  unsigned number = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || number == 0 || number > 65535)
    usage_error("SOCKET \"" + socket + "\": the port is not a number from 1 to 65535");
  boost::system::error_code bad;
  const auto ip = asio::ip::make_address(host, bad);
  if (bad) usage_error("SOCKET \"" + socket + "\": \"" + host + "\" is not an IP address (or localhost)");
  return {"", {ip, static_cast<unsigned short>(number)}};
}

/// Runs one asynchronous step `start(handler)` to its end; throws
/// endpoint_error "WHAT: why" when it fails (or the stream's timer ran out).
template <class Start> void step(asio::io_context& io, const char* what, Start start) {
  boost::system::error_code result;
  start([&result](boost::system::error_code ec, auto&&...) { result = ec; });
  io.restart();
  io.run();
  if (result == beast::error::timeout)
    throw endpoint_error(std::string(what) + ": no answer within " + std::to_string(io_timeout.count()) + " s");
  if (result) throw endpoint_error(std::string(what) + ": " + result.message());
}

/// The body of `GET target`; throws endpoint_error unless the status is 200.
template <class Protocol> std::string get(const typename Protocol::endpoint& at, const std::string& target) {
  asio::io_context io;
  beast::basic_stream<Protocol> stream(io);
  http::request<http::empty_body> req(http::verb::get, target, 11);
  req.set(http::field::host, "localhost");
  req.set(http::field::user_agent, name);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max()); // /fibers of a big program is big
  stream.expires_after(io_timeout);
  step(io, "connect", [&](auto done) { stream.async_connect(at, done); });
  stream.expires_after(io_timeout);
  step(io, "sending the request", [&](auto done) { http::async_write(stream, req, done); });
  stream.expires_after(io_timeout);
  step(io, "reading the response", [&](auto done) { http::async_read(stream, buffer, parser, done); });
  const auto& res = parser.get();
  if (res.result() != http::status::ok)
    throw endpoint_error("GET " + target + ": " + std::to_string(res.result_int()) + " " + std::string(res.reason()));
  return res.body();
}

std::string get(const address& at, const std::string& target) {
  if (!at.path.empty()) return get<asio::local::stream_protocol>(at.path, target);
  return get<asio::ip::tcp>(at.tcp, target);
}

// --- JSON -----------------------------------------------------------------------

std::string number_text(double v) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v); // shortest: 1.032, not 1.032E0
  return ec == std::errc() ? std::string(buf, end) : json::serialize(json::value(v));
}

/// `v` as JSON, numbers as the server wrote them.
std::string json_text(const json::value& v) {
  if (v.is_double()) return number_text(v.get_double());
  std::string out;
  if (const json::object* o = v.if_object()) {
    for (const auto& [key, field] : *o)
      out += (out.empty() ? "{" : ",") + json::serialize(json::string(key)) + ":" + json_text(field);
    return out.empty() ? "{}" : out + "}";
  }
  if (const json::array* a = v.if_array()) {
    for (const json::value& item : *a)
      out += (out.empty() ? "[" : ",") + json_text(item);
    return out.empty() ? "[]" : out + "]";
  }
  return json::serialize(v);
}

/// A field as text: a string's characters, a number as written; nullopt when absent.
std::optional<std::string> field_text(const json::object& fiber, const char* key) {
  const json::value* v = fiber.if_contains(key);
  if (!v) return std::nullopt;
  if (const json::string* s = v->if_string()) return std::string(s->data(), s->size());
  return json_text(*v);
}

// --- fibers ----------------------------------------------------------------------

const char* const fiber_fields[] = {"id", "name", "runtime", "thread", "state", "wait", "what", "fd", "fiber"};

struct filter {
  std::string key, value;
};

/// "KEY=VALUE" with a known KEY; exits 2 otherwise.
filter parse_filter(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos) usage_error("--filter \"" + text + "\": expected KEY=VALUE");
  filter f{text.substr(0, eq), text.substr(eq + 1)};
  if (std::find(std::begin(fiber_fields), std::end(fiber_fields), f.key) == std::end(fiber_fields))
    usage_error("--filter \"" + text + "\": unknown field \"" + f.key +
                "\" (id, name, runtime, thread, state, wait, what, fd, fiber)");
  return f;
}

/// /fibers parsed: an array of objects, else endpoint_error.
std::vector<json::object> parse_fibers(const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) throw endpoint_error("GET /fibers: malformed JSON: " + ec.message());
  std::vector<json::object> fibers;
  if (!v.is_array()) throw endpoint_error("GET /fibers: not a JSON array");
  for (json::value& item : v.get_array()) {
    if (!item.is_object()) throw endpoint_error("GET /fibers: an entry is not a JSON object");
    fibers.push_back(std::move(item.get_object()));
  }
  return fibers;
}

int fibers_command(const address& at, const std::vector<filter>& filters, bool as_json) {
  const std::vector<json::object> all = parse_fibers(get(at, "/fibers"));
  std::vector<const json::object*> shown;
  for (const json::object& f : all)
    if (std::all_of(filters.begin(), filters.end(),
                    [&f](const filter& x) { return field_text(f, x.key.c_str()) == x.value; }))
      shown.push_back(&f);
  if (as_json) { // the server's layout: one fiber a line
    std::string out = "[";
    for (const json::object* f : shown)
      out += (f == shown.front() ? "\n" : ",\n") + json_text(*f);
    std::fputs((out + "\n]\n").c_str(), stdout);
    return 0;
  }
  std::printf("%7s %-7s %-8s %-8s %5s %10s  %-16s %s\n", "ID", "RT/TH", "STATE", "WAIT", "FD", "WAITING", "WHAT",
              "NAME");
  std::map<std::string, int> by_state;
  for (const json::object* f : shown) {
    auto text = [f](const char* key) { return field_text(*f, key).value_or("-"); };
    const std::string state = text("state");
    ++by_state[state];
    std::string what = text("what");
    if (auto joined = field_text(*f, "fiber")) what += " (fiber " + *joined + ")";
    std::string waiting = "-";
    if (const json::value* s = f->if_contains("waiting_seconds"); s && s->is_number()) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.3fs", s->to_number<double>());
      waiting = buf;
    }
    const std::string fiber_name = field_text(*f, "name").value_or("");
    if (!fiber_name.empty()) what += std::string(what.size() < 16 ? 16 - what.size() : 0, ' ') + " " + fiber_name;
    std::printf("%7s %-7s %-8s %-8s %5s %10s  %s\n", text("id").c_str(),
                (text("runtime") + "/" + text("thread")).c_str(), state.c_str(), text("wait").c_str(),
                text("fd").c_str(), waiting.c_str(), what.c_str());
    // Where it waits in the program: the innermost frame, on a line of its own.
    if (const json::value* where = f->if_contains("where"); where && where->is_array() && !where->as_array().empty())
      if (const json::value& frame = where->as_array().front(); frame.is_string())
        std::printf("%17s%s\n", "at ", std::string(frame.as_string()).c_str());
  }
  std::string states;
  for (const auto& [state, n] : by_state)
    states += (states.empty() ? ": " : ", ") + std::to_string(n) + " " + state;
  std::printf("%zu of %zu fibers%s\n", shown.size(), all.size(), states.c_str());
  return 0;
}

// --- top -------------------------------------------------------------------------

/// One line of Prometheus text: `name{k="v",...} value`.
struct sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

/// Parses `line`; false for a comment, a blank or a line it cannot read.
bool parse_sample(const std::string& line, sample& out) {
  std::size_t i = line.find_first_of("{ ");
  if (line.empty() || line[0] == '#' || i == std::string::npos || i == 0) return false;
  out.name = line.substr(0, i);
  out.labels.clear();
  if (line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const auto eq = line.find('=', i);
      if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') return false;
      std::string key = line.substr(i, eq - i), value;
      for (i = eq + 2; i < line.size() && line[i] != '"'; ++i) {
        if (line[i] == '\\' && i + 1 < line.size()) { // \\, \" or \n
          ++i;
          value += line[i] == 'n' ? '\n' : line[i];
        } else {
          value += line[i];
        }
      }
      if (i >= line.size()) return false;
      out.labels[key] = value;
      if (++i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return false;
    ++i;
  }
  const char* start = line.c_str() + i;
  char* end = nullptr;
  out.value = std::strtod(start, &end);
  return end != start;
}

/// The counters `top` shows as rates, with their column titles.
const std::pair<const char*, const char*> rate_columns[] = {
    {"coop_context_switches_total", "SWITCHES/s"}, {"coop_parks_total", "PARKS/s"},
    {"coop_reactor_visits_total", "REACTOR/s"},    {"coop_reactor_handlers_total", "HANDLERS/s"},
    {"coop_fibers_spawned_total", "SPAWNED/s"},    {"coop_serve_accepted_total", "ACCEPTED/s"},
};

struct thread_sample {
  double fibers = 0, running = 0, ready = 0;
  std::map<std::string, double> parked;   ///< by wait kind
  std::map<std::string, double> counters; ///< those of rate_columns
};

/// What `top` shows of one /metrics.
struct snapshot {
  clock_type::time_point at;
  std::map<std::pair<long, long>, thread_sample> threads; ///< by (runtime, thread)
  std::map<std::string, double> process;                  ///< samples without labels (offload)
};

snapshot take_snapshot(const address& at) {
  const std::string text = get(at, "/metrics");
  snapshot s;
  s.at = clock_type::now();
  std::size_t begin = 0;
  sample x;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const bool ok = parse_sample(text.substr(begin, end - begin), x);
    begin = end + 1;
    if (!ok) continue;
    if (x.labels.empty()) {
      s.process[x.name] = x.value;
      continue;
    }
    if (!x.labels.count("runtime") || !x.labels.count("thread")) continue;
    thread_sample& t = s.threads[{std::atol(x.labels["runtime"].c_str()), std::atol(x.labels["thread"].c_str())}];
    if (x.name == "coop_fibers") t.fibers = x.value;
    if (x.name == "coop_fibers_running") t.running = x.value;
    if (x.name == "coop_fibers_ready") t.ready = x.value;
    if (x.name == "coop_fibers_parked") t.parked[x.labels["wait"]] += x.value;
    for (const auto& [counter, title] : rate_columns)
      if (x.name == counter) t.counters[counter] = x.value;
  }
  return s;
}

/// Counter `key`'s growth per second from `before` to `now`: "12.5", or "-"
/// without an earlier sample (or when the counter is missing or went back).
std::string rate(const std::map<std::string, double>& now, const std::map<std::string, double>* before, const char* key,
                 double seconds) {
  const auto it = now.find(key);
  if (it == now.end() || !before || !before->count(key) || seconds <= 0 || it->second < before->at(key)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", (it->second - before->at(key)) / seconds);
  return buf;
}

void print_top(const std::string& socket, const snapshot& now, const snapshot* before, long long refresh,
               double interval) {
  const double seconds = before ? std::chrono::duration<double>(now.at - before->at).count() : 0;
  double fibers = 0;
  for (const auto& [key, t] : now.threads)
    fibers += t.fibers;
  std::printf("coopctl top: %s: %zu runtime threads, %.0f fibers; refresh %lld, every %g s\n", socket.c_str(),
              now.threads.size(), fibers, refresh, interval);
  std::printf("%-7s %7s %7s %7s %7s", "RT/TH", "FIBERS", "RUNNING", "READY", "PARKED");
  for (const auto& [counter, title] : rate_columns)
    std::printf(" %11s", title);
  std::printf("\n");
  for (const auto& [key, t] : now.threads) {
    std::vector<std::pair<double, std::string>> parked; // most first
    double total = 0;
    for (const auto& [kind, n] : t.parked) {
      total += n;
      if (n > 0) parked.emplace_back(-n, kind);
    }
    std::sort(parked.begin(), parked.end());
    const std::string id = std::to_string(key.first) + "/" + std::to_string(key.second);
    std::printf("%-7s %7.0f %7.0f %7.0f %7.0f", id.c_str(), t.fibers, t.running, t.ready, total);
    const thread_sample* old = nullptr;
    if (before)
      if (auto it = before->threads.find(key); it != before->threads.end()) old = &it->second;
    for (const auto& [counter, title] : rate_columns)
      std::printf(" %11s", rate(t.counters, old ? &old->counters : nullptr, counter, seconds).c_str());
    std::string kinds;
    for (const auto& [n, kind] : parked)
      kinds += (kinds.empty() ? "" : ", ") + kind + " " + std::to_string(static_cast<long long>(-n));
    std::printf("\n        parked: %s\n", kinds.empty() ? "none" : kinds.c_str());
  }
  auto process = [&now](const char* key) { return now.process.count(key) ? now.process.at(key) : 0.0; };
  std::printf(
      "offload: %.0f queued, %.0f running, %s completed/s, %.0f threads\n", process("coop_offload_jobs_queued"),
      process("coop_offload_jobs_running"),
      rate(now.process, before ? &before->process : nullptr, "coop_offload_jobs_completed_total", seconds).c_str(),
      process("coop_offload_threads"));
}

int top_command(const std::string& socket, const address& at, double interval, long long iterations) {
  const bool terminal = ::isatty(STDOUT_FILENO);
  const auto period = std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(interval));
  std::optional<snapshot> before;
  auto next = clock_type::now();
  for (long long refresh = 1; iterations == 0 || refresh <= iterations; ++refresh) {
    if (refresh > 1) {
      next = std::max(next + period, clock_type::now());
      std::this_thread::sleep_until(next);
    }
    snapshot now = take_snapshot(at);
    if (terminal)
      std::printf("\x1b[H\x1b[2J");
    else if (refresh > 1)
      std::printf("\n");
    print_top(socket, now, before ? &*before : nullptr, refresh, interval);
    std::fflush(stdout);
    before = std::move(now);
  }
  return 0;
}

const char* const summary =
    "A client of the admin endpoint of a coop program (run_options::admin_socket, COOP_ADMIN).\n"
    "\n"
    "SOCKET: a Unix socket path (it has a '/' or no ':') or HOST:PORT (127.0.0.1:9100,\n"
    "[::1]:9100, localhost:9100).\n"
    "COMMAND:\n"
    "  metrics   print /metrics (Prometheus text) as it comes\n"
    "  fibers    list the fibers (/fibers) as a table, or as JSON with --json\n"
    "  top       every --interval seconds: fibers by state and the busiest counters\n"
    "            as rates, per runtime thread (the screen is cleared on a terminal)\n"
    "\n"
    "Exit status: 0 done, 1 the endpoint did not answer (or answered badly), 2 bad arguments.";

} // namespace

int main(int argc, char** argv) {
  po::options_description options("Options");
  options.add_options()                                   //
      ("json", "fibers: print the JSON array (filtered)") //
      ("filter", po::value<std::vector<std::string>>()->value_name("KEY=VALUE"),
       "fibers: keep the fibers whose field KEY is VALUE (id, name, runtime, thread, state, wait, what, fd, "
       "fiber); repeat to require several") //
      ("interval", po::value<double>()->value_name("SECONDS")->default_value(1.0),
       "top: seconds between refreshes")("iterations", po::value<long long>()->value_name("N")->default_value(0),
                                         "top: stop after N refreshes (0: never)") //
      ("help,h", "show this help and exit");
  po::options_description words;
  words.add_options()("socket", po::value<std::string>())("command", po::value<std::string>());
  po::options_description all;
  all.add(options).add(words);
  po::positional_options_description positional;
  positional.add("socket", 1).add("command", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    if (vm.count("help")) {
      std::cout << "Usage: " << name << " SOCKET COMMAND [options]\n" << summary << "\n\n" << options << std::flush;
      return 0;
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    usage_error(e.what());
  }
  if (!vm.count("socket")) usage_error("missing SOCKET and COMMAND");
  if (!vm.count("command")) usage_error("missing COMMAND: metrics, fibers or top");
  const std::string socket = vm["socket"].as<std::string>();
  const std::string command = vm["command"].as<std::string>();
  if (command != "metrics" && command != "fibers" && command != "top")
    usage_error("unknown COMMAND \"" + command + "\": expected metrics, fibers or top");
  for (const char* option : {"json", "filter"})
    if (vm.count(option) && command != "fibers") usage_error(std::string("--") + option + " is for fibers only");
  for (const char* option : {"interval", "iterations"})
    if (!vm[option].defaulted() && command != "top") usage_error(std::string("--") + option + " is for top only");
  const double interval = vm["interval"].as<double>();
  if (!(interval > 0) || interval > 1e6) usage_error("--interval must be more than 0 and at most 1e6 seconds");
  const long long iterations = vm["iterations"].as<long long>();
  if (iterations < 0) usage_error("--iterations must be 0 (no end) or more");
  std::vector<filter> filters;
  if (vm.count("filter"))
    for (const std::string& f : vm["filter"].as<std::vector<std::string>>())
      filters.push_back(parse_filter(f));
  const address at = parse_address(socket);

  try {
    if (command == "metrics") {
      std::fputs(get(at, "/metrics").c_str(), stdout);
      return 0;
    }
    if (command == "fibers") return fibers_command(at, filters, vm.count("json") > 0);
    return top_command(socket, at, interval, iterations);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::cerr << name << ": " << socket << ": " << e.what() << std::endl;
    return 1;
  }
}
