// tutorial_yield_from — the coroutine-evolution tutorial's bottom/middle/top:
// with `yield from`, values go up through every level, sent values come back
// down, and the innermost generator's return value comes back up as each
// level's return value.
//
//   def bottom():
//       return (yield 42)
//   def middle():
//       return (yield from bottom())
//   def top():
//       return (yield from middle())
//
//   gen = top()
//   value = next(gen)
//   print(value)                      # 42
//   try:
//       value = gen.send(value * 2)
//   except StopIteration as exc:
//       value = exc.value
//   print(value)                      # 84
#include <coop/generator.hpp>

#include <iostream>

// Yields int, receives int, returns int.
using gen_t = coop::generator<int, int, int>;

gen_t bottom() {
  return gen_t([](auto& co) { return co.yield(42).value(); });
}

gen_t middle() {
  return gen_t([](auto& co) { return co.yield_from(bottom()); });
}

gen_t top() {
  return gen_t([](auto& co) { return co.yield_from(middle()); });
}

int main() {
  gen_t gen = top();
  int value = *gen.next();
  std::cout << value << '\n';
  if (std::optional<int> next = gen.send(value * 2))
    value = *next;
  else
    value = gen.return_value(); // Python's StopIteration.value
  std::cout << value << '\n';
}
