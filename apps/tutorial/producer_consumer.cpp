// tutorial_producer_consumer — from the coroutine primer and the asyncio
// chapter: producer and consumer hand control to each other with send() and
// yield, in one thread, without locks.
//
//   def consumer():
//       r = ''
//       while True:
//           n = yield r
//           if not n:
//               return
//           print('[CONSUMER] Consuming %s...' % n)
//           time.sleep(2)               # coroutine primer only
//           r = '200 OK'
//
//   def produce(c):
//       c.send(None)                    # coroutine primer: c.next()
//       n = 0
//       while n < 5:
//           n = n + 1
//           print('[PRODUCER] Producing %s...' % n)
//           r = c.send(n)
//           print('[PRODUCER] Consumer return: %s' % r)
//       c.close()
//
//   c = consumer()
//   produce(c)
#include <coop/generator.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

// Yields a status string, receives the number to consume.
using consumer_t = coop::generator<std::string, int>;

consumer_t consumer() {
  return consumer_t([](auto& co) {
    std::string r;
    while (true) {
      std::optional<int> n = co.yield(r);
      if (!n || *n == 0) return;
      std::cout << "[CONSUMER] Consuming " << *n << "...\n";
      std::this_thread::sleep_for(std::chrono::milliseconds(20)); // time.sleep(2), shortened
      r = "200 OK";
    }
  });
}

void produce(consumer_t& c) {
  c.next(); // start the generator
  int n = 0;
  while (n < 5) {
    n = n + 1;
    std::cout << "[PRODUCER] Producing " << n << "...\n";
    std::optional<std::string> r = c.send(n);
    std::cout << "[PRODUCER] Consumer return: " << r.value() << '\n';
  }
  c.close();
}

int main() {
  consumer_t c = consumer();
  produce(c);
}
