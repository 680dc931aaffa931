// coop/yield.hpp — the completion token that makes an Asio operation block the
// calling fiber (and only the fiber) until it completes.
#pragma once

#include <coop/detail/yield_impl.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/system/error_code.hpp>

namespace coop {

/// Completion token: `sock.async_read_some(buf, coop::yield)` suspends the
/// calling fiber and returns the operation's result, throwing
/// `boost::system::system_error` on failure (`coop::timeout_error` or
/// `coop::cancelled` when a timeout scope or `task::cancel()` interrupted it).
/// `coop::yield[ec]` stores the error in `ec` instead of throwing.
///
/// The operation is cancelled through Asio's per-operation cancellation when
/// the fiber's timeout expires or the fiber is cancelled. Must be used from a
/// fiber of a coop runtime, on an I/O object of the same runtime thread.
///
/// Example:
/// @code
///   boost::system::error_code ec;
///   std::size_t n = sock.async_read_some(boost::asio::buffer(buf), coop::yield[ec]);
/// @endcode
struct yield_t {
  constexpr yield_t() noexcept = default;
  /// A token that reports errors into `ec` instead of throwing.
  constexpr yield_t operator[](boost::system::error_code& ec) const noexcept {
    yield_t y = *this;
    y.ec_ = &ec;
    return y;
  }
  boost::system::error_code* ec_ = nullptr;
  const detail::wait_info* info_ = &detail::asio_operation_wait; ///< published while the fiber waits
};

/// The token object. `inline constexpr`: one object for the whole program.
inline constexpr yield_t yield{};

namespace detail {
/// `coop::yield[ec]` that publishes `info` as what the fiber waits on.
inline yield_t yield_for(const wait_info& info, boost::system::error_code& ec) noexcept {
  yield_t y = coop::yield[ec];
  y.info_ = &info;
  return y;
}
} // namespace detail

} // namespace coop

namespace boost::asio {

template <class... Ts> class async_result<coop::yield_t, void(boost::system::error_code, Ts...)> {
public:
  using return_type = coop::detail::yield_return_t<Ts...>;

  template <class Initiation, class... Args>
  static return_type initiate(Initiation&& init, coop::yield_t token, Args&&... args) {
    return coop::detail::yield_initiate<Ts...>(token.ec_, *token.info_, std::forward<Initiation>(init),
                                               std::forward<Args>(args)...);
  }
};

template <> class async_result<coop::yield_t, void()> {
public:
  using return_type = void;

  template <class Initiation, class... Args>
  static void initiate(Initiation&& init, coop::yield_t token, Args&&... args) {
    // Reuse the error_code path: wrap the nullary handler.
    auto adapt = [&init](auto handler, auto&&... a) {
      std::forward<Initiation>(init)([h = std::move(handler)]() mutable { std::move(h)(boost::system::error_code{}); },
                                     std::forward<decltype(a)>(a)...);
    };
    coop::detail::yield_initiate<>(token.ec_, *token.info_, adapt, std::forward<Args>(args)...);
  }
};

} // namespace boost::asio
