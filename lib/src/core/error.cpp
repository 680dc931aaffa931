#include <coop/detail/wait_context.hpp>
#include <coop/error.hpp>

#include <cstdio>

#include <string>

namespace coop {
namespace {

class category_impl final : public boost::system::error_category {
public:
  const char* name() const noexcept override { return "coop"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
    case errc::timed_out:
      return "operation timed out";
    case errc::cancelled:
      return "fiber cancelled";
    }
    return "unknown coop error";
  }
};

} // namespace

const boost::system::error_category& coop_category() noexcept {
  static const category_impl instance;
  return instance;
}

namespace {
/// "50 ms", "1.5 s", "200 us".
std::string printable(std::chrono::nanoseconds d) {
  char text[64];
  const double ns = static_cast<double>(d.count());
  if (d >= std::chrono::seconds(1))
    std::snprintf(text, sizeof text, "%.6g s", ns / 1e9);
  else if (d >= std::chrono::milliseconds(1))
    std::snprintf(text, sizeof text, "%.6g ms", ns / 1e6);
  else
    std::snprintf(text, sizeof text, "%.6g us", ns / 1e3);
  return text;
}
std::string scope_text(std::chrono::nanoseconds d, bool innermost) {
  if (d.count() < 0) return "coop::timeout";
  return "coop::timeout of " + printable(d) + (innermost ? " (the innermost scope)" : " (an outer scope)");
}
} // namespace

timeout_error::timeout_error(std::chrono::nanoseconds duration, bool innermost)
    : boost::system::system_error(make_error_code(errc::timed_out), scope_text(duration, innermost)),
      duration_(duration), innermost_(innermost) {}

void throw_on_error(const boost::system::error_code& ec, const char* what) {
  if (!ec) return;
  if (ec == errc::timed_out) {
    const auto& fired = detail::current_wait_context().last_fired;
    throw timeout_error(fired.duration, fired.innermost);
  }
  if (ec == errc::cancelled) throw cancelled();
  throw boost::system::system_error(ec, what);
}

namespace detail {
void throw_call_error(const boost::system::error_code& ec, std::string_view type, std::string_view call) {
  if (!ec) return;
  std::string what;
  what.reserve(type.size() + 2 + call.size());
  what.append(type).append("::").append(call);
  throw_on_error(ec, what.c_str());
}
} // namespace detail

} // namespace coop
