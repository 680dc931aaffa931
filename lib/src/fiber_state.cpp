#include <coop/detail/fiber_state.hpp>
#include <coop/detail/worker.hpp>

#include <string>

namespace coop::detail {

fiber_state* current_fiber_state() noexcept {
  if (!current_worker()) return nullptr;
  auto* ctx = boost::fibers::context::active();
  // Inside a runtime every context passes through our scheduler, whose
  // properties are fiber_state; the main context may not have them yet.
  return static_cast<fiber_state*>(ctx->get_properties());
}

fiber_state& require_fiber(const char* what) {
  if (fiber_state* fs = current_fiber_state()) return *fs;
  throw usage_error(std::string("coop: ") + what +
                    " must be called from a fiber of a coop runtime (inside coop::run, "
                    "coop::runtime or coop::spawn)");
}

} // namespace coop::detail
