// test/generator/destruction_counter.hpp — counts destructions, to see which
// stack frames of a generator or greenlet body were unwound.
#pragma once

struct guard {
  explicit guard(int& count) : count_(count) {}
  guard(const guard&) = delete;
  ~guard() { ++count_; }
  int& count_;
};
