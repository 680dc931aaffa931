// Unix-domain socket paths: endpoints, stale socket files, the file a listener owns.
#include <coop/detail/socket_file.hpp>

#include <boost/asio/error.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace coop::detail {

boost::asio::local::stream_protocol::endpoint local_endpoint_for(std::string_view path, boost::system::error_code& ec) {
  ec.clear();
  if (path.empty()) {
    ec = boost::asio::error::invalid_argument;
    return {};
  }
  if (path.size() > sizeof(sockaddr_un::sun_path) - 1) {
    ec = boost::asio::error::name_too_long;
    return {};
  }
  std::string p(path);
  if (p.front() == '@') p.front() = '\0';
  return boost::asio::local::stream_protocol::endpoint(p);
}

void remove_if_stale_socket(const std::string& path) noexcept {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size()); // fits: checked by local_endpoint_for
  // Refused: nobody listens. Anything else (accepted, EAGAIN for a full
  // backlog, EACCES...) leaves the file alone.
  bool stale = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 && errno == ECONNREFUSED;
  ::close(fd);
  if (stale) ::unlink(path.c_str());
}

socket_file::socket_file(std::string path) noexcept : path_(std::move(path)) {
  struct stat st {};
  if (::lstat(path_.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
    path_.clear(); // nothing we could recognise later: never remove it
    return;
  }
  device_ = static_cast<std::uint64_t>(st.st_dev);
  inode_ = static_cast<std::uint64_t>(st.st_ino);
}

void socket_file::remove() noexcept {
  if (path_.empty()) return;
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && static_cast<std::uint64_t>(st.st_dev) == device_ &&
      static_cast<std::uint64_t>(st.st_ino) == inode_)
    ::unlink(path_.c_str());
  path_.clear();
}

} // namespace coop::detail
