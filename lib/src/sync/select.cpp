#include <coop/select.hpp>

namespace coop::detail {

std::size_t next_select_start() noexcept {
  thread_local std::size_t counter = 0;
  return counter++;
}

} // namespace coop::detail
