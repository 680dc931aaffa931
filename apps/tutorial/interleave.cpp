// tutorial_interleave — the asyncio chapter's A and B: two functions in two
// fibers of one thread; each gives up the thread in the middle, so their output
// interleaves without either one calling the other.
//
//   def A():            def B():
//       print('1')          print('x')
//       print('2')          print('y')
//       print('3')          print('z')
//
//   one possible result: 1 2 x y 3 z
#include <coop/coop.hpp>

#include <iostream>

void A() {
  std::cout << "1\n";
  std::cout << "2\n";
  coop::this_fiber::yield(); // let B run
  std::cout << "3\n";
}

void B() {
  std::cout << "x\n";
  std::cout << "y\n";
  coop::this_fiber::yield(); // let A run
  std::cout << "z\n";
}

int main() {
  return coop::run([] {
    auto a = coop::spawn(A);
    auto b = coop::spawn(B);
    coop::join_all(a, b);
    return 0;
  });
}
