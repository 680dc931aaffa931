// tutorial_gevent — the baozi tutorial's two gevent examples on coop's fibers.
// Each function runs in its own fiber; coop::sleep_for parks only the calling
// fiber, and the scheduler runs whichever fiber is ready: the interleaving
// below comes from the timers, not from explicit switches.
//
//   def foo():
//       print('Running in foo')
//       gevent.sleep(2)
//       print('Explicit context switch to foo again')
//
//   def bar():
//       print('Explicit context to bar')
//       gevent.sleep(1)
//       print('Implicit context switch back to bar')
//
//   def func3():                         # second example only
//       print('running func3')
//       gevent.sleep(0)
//       print('running func3 again')
//
//   gevent.joinall([gevent.spawn(foo), gevent.spawn(bar)])
//   gevent.joinall([gevent.spawn(foo), gevent.spawn(bar), gevent.spawn(func3)])
//
// The sleeps are shortened to a tenth (2 s -> 200 ms, 1 s -> 100 ms).
#include <coop/coop.hpp>

#include <chrono>
#include <iostream>
#include <vector>

using namespace std::chrono_literals;

void foo() {
  std::cout << "Running in foo\n";
  coop::sleep_for(200ms);
  std::cout << "Explicit context switch to foo again\n";
}

void bar() {
  std::cout << "Explicit context to bar\n";
  coop::sleep_for(100ms);
  std::cout << "Implicit context switch back to bar\n";
}

void func3() {
  std::cout << "running func3\n";
  coop::sleep_for(0ms); // gevent.sleep(0): let the other ready fibers run
  std::cout << "running func3 again\n";
}

int main() {
  return coop::run([] {
    // First example: spawned fibers start when this one blocks in join_all.
    std::vector<coop::task<void>> tasks;
    tasks.push_back(coop::spawn(foo));
    tasks.push_back(coop::spawn(bar));
    coop::join_all(tasks);

    // Second example.
    auto t1 = coop::spawn(foo);
    auto t2 = coop::spawn(bar);
    auto t3 = coop::spawn(func3);
    coop::join_all(t1, t2, t3);
    return 0;
  });
}
