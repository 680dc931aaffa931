// tutorial_jumping_range — the coroutine-evolution tutorial's jumping_range:
// send() passes a value back into the generator, where it becomes the result of
// the pending yield (Python 2.5, PEP 342). next() resumes it without a value
// (Python's None).
//
//   def jumping_range(up_to):
//       index = 0
//       while index < up_to:
//           jump = yield index
//           if jump is None:
//               jump = 1
//           index += jump
//
//   iterator = jumping_range(5)
//   print(next(iterator))       # 0
//   print(iterator.send(2))     # 2
//   print(next(iterator))       # 3
//   print(iterator.send(-1))    # 2
//   for x in iterator:
//       print(x)                # 3, 4
#include <coop/generator.hpp>

#include <iostream>

coop::generator<int, int> jumping_range(int up_to) {
  return coop::generator<int, int>([up_to](auto& co) {
    int index = 0;
    while (index < up_to) {
      std::optional<int> jump = co.yield(index); // empty after next()
      index += jump.value_or(1);
    }
  });
}

int main() {
  auto iterator = jumping_range(5);
  std::cout << *iterator.next() << '\n';
  std::cout << *iterator.send(2) << '\n';
  std::cout << *iterator.next() << '\n';
  std::cout << *iterator.send(-1) << '\n';
  for (int x : iterator)
    std::cout << x << '\n';
}
