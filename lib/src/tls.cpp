#include <coop/net/tls.hpp>

#include <coop/detail/fiber_state.hpp>
#include <coop/net/connect.hpp>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <string>

namespace coop::net {
namespace {

[[noreturn]] void fibers_only(const char* what) {
  throw usage_error(std::string("coop: ") + what +
                    " must be called from a fiber of a coop runtime; TLS streams have no blocking mode "
                    "(not on a plain thread, not in a coop::blocking_scope)");
}

/// Checked before connecting, so a plain thread does not connect in vain.
void require_fiber_mode(const char* what) {
  if (!coop::detail::current_fiber_state()) fibers_only(what);
}

/// The error of the last failed OpenSSL call on this thread.
boost::system::error_code last_ssl_error() {
  unsigned long e = ::ERR_get_error();
  ::ERR_clear_error();
  if (e == 0) return boost::asio::error::invalid_argument;
  return {static_cast<int>(e), boost::asio::error::get_ssl_category()};
}

/// Sets SNI and host-name verification, then runs the client handshake.
tls_stream client_handshake(tcp_stream tcp, std::string_view host, ssl::context& ctx, boost::system::error_code& ec) {
  tls_stream s(std::move(tcp), ctx);
  if (ec) return s;
  const std::string name(host);
  SSL* native = s.ssl().native_handle();
  boost::system::error_code not_ip;
  boost::asio::ip::make_address(name, not_ip);
  // RFC 6066: SNI carries DNS names only, never an address literal.
  if (not_ip && !name.empty() && !SSL_set_tlsext_host_name(native, name.c_str())) {
    ec = last_ssl_error();
    return s;
  }
  if (SSL_get_verify_mode(native) & SSL_VERIFY_PEER) {
    s.ssl().set_verify_callback(ssl::host_name_verification(name), ec);
    if (ec) return s;
  }
  s.handshake(ssl::stream_base::client, ec);
  return s;
}

void require_tls12(ssl::context& ctx, const char* what) {
  if (!SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION))
    throw boost::system::system_error(last_ssl_error(), what);
}

} // namespace

tls_stream::tls_stream(tcp_stream tcp, ssl::context& ctx) : ssl_(std::move(tcp.socket()), ctx) {}

void tls_stream::begin(const char* what) {
  // mode_for rejects other runtime threads' streams and plain threads outside
  // a blocking_scope; a blocking_scope is rejected here.
  if (!coop::detail::mode_for(ssl_.get_executor(), what).fiber) fibers_only(what);
}

void tls_stream::handshake(ssl::stream_base::handshake_type type, boost::system::error_code& ec) {
  const coop::detail::wait_info info{"tls handshake", this, fd()};
  begin("coop::net::tls_stream::handshake");
  ssl_.async_handshake(type, coop::detail::yield_for(info, ec));
}

std::size_t tls_stream::read_until(std::string& buffer, std::string_view delim, std::size_t max_size,
                                   boost::system::error_code& ec) {
  const coop::detail::wait_info info{"tls read", this, fd()};
  begin("coop::net::tls_stream::read_until");
  // A delimiter already in `buffer` returns at once (Asio's operation would
  // complete at once too, but through the scheduler's queue: a yield per line).
  if (std::size_t at = std::string_view(buffer).find(delim); at != std::string_view::npos) {
    coop::detail::fiber_state* fs = coop::detail::begin_buffered_read(ec);
    if (ec) return 0;
    coop::detail::count_buffered_read(fs);
    return at + delim.size();
  }
  auto dyn = boost::asio::dynamic_buffer(buffer, max_size);
  return boost::asio::async_read_until(ssl_, dyn, delim, coop::detail::yield_for(info, ec));
}

void tls_stream::shutdown(boost::system::error_code& ec) {
  const coop::detail::wait_info info{"tls shutdown", this, fd()};
  begin("coop::net::tls_stream::shutdown");
  ssl_.async_shutdown(coop::detail::yield_for(info, ec));
}

tls_stream tls_connect(std::string_view host, std::uint16_t port, ssl::context& ctx, boost::system::error_code& ec) {
  require_fiber_mode("coop::net::tls_connect");
  return client_handshake(connect(host, port, ec), host, ctx, ec);
}

tls_stream tls_connect(const tcp::endpoint& endpoint, std::string_view host_name, ssl::context& ctx,
                       boost::system::error_code& ec) {
  require_fiber_mode("coop::net::tls_connect");
  return client_handshake(connect(endpoint, ec), host_name, ctx, ec);
}

tls_stream tls_connect(std::string_view host, std::uint16_t port, ssl::context& ctx) {
  boost::system::error_code ec;
  tls_stream s = tls_connect(host, port, ctx, ec);
  throw_on_error(ec, "tls_connect");
  return s;
}

tls_stream tls_connect(const tcp::endpoint& endpoint, std::string_view host_name, ssl::context& ctx) {
  boost::system::error_code ec;
  tls_stream s = tls_connect(endpoint, host_name, ctx, ec);
  throw_on_error(ec, "tls_connect");
  return s;
}

tls_stream tls_accept(tcp_stream tcp, ssl::context& ctx, boost::system::error_code& ec) {
  require_fiber_mode("coop::net::tls_accept");
  tls_stream s(std::move(tcp), ctx);
  s.handshake(ssl::stream_base::server, ec);
  return s;
}

tls_stream tls_accept(tcp_stream tcp, ssl::context& ctx) {
  boost::system::error_code ec;
  tls_stream s = tls_accept(std::move(tcp), ctx, ec);
  throw_on_error(ec, "tls_accept");
  return s;
}

ssl::context tls_client_context() {
  ssl::context ctx(ssl::context::tls_client);
  require_tls12(ctx, "coop::net::tls_client_context");
  ctx.set_default_verify_paths();
  ctx.set_verify_mode(ssl::verify_peer);
  return ctx;
}

ssl::context tls_client_context(const std::string& ca_file) {
  ssl::context ctx(ssl::context::tls_client);
  require_tls12(ctx, "coop::net::tls_client_context");
  boost::system::error_code ec;
  ctx.load_verify_file(ca_file, ec);
  if (ec) throw boost::system::system_error(ec, "coop::net::tls_client_context: CA file '" + ca_file + "'");
  ctx.set_verify_mode(ssl::verify_peer);
  return ctx;
}

ssl::context tls_server_context(const std::string& cert_chain_file, const std::string& key_file) {
  ssl::context ctx(ssl::context::tls_server);
  require_tls12(ctx, "coop::net::tls_server_context");
  boost::system::error_code ec;
  ctx.use_certificate_chain_file(cert_chain_file, ec);
  if (ec)
    throw boost::system::system_error(ec, "coop::net::tls_server_context: certificate file '" + cert_chain_file + "'");
  // OpenSSL also checks here that the key belongs to the certificate.
  ctx.use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec) throw boost::system::system_error(ec, "coop::net::tls_server_context: key file '" + key_file + "'");
  return ctx;
}

} // namespace coop::net
