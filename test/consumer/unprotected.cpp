// Built with coop::coop's stack-clash protection turned off
// (COOP_STACK_CLASH_PROTECTION OFF): run.sh checks that its compile command
// lacks -fstack-clash-protection while example.cpp's has it.
#include <coop/run_options.hpp>

int main() {
  return coop::run_options{}.stack_guard_size > 0 ? 0 : 1;
}
