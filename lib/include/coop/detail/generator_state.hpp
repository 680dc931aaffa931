// coop/detail/generator_state.hpp — the shared state between a coop::generator
// handle and its body. Internal: include <coop/generator.hpp> instead.
#pragma once

#include <boost/context/fiber.hpp>

#include <exception>
#include <optional>

namespace coop::detail {

/// Where a generator's body stands.
enum class generator_status : unsigned char {
  fresh,     ///< created, body not entered yet
  suspended, ///< body parked in a yield
  running,   ///< body executing (the caller is parked in next()/send()/close())
  done,      ///< body returned, threw, or was closed
};

/// The value passed in by send(); it lives on the caller's stack, which is
/// parked while the body reads it. Empty for `Send = void`.
template <class Send> struct generator_send_slot { Send* sent_ = nullptr; };
template <> struct generator_send_slot<void> {};

/// The body's return value (Python's `StopIteration.value`).
template <class Return> struct generator_return_slot { std::optional<Return> result_; };
template <> struct generator_return_slot<void> {};

/// Everything a generator handle and its body share. Heap-allocated once per
/// generator so the handle can move while the body holds a stable pointer;
/// nothing here is allocated per step.
template <class Yield, class Send, class Return>
struct generator_state : generator_send_slot<Send>, generator_return_slot<Return> {
  boost::context::fiber body_;   ///< the parked body; empty while it runs and after it ended
  boost::context::fiber caller_; ///< whoever resumed the body; valid only while the body runs
  std::optional<Yield> value_;   ///< the last yielded value, until the caller takes it
  std::exception_ptr error_;     ///< an exception that escaped the body, until rethrown
  generator_status status_ = generator_status::fresh;
  bool exit_requested_ = false; ///< close() asks the parked body to throw generator_exit
};

} // namespace coop::detail
