#include <coop/error.hpp>

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

void throw_on_error(const boost::system::error_code& ec, const char* what) {
  if (!ec) return;
  if (ec == errc::timed_out) throw timeout_error();
  if (ec == errc::cancelled) throw cancelled();
  throw boost::system::system_error(ec, what);
}

} // namespace coop
