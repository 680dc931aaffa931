// tutorial_gen_send — the coroutine-evolution tutorial's gen: a generator
// started with next() (Python's send(None)), fed with send(), and stopped by
// the value it treats as "exit".
//
//   def gen():
//       value = 0
//       while True:
//           receive = yield value
//           if receive == 'e':
//               break
//           value = 'got: %s' % receive
//
//   g = gen()
//   print(g.send(None))     # 0
//   print(g.send('hello'))  # got: hello
//   print(g.send('e'))      # StopIteration
//   g.close()
//
// Python raises StopIteration when the generator ends; coop's send() returns
// an empty optional instead (an ending generator is a normal outcome).
// A C++ generator yields one type, so the first value is the string "0".
#include <coop/generator.hpp>

#include <iostream>
#include <string>

coop::generator<std::string, std::string> gen() {
  return coop::generator<std::string, std::string>([](auto& co) {
    std::string value = "0";
    while (true) {
      std::optional<std::string> receive = co.yield(value);
      if (receive == "e") break;
      value = "got: " + receive.value_or("None");
    }
  });
}

void print(const std::optional<std::string>& value) {
  std::cout << (value ? *value : "StopIteration") << '\n';
}

int main() {
  auto g = gen();
  print(g.next()); // a fresh generator must be started without a value
  print(g.send("hello"));
  print(g.send("e"));
  g.close();
}
