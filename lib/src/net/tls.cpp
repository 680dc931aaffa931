#include <coop/net/tls.hpp>

#include <coop/detail/fiber_state.hpp>
#include <coop/net/connect.hpp>
#include <coop/semaphore.hpp>
#include <coop/timeout.hpp>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <coop/detail/io_loop.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <sys/socket.h>

#include <malloc.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <memory>
#include <optional>
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

/// TLS 1.2 or newer, and OpenSSL's record buffers given back while idle.
void set_up_context(ssl::context& ctx, const char* what) {
  if (!SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION))
    throw boost::system::system_error(last_ssl_error(), what);
  SSL_CTX_set_mode(ctx.native_handle(), SSL_MODE_RELEASE_BUFFERS);
}

/// The handshake limits a server context carries (`tls_server_context`),
/// kept in the SSL_CTX's ex_data and freed with it. Used by the fibers of
/// every runtime thread: the semaphore is thread-safe, the rest read-only.
struct server_limits {
  explicit server_limits(const tls_server_options& o) : options(o), slots(o.max_handshakes) {}
  tls_server_options options;
  coop::semaphore slots;
};

int server_limits_index() {
  static const int index =
      SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<server_limits*>(ptr);
      });
  return index;
}

server_limits* limits_of(ssl::context& ctx) {
  return static_cast<server_limits*>(SSL_CTX_get_ex_data(ctx.native_handle(), server_limits_index()));
}

/// Waits until the client's first bytes arrive, with nothing but the TCP
/// socket (no session, no buffers yet): the I/O loop over a `recv` that
/// peeks, leaving the bytes for OpenSSL. A client that closes before
/// sending anything fails it with `eof`, so it never costs a session either.
void wait_for_client_hello(tcp_stream& tcp, boost::system::error_code& ec) {
  const coop::detail::io_call call = coop::detail::begin_io(tcp.get_executor(), "coop::net::tls_accept", ec);
  if (ec) return;
  static constexpr coop::detail::io_kind hello{"tls accept (waiting for ClientHello)", false,
                                               coop::detail::direct_io_budget};
  const coop::detail::io_handle h = coop::detail::handle_of(tcp.socket());
  char first = 0;
  const std::size_t n = coop::detail::io_loop(
      call, h, hello, &tcp, [&](int flags) { return ::recv(h.fd, &first, 1, MSG_PEEK | flags); }, ec);
  if (n == 0 && !ec) ec = boost::asio::error::eof;
}
} // namespace

} // namespace coop::net

namespace coop::detail {
namespace {

constexpr std::size_t burst_peak = 256; ///< sessions at once that count as a burst
std::atomic<std::size_t> live_sessions{0};
std::atomic<std::size_t> peak_sessions{0}; ///< since the last trim was asked for

/// glibc keeps freed memory inside its heaps (only a free top is trimmed on
/// its own). A thread of its own, started at the first burst's end, gives
/// the free pages back (`malloc_trim`) a second after it is asked to, so
/// that the rest of the burst has ended by then; requests meanwhile
/// coalesce. It never blocks a runtime thread, and nothing waits for it
/// (it is detached; its state is never destroyed, so exit cannot pull it
/// from under it).
class trimmer {
public:
  static void request() {
    static trimmer* const t = start();
    {
      std::lock_guard<std::mutex> lk(t->lock_);
      t->due_ = true;
    }
    t->wake_.notify_one();
  }

private:
  static trimmer* start() {
    auto* t = new trimmer;
    std::thread([t] { t->run(); }).detach();
    return t;
  }
  [[noreturn]] void run() {
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(lock_);
        wake_.wait(lk, [this] { return due_; });
      }
      std::this_thread::sleep_for(std::chrono::seconds(1));
      {
        std::lock_guard<std::mutex> lk(lock_);
        due_ = false;
      }
      ::malloc_trim(0);
    }
  }

  std::mutex lock_;
  std::condition_variable wake_;
  bool due_ = false;
};

void session_ended() {
  const std::size_t now = live_sessions.fetch_sub(1, std::memory_order_relaxed) - 1;
  std::size_t peak = peak_sessions.load(std::memory_order_relaxed);
  if (peak < burst_peak || now > peak / 2) return;
  // One thread claims this step down; the peak starts again from here.
  if (!peak_sessions.compare_exchange_strong(peak, now, std::memory_order_relaxed)) return;
  try {
    trimmer::request();
  } catch (...) { // no thread could be started: the trim is only an optimisation
  }
}

} // namespace

tls_session_count::tls_session_count() noexcept {
  const std::size_t now = live_sessions.fetch_add(1, std::memory_order_relaxed) + 1;
  std::size_t peak = peak_sessions.load(std::memory_order_relaxed);
  while (now > peak && !peak_sessions.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

tls_session_count& tls_session_count::operator=(tls_session_count&& other) noexcept {
  if (this != &other) {
    if (counted_) session_ended();
    counted_ = std::exchange(other.counted_, false);
  }
  return *this;
}

tls_session_count::~tls_session_count() {
  if (counted_) session_ended();
}

} // namespace coop::detail

namespace coop::net {

tls_stream::tls_stream(tcp_stream tcp, ssl::context& ctx) : ssl_(std::move(tcp.socket()), ctx) {
  // Also for contexts not made here: OpenSSL frees its record buffers
  // whenever they are empty, i.e. while the connection idles.
  SSL_set_mode(ssl_.native_handle(), SSL_MODE_RELEASE_BUFFERS);
}

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
  coop::detail::throw_call_error(ec, "coop::net", "tls_connect");
  return s;
}

tls_stream tls_connect(const tcp::endpoint& endpoint, std::string_view host_name, ssl::context& ctx) {
  boost::system::error_code ec;
  tls_stream s = tls_connect(endpoint, host_name, ctx, ec);
  coop::detail::throw_call_error(ec, "coop::net", "tls_connect");
  return s;
}

tls_stream tls_accept(tcp_stream tcp, ssl::context& ctx, boost::system::error_code& ec) {
  require_fiber_mode("coop::net::tls_accept");
  server_limits* limits = limits_of(ctx);
  std::optional<coop::timeout> bound;
  if (limits && limits->options.handshake_timeout.count() > 0) bound.emplace(limits->options.handshake_timeout);
  wait_for_client_hello(tcp, ec);
  if (ec) return tls_stream(std::move(tcp), ctx);
  const bool limited = limits && limits->options.max_handshakes != 0;
  if (limited) {
    limits->slots.acquire(ec);
    if (ec) return tls_stream(std::move(tcp), ctx);
  }
  struct slot { // given back however the handshake ends
    server_limits* limits;
    ~slot() {
      if (limits) limits->slots.release();
    }
  } held{limited ? limits : nullptr};
  tls_stream s(std::move(tcp), ctx);
  s.handshake(ssl::stream_base::server, ec);
  return s;
}

tls_stream tls_accept(tcp_stream tcp, ssl::context& ctx) {
  boost::system::error_code ec;
  tls_stream s = tls_accept(std::move(tcp), ctx, ec);
  coop::detail::throw_call_error(ec, "coop::net", "tls_accept");
  return s;
}

ssl::context tls_client_context() {
  ssl::context ctx(ssl::context::tls_client);
  set_up_context(ctx, "coop::net::tls_client_context");
  ctx.set_default_verify_paths();
  ctx.set_verify_mode(ssl::verify_peer);
  return ctx;
}

ssl::context tls_client_context(const std::string& ca_file) {
  ssl::context ctx(ssl::context::tls_client);
  set_up_context(ctx, "coop::net::tls_client_context");
  boost::system::error_code ec;
  ctx.load_verify_file(ca_file, ec);
  if (ec) throw boost::system::system_error(ec, "coop::net::tls_client_context: CA file '" + ca_file + "'");
  ctx.set_verify_mode(ssl::verify_peer);
  return ctx;
}

ssl::context tls_server_context(const std::string& cert_chain_file, const std::string& key_file,
                                const tls_server_options& options) {
  ssl::context ctx(ssl::context::tls_server);
  auto limits = std::make_unique<server_limits>(options);
  if (!SSL_CTX_set_ex_data(ctx.native_handle(), server_limits_index(), limits.get()))
    throw boost::system::system_error(last_ssl_error(), "coop::net::tls_server_context");
  limits.release(); // the context frees it
  set_up_context(ctx, "coop::net::tls_server_context");
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
