// tutorial_consumer_status — from the “Python之coroutine” tutorial: a producer
// generator drives a consumer generator with send() and yields the consumer's
// status to the main program, which stops the whole chain when the status turns
// false.
//
//   def consumer():
//       status = True
//       while True:
//           n = yield status
//           print("我拿到了{}!".format(n))
//           if n == 3:
//               status = False
//
//   def producer(consumer):
//       n = 5
//       while n > 0:
//           yield consumer.send(n)
//           n -= 1
//
//   c = consumer()
//   c.send(None)
//   p = producer(c)
//   for status in p:
//       if status == False:
//           print("我只要3,4,5就行啦")
//           break
//   print("程序结束")
#include <coop/generator.hpp>

#include <iostream>

// Yields its status, receives a number.
using consumer_t = coop::generator<bool, int>;

consumer_t consumer() {
  return consumer_t([](auto& co) {
    bool status = true;
    while (true) {
      int n = co.yield(status).value();
      std::cout << "我拿到了" << n << "!\n";
      if (n == 3) status = false;
    }
  });
}

// Resumes the consumer from inside its own body: generators nest freely.
coop::generator<bool> producer(consumer_t& consumer) {
  return coop::generator<bool>([&consumer](auto& co) {
    int n = 5;
    while (n > 0) {
      co.yield(consumer.send(n).value());
      n -= 1;
    }
  });
}

int main() {
  consumer_t c = consumer();
  c.next(); // Python's c.send(None): without it, send(5) throws coop::generator_error
  coop::generator<bool> p = producer(c);
  for (bool status : p) {
    if (status == false) {
      std::cout << "我只要3,4,5就行啦\n";
      break;
    }
  }
  std::cout << "程序结束\n";
  // p and c are still parked in a yield: their destructors unwind them.
}
