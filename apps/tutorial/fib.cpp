// tutorial_fib — the fib of the “Python之coroutine” tutorial: a generator yields
// the Fibonacci numbers one by one; nothing runs until the loop asks for the
// next value.
//
//   def fib(max):
//       n, a, b = 0, 0, 1
//       while n < max:
//           yield b
//           a, b = b, a + b
//           n = n + 1
//
//   for x in fib(6):
//       print(x)
#include <coop/generator.hpp>

#include <iostream>
#include <tuple>

coop::generator<long> fib(int max) {
  return coop::generator<long>([max](auto& co) {
    int n = 0;
    long a = 0, b = 1;
    while (n < max) {
      co.yield(b);
      std::tie(a, b) = std::tuple(b, a + b);
      n = n + 1;
    }
  });
}

int main() {
  for (long x : fib(6))
    std::cout << x << '\n';
}
