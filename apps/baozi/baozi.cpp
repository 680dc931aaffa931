// baozi — the baozi tutorial's producer/consumer story ("yield实现简单的协程")
// told with fibers and a coop::channel instead of generators and send().
//
//   def consumer(name):
//       print("--->starting eating baozi...")
//       while True:
//           new_baozi = yield
//           print("[%s] is eating baozi %s" % (name, new_baozi))
//
//   def producer():
//       r = con.next(); r = con2.next()
//       n = 0
//       while n < 5:
//           n += 1
//           con.send(n); con2.send(n)
//           print("[producer] is making baozi %s" % n)
//
// How the story maps onto a channel. In the tutorial, "baozi 1" reaches both
// c1 and c2; through a channel every item goes to exactly one receiver. So we
// read the story as a steamer shared by all consumers (one channel, consumers
// compete for what comes out) and a producer that works in rounds: in round n
// it makes one baozi per consumer, all numbered n, and only then reports
// "[producer] is making baozi n". Each baozi also carries a serial number that
// is unique, so the program can check at the end that every baozi made was
// eaten exactly once — nothing lost, nothing eaten twice.
//
// Why the default run prints the tutorial's lines in its order, every time:
// on one runtime thread, c1 and c2 start first and wait on the empty channel in
// that order; a push hands its baozi straight to the longest-waiting consumer
// (FIFO), so c1 gets the first baozi of a round and c2 the second. As
// `con.send(n)` only returns once the consumer has eaten, the producer yields
// after each round, so the consumers eat before the producer reports. With
// --threads > 1 the consumers run in parallel on other threads: the lines
// interleave differently from run to run, but the totals must still match.
#include <app.hpp>
#include <coop/coop.hpp>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

namespace {

struct baozi {
  std::uint64_t serial; ///< unique: 0, 1, 2, ... in the order they were made
  unsigned round;       ///< the number the story prints: 1 .. rounds
};

/// One line written with a single call, so lines of consumers on different
/// threads do not mix within a line.
void say(bool quiet, const std::string& line) {
  if (!quiet) std::cout << (line + '\n');
}

/// Eats until the steamer is closed and empty; returns the serial numbers eaten.
std::vector<std::uint64_t> consumer(const std::string& name, coop::channel<baozi>& steamer, bool quiet) {
  say(quiet, "--->starting eating baozi...");
  std::vector<std::uint64_t> eaten;
  for (const baozi& b : steamer) {
    say(quiet, "[" + name + "] is eating baozi " + std::to_string(b.round));
    eaten.push_back(b.serial);
  }
  return eaten;
}

/// Makes `per_round` baozi in each of `rounds` rounds; returns how many it made.
std::uint64_t producer(coop::channel<baozi>& steamer, unsigned rounds, unsigned per_round, bool quiet) {
  std::uint64_t made = 0;
  for (unsigned n = 1; n <= rounds; ++n) {
    for (unsigned i = 0; i < per_round; ++i) {
      if (steamer.push(baozi{made, n}) != coop::channel_status::success) return made;
      ++made;
    }
    coop::this_fiber::yield(); // as send() does: let the consumers eat first
    say(quiet, "[producer] is making baozi " + std::to_string(n));
  }
  steamer.close(); // the consumers' loops end once they have eaten the rest
  return made;
}

} // namespace

int main(int argc, char** argv) {
  namespace po = coop_app::po;
  const std::string name = "baozi";
  po::options_description options("Options");
  options.add_options()                                                                  //
      ("consumers", po::value<int>()->default_value(2), "consumer fibers (c1, c2, ...)") //
      ("baozi", po::value<int>()->default_value(5),
       "rounds; each round the producer makes one baozi per consumer, numbered like the round") //
      ("capacity", po::value<int>()->default_value(0),
       "baozi the steamer (channel) holds; 0 = hand each one over directly") //
      ("threads", po::value<int>()->default_value(1),
       "runtime threads; consumer i runs on thread i % N, the producer on thread 0") //
      ("quiet,q", po::bool_switch(), "print only the summary line");
  auto vm = coop_app::parse(
      argc, argv, name, "The baozi tutorial's producer and consumers on a coop channel; ends with a checked summary.",
      options);
  // Read as int and range-checked here: program_options would read "-1" as a huge unsigned.
  auto count = [&](const char* key, int min, int max) {
    int v = vm[key].as<int>();
    if (v < min || v > max)
      coop_app::usage_error(name,
                            "--" + std::string(key) + " must be " + std::to_string(min) + ".." + std::to_string(max));
    return static_cast<unsigned>(v);
  };
  const unsigned consumers = count("consumers", 1, 100'000);
  const unsigned rounds = count("baozi", 0, 100'000'000);
  const unsigned capacity = count("capacity", 0, 1'000'000);
  const unsigned threads = count("threads", 1, 256);
  const bool quiet = vm["quiet"].as<bool>();
  if (std::uint64_t(consumers) * rounds > 100'000'000) coop_app::usage_error(name, "--consumers x --baozi too large");

  coop::channel<baozi> steamer(capacity); // declared first: outlives every fiber
  std::uint64_t made = 0;
  std::vector<std::vector<std::uint64_t>> eaten_by(consumers);
  {
    coop::runtime rt(threads);
    // Consumers first, so that they wait on the steamer (in order c1, c2, ...)
    // before the producer starts: the tutorial's con.next() calls.
    std::vector<coop::task<std::vector<std::uint64_t>>> eaters;
    for (unsigned i = 0; i < consumers; ++i)
      eaters.push_back(rt.spawn_on(
          i % threads, [&steamer, i, quiet] { return consumer("c" + std::to_string(i + 1), steamer, quiet); }));
    auto maker = rt.spawn_on(0, [&] { return producer(steamer, rounds, consumers, quiet); });
    made = maker.get(); // a plain thread may wait on a task: it blocks until done
    for (unsigned i = 0; i < consumers; ++i)
      eaten_by[i] = eaters[i].get();
  }

  // The check: the serial numbers eaten, together, are exactly 0 .. made-1.
  std::vector<std::uint64_t> all;
  std::string per_consumer;
  std::size_t fewest = eaten_by[0].size(), most = 0;
  for (unsigned i = 0; i < consumers; ++i) {
    all.insert(all.end(), eaten_by[i].begin(), eaten_by[i].end());
    fewest = std::min(fewest, eaten_by[i].size());
    most = std::max(most, eaten_by[i].size());
    per_consumer += (i ? ", c" : "c") + std::to_string(i + 1) + ": " + std::to_string(eaten_by[i].size());
  }
  if (consumers > 8) // keep the line short: the spread only
    per_consumer = "each consumer " + std::to_string(fewest) + " to " + std::to_string(most);
  std::sort(all.begin(), all.end());
  std::uint64_t twice = 0, lost = 0;
  for (std::size_t i = 1; i < all.size(); ++i)
    twice += all[i] == all[i - 1];
  for (std::uint64_t s = 0, j = 0; s < made; ++s) {
    while (j < all.size() && all[j] < s)
      ++j;
    lost += !(j < all.size() && all[j] == s);
  }
  const bool ok = made == std::uint64_t(consumers) * rounds && all.size() == made && twice == 0 && lost == 0;
  std::cout << "summary: made " << made << " baozi, eaten " << all.size() << " (" << per_consumer << "), lost " << lost
            << ", eaten twice " << twice << (ok ? ": ok" : ": MISMATCH") << std::endl;
  return ok ? 0 : 1;
}
