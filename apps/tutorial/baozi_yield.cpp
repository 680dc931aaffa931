// tutorial_baozi_yield — the baozi tutorial's yield version of the baozi
// (steamed bun) shop: one producer feeds two consumer generators by turns. It
// is concurrency in one thread without locks, but not yet what the baozi
// tutorial asks of coroutines: nothing switches by itself when a task meets I/O
// (see tutorial_gevent).
//
//   def consumer(name):
//       print("--->starting eating baozi...")
//       while True:
//           new_baozi = yield
//           print("[%s] is eating baozi %s" % (name, new_baozi))
//
//   def producer():
//       r = con.next()
//       r = con2.next()
//       n = 0
//       while n < 5:
//           n += 1
//           con.send(n)
//           con2.send(n)
//           print("\033[32;1m[producer]\033[0m is making baozi %s" % n)
//
//   con = consumer("c1")
//   con2 = consumer("c2")
//   p = producer()
//
// Like the Python program, this prints "[producer]" between terminal colour
// codes (bold green), which a terminal shows as in the tutorial's output.
#include <coop/generator.hpp>

#include <iostream>
#include <string>
#include <variant>

// Yields nothing useful (Python's bare `yield`), receives a baozi number.
using consumer_t = coop::generator<std::monostate, int>;

consumer_t consumer(std::string name) {
  return consumer_t([name](auto& co) {
    std::cout << "--->starting eating baozi...\n";
    while (true) {
      int new_baozi = co.yield(std::monostate{}).value();
      std::cout << "[" << name << "] is eating baozi " << new_baozi << '\n';
    }
  });
}

void producer(consumer_t& con, consumer_t& con2) {
  con.next();
  con2.next();
  int n = 0;
  while (n < 5) {
    n += 1;
    con.send(n);
    con2.send(n);
    std::cout << "\033[32;1m[producer]\033[0m is making baozi " << n << '\n';
  }
}

int main() {
  consumer_t con = consumer("c1");
  consumer_t con2 = consumer("c2");
  producer(con, con2);
}
