// tutorial_asyncio — the asyncio example of the “Python之coroutine” tutorial. In
// asyncio every function on the way to a wait must be `async` and every call
// `await`ed; on a coop fiber compute() is a plain function whose sleep parks
// the fiber, and print_sum() calls it like any other function.
//
//   async def compute(x, y):
//       print("Compute %s + %s ..." % (x, y))
//       await asyncio.sleep(1.0)
//       return x + y
//
//   async def print_sum(x, y):
//       result = await compute(x, y)
//       print("%s + %s = %s" % (x, y, result))
//
//   loop = asyncio.get_event_loop()
//   loop.run_until_complete(print_sum(1, 2))
//   loop.close()
#include <coop/coop.hpp>

#include <chrono>
#include <iostream>

using namespace std::chrono_literals;

int compute(int x, int y) {
  std::cout << "Compute " << x << " + " << y << " ..." << std::endl;
  coop::sleep_for(1s); // parks this fiber; the runtime waits on its timer
  return x + y;
}

void print_sum(int x, int y) {
  int result = compute(x, y);
  std::cout << x << " + " << y << " = " << result << '\n';
}

int main() {
  // coop::run plays loop.run_until_complete(): it returns once print_sum and
  // every fiber it spawned have finished.
  return coop::run([] {
    print_sum(1, 2);
    return 0;
  });
}
