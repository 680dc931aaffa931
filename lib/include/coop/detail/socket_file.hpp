// coop/detail/socket_file.hpp — Unix-domain socket paths: the file a listener
// created (removed when it is done), and turning a path into an endpoint.
#pragma once

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace coop::detail {

/// The endpoint for a Unix-domain socket path: a filesystem path, or a Linux
/// abstract name when `path` starts with '\0' or '@' (the '@' becomes the
/// '\0'). Sets `ec` (`name_too_long`, `invalid_argument` for an empty path)
/// instead of throwing.
boost::asio::local::stream_protocol::endpoint local_endpoint_for(std::string_view path, boost::system::error_code& ec);

/// True for a path in Linux's abstract namespace (no file).
inline bool is_abstract_path(std::string_view path) noexcept {
  return !path.empty() && (path.front() == '\0' || path.front() == '@');
}

/// `path` as error messages show it: an abstract name with '@' for its '\0'.
inline std::string printable_path(std::string_view path) {
  std::string p(path);
  if (!p.empty() && p.front() == '\0') p.front() = '@';
  return p;
}

/// Removes the socket file at `path` when it is a socket that nobody listens
/// on any more (a connect is refused). Leaves anything else alone.
void remove_if_stale_socket(const std::string& path) noexcept;

/// The socket file a listener bound: removed (once) by `remove()` or the
/// destructor, but only while the path still names that same file, so a
/// file that another listener has put there since is left alone. Move-only.
class socket_file {
public:
  socket_file() noexcept = default;
  /// Records the file now at `path` (after a successful bind).
  explicit socket_file(std::string path) noexcept;
  socket_file(socket_file&& other) noexcept
      : path_(std::exchange(other.path_, {})), device_(other.device_), inode_(other.inode_) {}
  socket_file& operator=(socket_file&& other) noexcept {
    if (this != &other) {
      remove();
      path_ = std::exchange(other.path_, {});
      device_ = other.device_;
      inode_ = other.inode_;
    }
    return *this;
  }
  ~socket_file() { remove(); }

  void remove() noexcept;

private:
  std::string path_; ///< empty: nothing to remove
  std::uint64_t device_ = 0;
  std::uint64_t inode_ = 0;
};

} // namespace coop::detail
