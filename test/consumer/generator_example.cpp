// coop::generator on its own (Boost.Context only, no runtime): must print "sum 6".
#include <coop/generator.hpp>

#include <iostream>

int main() {
  coop::generator<int> numbers([](auto& co) {
    for (int i = 1; i <= 3; ++i)
      co.yield(i);
  });
  int sum = 0;
  for (int n : numbers)
    sum += n;
  std::cout << "sum " << sum << "\n";
  return sum == 6 ? 0 : 1;
}
