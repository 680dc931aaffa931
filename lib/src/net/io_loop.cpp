// The compiled half of the I/O loop (coop/detail/io_loop.hpp): where a
// socket call starts, and how it waits when its system call would block.
#include "net/fd_table.hpp"

#include "core/worker.hpp"
#include <coop/detail/io_loop.hpp>

#include <boost/asio/detail/reactive_socket_service.hpp>

namespace coop::detail {
namespace {

// --- a socket's registration with its reactor ---------------------------
//
// Asio registers every socket it opens with its io_context's reactor and
// keeps that registration in the socket's implementation, which its public
// interface does not expose. An explicit instantiation may name private
// members ([temp.spec.general]: access is not checked there), so `expose`
// hands out a pointer to that member, once per socket type, and nothing
// else of Asio's internals is touched.

using boost::asio::any_io_executor;
template <class Protocol>
using socket_impl =
    boost::asio::detail::io_object_impl<boost::asio::detail::reactive_socket_service<Protocol>, any_io_executor>;

template <class Tag, typename Tag::type Member> struct expose {
  friend typename Tag::type member(Tag) noexcept { return Member; }
};

template <class Protocol> struct socket_tag {
  using type = socket_impl<Protocol> boost::asio::basic_socket<Protocol, any_io_executor>::*;
};
template <class Protocol> struct acceptor_tag {
  using type = socket_impl<Protocol> boost::asio::basic_socket_acceptor<Protocol, any_io_executor>::*;
};

using tcp = boost::asio::ip::tcp;
using udp = boost::asio::ip::udp;
using local = boost::asio::local::stream_protocol;

struct tcp_socket : socket_tag<tcp> {
  friend type member(tcp_socket) noexcept;
};
struct tcp_acceptor : acceptor_tag<tcp> {
  friend type member(tcp_acceptor) noexcept;
};
struct udp_socket : socket_tag<udp> {
  friend type member(udp_socket) noexcept;
};
struct local_socket : socket_tag<local> {
  friend type member(local_socket) noexcept;
};
struct local_acceptor : acceptor_tag<local> {
  friend type member(local_acceptor) noexcept;
};
template struct expose<tcp_socket, &boost::asio::basic_socket<tcp, any_io_executor>::impl_>;
template struct expose<tcp_acceptor, &boost::asio::basic_socket_acceptor<tcp, any_io_executor>::impl_>;
template struct expose<udp_socket, &boost::asio::basic_socket<udp, any_io_executor>::impl_>;
template struct expose<local_socket, &boost::asio::basic_socket<local, any_io_executor>::impl_>;
template struct expose<local_acceptor, &boost::asio::basic_socket_acceptor<local, any_io_executor>::impl_>;

template <class Tag, class Socket> io_handle handle(Socket& s) noexcept {
  auto& impl = (s.*member(Tag{})).get_implementation();
  return {impl.socket_, &impl.reactor_data_};
}

} // namespace

io_handle handle_of(tcp::socket& s) noexcept {
  return handle<tcp_socket>(s);
}
io_handle handle_of(tcp::acceptor& s) noexcept {
  return handle<tcp_acceptor>(s);
}
io_handle handle_of(udp::socket& s) noexcept {
  return handle<udp_socket>(s);
}
io_handle handle_of(local::socket& s) noexcept {
  return handle<local_socket>(s);
}
io_handle handle_of(local::acceptor& s) noexcept {
  return handle<local_acceptor>(s);
}

// --- the loop's two compiled steps -------------------------------------------

io_call begin_io(const boost::asio::any_io_executor& ex, const char* what, boost::system::error_code& ec) {
  io_call call;
  call.fiber = begin_call(ex, what, ec);
  if (!call.fiber && current_wait_context().interrupt_deadline() == no_deadline) call.flags = 0;
  return call;
}

bool wait_io(const io_call& call, io_handle h, const io_kind& kind, const void* object, boost::system::error_code& ec) {
  if (!call.fiber) return wait_ready(h.fd, kind.for_write, ec);
  const wait_kind wait = kind.wait != wait_kind::other ? kind.wait
                         : kind.for_write              ? wait_kind::write
                                                       : wait_kind::read;
  const wait_info info{wait, kind.label, object, h.fd};
  auto& data = *static_cast<fd_entry::reactor::per_descriptor_data*>(h.registration);
  return park_until_ready(*call.fiber, reactor_of(*call.fiber->owner), h.fd, data, kind.for_write, no_deadline, info,
                          ec) == ready_result::ready;
}

} // namespace coop::detail
