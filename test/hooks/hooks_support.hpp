// test/hooks/hooks_support.hpp — what the hooks' test programs share.
#pragma once

#include <cstdlib>
#include <string>

namespace hooks_support {

/// True in the *_off runs (COOP_HOOKS=0): the hooks are switched off, and
/// each program checks only that.
inline bool hooks_off() {
  const char* v = std::getenv("COOP_HOOKS");
  return v && std::string(v) == "0";
}

} // namespace hooks_support
