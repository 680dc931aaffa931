// tutorial_lazy_range — the coroutine-evolution tutorial's lazy_range: a
// generator that computes its values one at a time instead of building a list
// (Python 2.2, PEP 255), and the same generator refactored with `yield from`
// (Python 3.3, PEP 380).
//
//   def lazy_range(up_to):              def lazy_range(up_to):
//       index = 0                           index = 0
//       while index < up_to:                def gratuitous_refactor():
//           yield index                         while index < up_to:
//           index += 1                              yield index
//                                                   index += 1
//   for i in lazy_range(5):                 yield from gratuitous_refactor()
//       print(i)
#include <coop/generator.hpp>

#include <iostream>

coop::generator<int> lazy_range(int up_to) {
  return coop::generator<int>([up_to](auto& co) {
    int index = 0;
    while (index < up_to) {
      co.yield(index);
      index += 1;
    }
  });
}

coop::generator<int> lazy_range_refactored(int up_to) {
  return coop::generator<int>([up_to](auto& co) {
    int index = 0;
    // The inner generator shares `index` with its outer one (the Python
    // version would need `nonlocal index` for that).
    auto gratuitous_refactor = [&] {
      return coop::generator<int>([&](auto& inner) {
        while (index < up_to) {
          inner.yield(index);
          index += 1;
        }
      });
    };
    co.yield_from(gratuitous_refactor());
  });
}

int main() {
  for (int i : lazy_range(5))
    std::cout << i << '\n';
  for (int i : lazy_range_refactored(5))
    std::cout << i << '\n';
}
