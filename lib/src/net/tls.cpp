#include <coop/net/tls.hpp>

#include <coop/detail/fiber_state.hpp>
#include <coop/net/connect.hpp>
#include <coop/semaphore.hpp>
#include <coop/timeout.hpp>

#include <boost/asio/ip/address.hpp>
#include <coop/detail/io_loop.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

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
  SSL* native = s.native_handle();
  boost::system::error_code not_ip;
  boost::asio::ip::make_address(name, not_ip);
  // RFC 6066: SNI carries DNS names only, never an address literal.
  if (not_ip && !name.empty() && !SSL_set_tlsext_host_name(native, name.c_str())) {
    ec = last_ssl_error();
    return s;
  }
  if (SSL_get_verify_mode(native) & SSL_VERIFY_PEER) {
    // OpenSSL's own chain and name checks (RFC 6125: a DNS name, or an
    // address against the certificate's IP entries); a verify callback set
    // on the context does not apply to this stream.
    SSL_set_verify(native, SSL_get_verify_mode(native), nullptr);
    X509_VERIFY_PARAM* param = SSL_get0_param(native);
    const int ok = not_ip ? X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size())
                          : X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
    if (!ok) {
      ec = last_ssl_error();
      return s;
    }
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

// --- a stream's session: OpenSSL, its socket and its output ----------------

namespace coop::detail {

/// OpenSSL's session for one stream, and where it reads and writes. OpenSSL
/// reads the socket itself, through a BIO of coop's (a non-blocking `recv`;
/// read-ahead, so one system call brings every record that has arrived).
/// What it writes (the records of the caller's data, handshake messages,
/// alerts, the answer to a KeyUpdate) is appended to the session's output,
/// never refused, and `send_out` hands that to the kernel from the front. So
/// OpenSSL never holds a half-sent record (no write of its ever blocks), and
/// a reader and a writer of one stream may step it in any interleaving:
/// output leaves in the order OpenSSL made it, whichever fiber sends it.
class tls_session {
public:
  tls_session() = default;
  tls_session(const tls_session&) = delete;
  tls_session& operator=(const tls_session&) = delete;
  ~tls_session() {
    if (ssl) SSL_free(ssl); // and its BIO
  }

  /// One read: what OpenSSL has decrypted, up to `size` bytes, into `got`.
  io_want read_step(void* data, std::size_t size, std::size_t& got, boost::system::error_code& ec);
  /// One write: encrypts the buffers once (up to `coop::net::tls_stream::max_write`
  /// bytes, counted in `written`), then sends until all of it has gone.
  io_want write_step(const iovec* v, std::size_t count, std::size_t& written, boost::system::error_code& ec);
  /// One step of the handshake; our flight goes out before we wait for the answer.
  io_want handshake_step(boost::system::error_code& ec);
  /// One step of the shutdown: our close_notify goes out, then we wait for the peer's.
  io_want shutdown_step(boost::system::error_code& ec);

  /// The BIO's two ends. `read_from_socket` returns -2 for "would block".
  int read_from_socket(char* data, int size) noexcept;
  int write_to_output(const char* data, int size) noexcept;

  SSL* ssl = nullptr;
  int fd = -1; ///< the socket's descriptor, set at the start of each call

private:
  /// What OpenSSL's failed call (returning `r`) needs, or the error it ended with.
  io_want after(int r, boost::system::error_code& ec);
  /// Hands the output to the kernel without waiting: `io_want::write` while some is left.
  io_want send_out(boost::system::error_code& ec);
  /// For output of a call that waits for nothing more (a read's answer to a
  /// KeyUpdate, an alert before an error): what the kernel takes now; the
  /// rest goes with the stream's next call that sends.
  void try_send_out() {
    boost::system::error_code ignored;
    send_out(ignored);
  }
  void start_step() noexcept {
    ::ERR_clear_error();
    read_errno_ = 0;
  }

  std::string out_;      ///< records made and not yet with the kernel, from `sent_` on
  std::size_t sent_ = 0; ///< out_[0, sent_) has gone
  int read_errno_ = 0;   ///< why the last `recv` failed (not EAGAIN)
};

void tls_session_deleter::operator()(tls_session* s) const noexcept {
  delete s;
}

namespace {

// --- the BIO between OpenSSL and the session -------------------------------

tls_session& session_of(BIO* bio) noexcept {
  return *static_cast<tls_session*>(BIO_get_data(bio));
}

int bio_read(BIO* bio, char* data, int size) {
  BIO_clear_retry_flags(bio);
  const int r = session_of(bio).read_from_socket(data, size);
  if (r != -2) return r;
  BIO_set_retry_read(bio);
  return -1;
}

int bio_write(BIO* bio, const char* data, int size) {
  BIO_clear_retry_flags(bio);
  return session_of(bio).write_to_output(data, size);
}

long bio_ctrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0; // the session's calls send the output
}

int bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

BIO_METHOD* make_bio_method() {
  BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "coop::net::tls_stream");
  if (m && BIO_meth_set_read(m, bio_read) && BIO_meth_set_write(m, bio_write) && BIO_meth_set_ctrl(m, bio_ctrl) &&
      BIO_meth_set_create(m, bio_create))
    return m;
  BIO_meth_free(m);
  return nullptr;
}

BIO_METHOD* bio_method() {
  static BIO_METHOD* const method = make_bio_method(); // kept for the process's life
  return method;
}

/// OpenSSL's error queue as an error code; a connection that ended without
/// close_notify is `stream_truncated`, as Asio reports it.
boost::system::error_code ssl_error() {
  const unsigned long e = ::ERR_get_error();
  ::ERR_clear_error();
  if (e == 0 || (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING))
    return boost::asio::ssl::error::stream_truncated;
  return {static_cast<int>(e), boost::asio::error::get_ssl_category()};
}

} // namespace

int tls_session::read_from_socket(char* data, int size) noexcept {
  for (;;) {
    const ssize_t r = ::recv(fd, data, static_cast<std::size_t>(size), MSG_DONTWAIT);
    if (r >= 0) return static_cast<int>(r); // 0: the peer closed TCP
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -2;
    read_errno_ = errno;
    return -1;
  }
}

int tls_session::write_to_output(const char* data, int size) noexcept {
  try {
    out_.append(data, static_cast<std::size_t>(size));
    return size;
  } catch (...) { // no memory: a failed write for OpenSSL (nothing thrown through C)
    return -1;
  }
}

io_want tls_session::send_out(boost::system::error_code& ec) {
  while (sent_ < out_.size()) {
    const ssize_t r = ::send(fd, out_.data() + sent_, out_.size() - sent_, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r >= 0) {
      sent_ += static_cast<std::size_t>(r);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return io_want::write;
    ec.assign(errno, boost::system::system_category());
    return io_want::nothing;
  }
  // All gone. An idle stream keeps no more than a small buffer.
  sent_ = 0;
  if (out_.capacity() > 1024)
    std::string().swap(out_);
  else
    out_.clear();
  return io_want::nothing;
}

io_want tls_session::after(int r, boost::system::error_code& ec) {
  switch (SSL_get_error(ssl, r)) {
  case SSL_ERROR_WANT_READ:
    return io_want::read;
  case SSL_ERROR_WANT_WRITE: // not with the session's BIO, which takes all output
    return io_want::write;
  case SSL_ERROR_ZERO_RETURN:
    ec = boost::asio::error::eof; // the peer's close_notify
    break;
  case SSL_ERROR_SYSCALL:
    if (read_errno_ != 0) {
      ec.assign(read_errno_, boost::system::system_category());
      break;
    }
    ec = ssl_error(); // end of the stream without close_notify, or OpenSSL's reason
    break;
  default:
    ec = ssl_error();
    break;
  }
  try_send_out(); // an alert OpenSSL made, if any
  return io_want::nothing;
}

io_want tls_session::read_step(void* data, std::size_t size, std::size_t& got, boost::system::error_code& ec) {
  start_step();
  std::size_t n = 0;
  const int r = SSL_read_ex(ssl, data, size, &n);
  if (r != 1) return after(r, ec);
  got = n;
  if (sent_ < out_.size()) try_send_out(); // e.g. the answer to a KeyUpdate
  return io_want::nothing;
}

io_want tls_session::write_step(const iovec* v, std::size_t count, std::size_t& written,
                                boost::system::error_code& ec) {
  if (written == 0) {
    start_step();
    for (std::size_t i = 0; i < count && written < coop::net::tls_stream::max_write; ++i) {
      const std::size_t len = (std::min)(v[i].iov_len, coop::net::tls_stream::max_write - written);
      if (len == 0) continue;
      std::size_t n = 0;
      const int r = SSL_write_ex(ssl, v[i].iov_base, len, &n);
      if (r == 1) {
        written += n;
        continue;
      }
      if (written != 0) break; // what is encrypted goes out; the caller writes the rest later
      // Nothing encrypted: OpenSSL first needs the peer (a handshake not yet
      // done), or failed. Its own output goes out first either way.
      const io_want want = after(r, ec);
      if (ec) return io_want::nothing;
      const io_want out = send_out(ec);
      return ec ? io_want::nothing : (out == io_want::write ? out : want);
    }
  }
  return send_out(ec);
}

io_want tls_session::handshake_step(boost::system::error_code& ec) {
  start_step();
  const int r = SSL_do_handshake(ssl);
  const io_want want = r == 1 ? io_want::nothing : after(r, ec);
  if (ec) return io_want::nothing;
  const io_want out = send_out(ec); // our flight, before we wait for the answer
  if (ec || out == io_want::write) return out;
  return want;
}

io_want tls_session::shutdown_step(boost::system::error_code& ec) {
  start_step();
  int r = SSL_shutdown(ssl);
  if (r == 0) r = SSL_shutdown(ssl); // ours is made; now look for the peer's
  const io_want want = r == 1 ? io_want::nothing : after(r, ec);
  if (ec) return io_want::nothing;
  const io_want out = send_out(ec); // our close_notify, before we wait for theirs
  if (ec || out == io_want::write) return out;
  return want;
}

} // namespace coop::detail

// --- tls_stream --------------------------------------------------------------

namespace coop::net {
namespace {

/// The start of every TLS call: the stream's runtime thread, a fiber, no
/// interruption due; and the descriptor the session reads and writes.
coop::detail::io_call begin_tls(tcp::socket& socket, coop::detail::tls_session& session, const char* what,
                                boost::system::error_code& ec) {
  const coop::detail::io_call call = coop::detail::begin_io(socket.get_executor(), what, ec);
  if (!call.fiber) fibers_only(what);
  session.fd = socket.native_handle();
  return call;
}

} // namespace

tls_stream::tls_stream(tcp_stream tcp, ssl::context& ctx)
    : socket_(std::move(tcp.socket())), session_(new coop::detail::tls_session) {
  SSL* ssl = SSL_new(ctx.native_handle());
  if (!ssl) throw boost::system::system_error(last_ssl_error(), "coop::net::tls_stream");
  session_->ssl = ssl;
  BIO_METHOD* method = coop::detail::bio_method();
  BIO* bio = method ? BIO_new(method) : nullptr;
  if (!bio) throw boost::system::system_error(last_ssl_error(), "coop::net::tls_stream");
  BIO_set_data(bio, session_.get());
  SSL_set_bio(ssl, bio, bio); // one reference, for both directions
  // Also for contexts not made here: OpenSSL frees its record buffers
  // whenever they are empty, i.e. while the connection idles.
  SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
  SSL_set_read_ahead(ssl, 1);
  // A TLS 1.2 peer's renegotiation would make a write wait for input.
  SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
  session_->fd = socket_.native_handle();
}

/// The waits of a TLS call (either direction: see `drive_io`).
constexpr coop::detail::io_kind tls_read{"tls read", false, coop::detail::direct_io_budget};
constexpr coop::detail::io_kind tls_write{"tls write", true, 0};
constexpr coop::detail::io_kind tls_handshake{"tls handshake", false, 0};
constexpr coop::detail::io_kind tls_shutdown{"tls shutdown", false, 0};

tls_stream::~tls_stream() = default;

SSL* tls_stream::native_handle() const noexcept {
  return session_ ? session_->ssl : nullptr;
}

std::size_t tls_stream::read(void* data, std::size_t size, boost::system::error_code& ec) {
  const coop::detail::io_call call = begin_tls(socket_, *session_, "coop::net::tls_stream::read_some", ec);
  if (ec) return 0;
  std::size_t got = 0;
  coop::detail::drive_io(
      call, coop::detail::handle_of(socket_), tls_read, this, [&] { return session_->read_step(data, size, got, ec); },
      ec);
  return ec ? 0 : got;
}

std::size_t tls_stream::write(const iovec* v, std::size_t count, boost::system::error_code& ec) {
  const coop::detail::io_call call = begin_tls(socket_, *session_, "coop::net::tls_stream::write_some", ec);
  if (ec) return 0;
  std::size_t written = 0;
  coop::detail::drive_io(
      call, coop::detail::handle_of(socket_), tls_write, this,
      [&] { return session_->write_step(v, count, written, ec); }, ec);
  return ec ? 0 : written;
}

void tls_stream::handshake(ssl::stream_base::handshake_type type, boost::system::error_code& ec) {
  const coop::detail::io_call call = begin_tls(socket_, *session_, "coop::net::tls_stream::handshake", ec);
  if (ec) return;
  if (type == ssl::stream_base::client)
    SSL_set_connect_state(session_->ssl);
  else
    SSL_set_accept_state(session_->ssl);
  coop::detail::drive_io(
      call, coop::detail::handle_of(socket_), tls_handshake, this, [&] { return session_->handshake_step(ec); }, ec);
}

void tls_stream::shutdown(boost::system::error_code& ec) {
  const coop::detail::io_call call = begin_tls(socket_, *session_, "coop::net::tls_stream::shutdown", ec);
  if (ec) return;
  coop::detail::drive_io(
      call, coop::detail::handle_of(socket_), tls_shutdown, this, [&] { return session_->shutdown_step(ec); }, ec);
}

coop::detail::io_want tls_stream::async_step(bool is_write, void* data, std::size_t size, std::size_t& done,
                                             std::size_t& written, boost::system::error_code& ec) {
  session_->fd = socket_.native_handle();
  if (!is_write) return session_->read_step(data, size, done, ec);
  const iovec v{data, size};
  const coop::detail::io_want want = session_->write_step(&v, 1, written, ec);
  if (want == coop::detail::io_want::nothing && !ec) done = written;
  return want;
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
