// tutorial_greenlet — the baozi tutorial's greenlet demo: two functions on
// their own stacks switch to each other explicitly. Neither is a generator;
// either can switch from any depth of calls.
//
//   def xiecheng_test():
//       print(12)
//       gr2.switch()
//       print(34)
//       gr2.switch()
//
//   def xiecheng_test2():
//       print(56)
//       gr1.switch()
//       print(78)
//
//   gr1 = greenlet(xiecheng_test)
//   gr2 = greenlet(xiecheng_test2)
//   gr1.switch()
#include <coop/greenlet.hpp>

#include <iostream>

coop::greenlet<> gr1, gr2;

void xiecheng_test() {
  std::cout << 12 << '\n';
  gr2.switch_to();
  std::cout << 34 << '\n';
  gr2.switch_to();
}

void xiecheng_test2() {
  std::cout << 56 << '\n';
  gr1.switch_to();
  std::cout << 78 << '\n';
}

int main() {
  gr1 = coop::greenlet<>(xiecheng_test);
  gr2 = coop::greenlet<>(xiecheng_test2);
  gr1.switch_to(); // returns when gr2, whose parent is main, ends
  // gr1 never ended: it is still parked in its second switch. Dropping it
  // unwinds its stack (Python does the same when gr1 is garbage-collected).
  gr1 = {};
  gr2 = {};
}
