"""The fault suite: misbehaving peers against the sample servers, run as real
processes. `python3 test_faults.py CASE BINARY`.

Every case starts a server, measures its baseline (descriptors in
/proc/PID/fd, VmRSS in /proc/PID/status), applies one fault, and checks that
  (a) the process is still alive,
  (b) a healthy client gets its answer within HEALTHY_WITHIN seconds, during
      the fault and after it,
  (c) the descriptor count comes back to within FD_MARGIN of the baseline
      once the fault ends (polled until a deadline, usually the server's idle
      timeout + 3 s), and
  (d) the peak VmRSS, sampled every 20 ms while the case runs, stays under
      the baseline plus the bound the case states (RSS_BOUND_MIB).
docs/reliability.md ("Fault suite") describes the cases and their bounds.
"""

import collections
import os
import re
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "samples"))
from samplelib import App, TestFailure, Upstream, check, check_eq, main  # noqa: E402

HEALTHY_WITHIN = 2.0  # seconds a healthy client may wait for its answer
FD_MARGIN = 2  # descriptors above the baseline still counted as "back"
SKIP = 77  # ctest's SKIP_RETURN_CODE: the machine cannot run this case

# Peak VmRSS above the baseline each case allows, in MiB (measured values and
# the margin are in docs/reliability.md).
RSS_BOUND_MIB = {
    "http_slowloris": 16,
    "http_huge_header": 16,
    "http_idle_keepalive": 48,
    "http_pipeline_never_reads": 16,
    "chat_endless_line": 16,
    "chat_never_reads": 48,  # 3 outboxes of up to 200 lines of 60 KB
    "chat_idle": 16,
    "forwarder_reset": 32,
    "forwarder_half_close": 32,
    "forwarder_never_reads": 16,
    "udp_flood": 16,
    "echo_connection_flood": 32,
    "handler_exception": 16,
}


# AddressSanitizer's shadow memory and redzones multiply what a server
# touches; under it (the asan preset) every bound is this many times larger.
ASAN_RSS_FACTOR = 4


def asan_quarantine_mib():
    """What AddressSanitizer's quarantine may hold on top: freed blocks are kept
    (not reused) until they add up to quarantine_size_mb (256 on 64-bit Linux
    unless ASAN_OPTIONS says otherwise), so RSS follows the bytes a server has
    allocated, not the bytes it holds, up to that much."""
    m = re.search(r"(?:^|:)quarantine_size_mb=(\d+)", os.environ.get("ASAN_OPTIONS", ""))
    return int(m.group(1)) if m else 256


# --- measuring the server ------------------------------------------------------------------------------------------

def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def sanitized(pid):
    """True when the process runs with AddressSanitizer (libasan is mapped)."""
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise TestFailure("no VmRSS line in /proc/PID/status")


class Watch:
    """Watches one server process: its baseline, then peak RSS and descriptors
    sampled in a thread until `finish`."""

    def __init__(self, app, case):
        self.app, self.case = app, case
        self.pid = app.proc.pid
        self.fd_base = settle_fds(self.pid)
        self.rss_base = rss_kib(self.pid)
        self.rss_peak, self.fd_peak = self.rss_base, self.fd_base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        print(f"baseline: {self.fd_base} descriptors, VmRSS {self.rss_base} KiB")

    def _sample(self):
        while not self._stop.wait(0.02):
            try:
                self.rss_peak = max(self.rss_peak, rss_kib(self.pid))
                self.fd_peak = max(self.fd_peak, fd_count(self.pid))
            except (OSError, TestFailure):
                return  # the process is gone: check_alive says so

    def check_alive(self, when):
        check(self.app.alive(), f"the server died {when} (status {self.app.proc.returncode}); "
                                f"stderr: {self.app.stderr()[-2000:]!r}")

    def wait_fds_back(self, within, what):
        """Polls until the descriptor count is within FD_MARGIN of the baseline."""
        deadline = time.monotonic() + within
        while True:
            self.check_alive(f"while waiting for {what}")
            n = fd_count(self.pid)
            if n <= self.fd_base + FD_MARGIN:
                return n
            if time.monotonic() >= deadline:
                raise TestFailure(f"{what}: the server still has {n} descriptors {within:.0f} s later "
                                  f"(baseline {self.fd_base}, margin {FD_MARGIN})")
            time.sleep(0.05)

    def finish(self):
        """Stops sampling; checks liveness and the RSS bound; prints the figures."""
        self._stop.set()
        self._thread.join()
        self.check_alive("after the fault")
        self.rss_peak = max(self.rss_peak, rss_kib(self.pid))
        grew = (self.rss_peak - self.rss_base) / 1024
        bound = RSS_BOUND_MIB[self.case]
        if sanitized(self.pid):
            bound = bound * ASAN_RSS_FACTOR + asan_quarantine_mib()
        print(f"{self.case}: peak {self.fd_peak} descriptors (baseline {self.fd_base}), "
              f"peak VmRSS {self.rss_peak} KiB = baseline + {grew:.1f} MiB (bound + {bound} MiB)")
        check(grew <= bound, f"peak VmRSS grew by {grew:.1f} MiB, more than the stated {bound} MiB")


def wait_held(w, n, what, within=5.0):
    """Waits until the server holds at least `n` descriptors more than its
    baseline (it has accepted the fault's connections)."""
    deadline = time.monotonic() + within
    while fd_count(w.pid) < w.fd_base + n:
        check(time.monotonic() < deadline, f"the server never held the {n} {what} "
                                           f"({fd_count(w.pid)} descriptors, baseline {w.fd_base})")
        time.sleep(0.01)


def settle_fds(pid, quiet=0.2, limit=3.0):
    """The descriptor count once it has stayed the same for `quiet` seconds."""
    deadline = time.monotonic() + limit
    last, since = fd_count(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.02)
        n = fd_count(pid)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def raise_fd_limit(needed):
    """Raises our soft RLIMIT_NOFILE (servers we start inherit it); exits 77
    (skipped) when the hard limit is below `needed`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        print(f"SKIP: needs {needed} open files, the hard limit is {hard}")
        sys.exit(SKIP)
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


# --- clients -------------------------------------------------------------------------------------------------------

def tcp(port, timeout=HEALTHY_WITHIN, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # set before connecting, so the window is small from the start
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s


def reset_close(sock):
    """Closes with SO_LINGER 0: the peer gets a reset, not an end of stream."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def closed_by_peer(sock, within):
    """True when the peer ends the connection (end of stream or reset) within
    `within` seconds; data that arrives meanwhile is dropped."""
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            if not sock.recv(1 << 16):
                return True
        except socket.timeout:
            return False
        except OSError:
            return True


def count_closed_by_peer(socks, within):
    """How many of `socks` the peer ends within `within` seconds, all told."""
    deadline = time.monotonic() + within
    return sum(closed_by_peer(s, max(0.01, deadline - time.monotonic())) for s in socks)


def timed(what, fn):
    """Runs a healthy client's exchange; it must finish within HEALTHY_WITHIN."""
    start = time.monotonic()
    try:
        fn()
    except OSError as e:
        raise TestFailure(f"healthy client {what}: {e!r}")
    took = time.monotonic() - start
    check(took <= HEALTHY_WITHIN, f"healthy client {what}: answered after {took:.2f} s")


def http_healthy(port, what):
    def exchange():
        with tcp(port) as s:
            s.sendall(b"GET /healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
            check(data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"Hello, world!\n"),
                  f"healthy client {what}: unexpected answer {data[:200]!r}")
    timed(what, exchange)


def line_echo_healthy(port, what):
    """For servers that echo what they get (echo_server, throwing_server, the
    forwarder in front of an echo upstream)."""
    def exchange():
        with tcp(port) as s:
            s.sendall(b"healthy\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(1 << 16)
                check(chunk, f"healthy client {what}: connection closed after {data!r}")
                data += chunk
            check_eq(data, b"healthy\n", f"healthy client {what}")
    timed(what, exchange)


def chat_healthy(port, what):
    """Two fresh clients: what one says, the other hears. The speaker repeats
    itself until heard, since the server enters a client into the room only
    when its fiber starts."""
    def exchange():
        with tcp(port) as a, tcp(port) as b:
            deadline = time.monotonic() + HEALTHY_WITHIN
            heard = b""
            while b"healthy\n" not in heard:
                check(time.monotonic() < deadline, f"healthy client {what}: never heard the other")
                a.sendall(b"healthy\n")
                r, _, _ = select.select([b], [], [], 0.1)
                if r:
                    chunk = b.recv(1 << 16)
                    check(chunk, f"healthy client {what}: disconnected")
                    heard += chunk
    timed(what, exchange)


def udp_healthy(port, what, size=10):
    """Sends a datagram every 100 ms until one comes back (UDP may drop some
    under a flood); the first answer must come within HEALTHY_WITHIN."""
    payload = b"h" * size
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        start = time.monotonic()
        while time.monotonic() - start < HEALTHY_WITHIN:
            s.send(payload)
            r, _, _ = select.select([s], [], [], 0.1)
            while r:
                data = s.recv(1 << 17)
                if data == payload:
                    return
                r, _, _ = select.select([s], [], [], 0)
        raise TestFailure(f"healthy UDP client {what}: no answer within {HEALTHY_WITHIN} s")


def echo_upstream_handler(conn):
    """Echoes until end of stream; a line 'reset' makes it close with a reset."""
    while True:
        data = conn.recv(1 << 16)
        if not data:
            return
        if b"reset\n" in data:
            reset_close(conn)
            return
        conn.sendall(data)


def run_threads(targets):
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in threads:
        t.start()
    return threads


def join_all(threads, within, what):
    deadline = time.monotonic() + within
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    check(not any(t.is_alive() for t in threads), f"{what}: client threads still running after {within} s")


# --- http_hello ----------------------------------------------------------------------------------------------------

def http_slowloris(binary):
    """200 connections send a request header one byte every 0.25 s and never
    finish it. With --idle-timeout 2 the server must close every one of them
    by 2 s + 3 s even though bytes keep arriving (the whole request has a
    deadline, not each read)."""
    idle = 2
    app = App([binary, "--port", "0", "--idle-timeout", str(idle)])
    http_healthy(app.port, "before the fault")
    w = Watch(app, "http_slowloris")
    socks = [tcp(app.port) for _ in range(200)]
    for s in socks:
        s.setblocking(False)
        s.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    start = time.monotonic()
    open_socks = list(socks)
    while open_socks and time.monotonic() - start < idle + 3:
        still = []
        for s in open_socks:
            try:
                s.send(b"a")  # one more byte; never the end of the header
                if s.recv(1 << 16) == b"":
                    continue  # the server closed it
            except BlockingIOError:
                pass
            except OSError:
                continue  # reset: closed by the server
            still.append(s)
        open_socks = still
        if time.monotonic() - start > 1:
            http_healthy(app.port, "during the slowloris")
        time.sleep(0.25)
    took = time.monotonic() - start
    check(not open_socks, f"{len(open_socks)} of 200 slowloris connections still open after {took:.1f} s "
                          f"(--idle-timeout {idle})")
    print(f"all 200 slowloris connections closed by the server within {took:.1f} s")
    w.wait_fds_back(3, "after the slowloris connections were closed")
    w.finish()
    http_healthy(app.port, "after the fault")
    for s in socks:
        s.close()
    app.stop()


def http_huge_header(binary):
    """20 clients at once send a request with a 1 MiB header. Each gets 431
    (the header limit is 8 KiB) and its connection is closed; the server's
    memory does not grow with the header. --idle-timeout stays at its default
    (30 s): the connections must end because of the limit, not the timeout."""
    app = App([binary, "--port", "0"])
    w = Watch(app, "http_huge_header")
    statuses, errors = [], []
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"

    def client():
        try:
            with tcp(app.port, timeout=10) as s:
                try:
                    s.sendall(big)
                except OSError:
                    pass  # the server may stop reading once it has answered
                data = b""
                try:
                    while True:
                        chunk = s.recv(1 << 16)
                        if not chunk:
                            break
                        data += chunk
                except ConnectionResetError:
                    pass
                statuses.append(data.split(b"\r\n", 1)[0])
        except OSError as e:
            errors.append(repr(e))

    threads = run_threads([client] * 20)
    http_healthy(app.port, "during the 1 MiB headers")
    join_all(threads, 20, "1 MiB headers")
    check(not errors, f"client errors: {errors}")
    check_eq(dict(collections.Counter(statuses)), {b"HTTP/1.1 431 Request Header Fields Too Large": 20},
             "status lines (and how many)")
    w.wait_fds_back(3, "after the 1 MiB headers")
    w.finish()
    http_healthy(app.port, "after the fault")
    app.stop()


def http_idle_keepalive(binary):
    """2,000 keep-alive connections each make one request and then sit idle.
    The server holds them all (a healthy client is still served at once), then
    closes them after --idle-timeout (8 s) while the clients keep them open."""
    n, idle = 2000, 8
    raise_fd_limit(n + 200)
    app = App([binary, "--port", "0", "--idle-timeout", str(idle)])
    w = Watch(app, "http_idle_keepalive")
    socks = []
    start = time.monotonic()
    for i in range(n):
        s = tcp(app.port, timeout=10)
        socks.append(s)
        s.sendall(b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n")
    for i, s in enumerate(socks):
        data = b""
        while not data.endswith(b"Hello, world!\n"):
            chunk = s.recv(1 << 16)
            check(chunk, f"connection {i} closed before its answer")
            data += chunk
    took = time.monotonic() - start
    print(f"{n} keep-alive connections opened and answered in {took:.1f} s")
    check(took < idle - 2, f"opening took {took:.1f} s, too close to --idle-timeout {idle} to test holding them")
    held = fd_count(w.pid)
    check(held >= w.fd_base + n, f"the server holds {held} descriptors, expected {n} more than {w.fd_base}")
    http_healthy(app.port, f"while {n} idle connections are held")
    w.wait_fds_back(idle + 3, f"{n} idle keep-alive connections past --idle-timeout {idle}")
    w.finish()
    closed = count_closed_by_peer(socks[:100], 1)
    check_eq(closed, 100, "of the first 100 idle connections, closed by the server")
    for s in socks:
        s.close()
    http_healthy(app.port, "after the fault")
    app.stop()


def http_pipeline_never_reads(binary):
    """4 clients pipeline requests without end and never read the answers.
    The server answers until its send buffer (up to 4 MiB per connection) is
    full; then its write cannot finish, and --idle-timeout 1 must end those
    connections (descriptors back to the baseline) while the clients still
    hold their sockets. Filling the buffers takes a few seconds of server
    CPU, hence the 20 s deadline."""
    idle, n, within = 1, 4, 20
    app = App([binary, "--port", "0", "--idle-timeout", str(idle)])
    w = Watch(app, "http_pipeline_never_reads")
    socks = [tcp(app.port, rcvbuf=4096) for _ in range(n)]
    for s in socks:
        s.setblocking(False)
    wait_held(w, n, "pipelining connections")
    chunk = b"GET /p HTTP/1.1\r\nHost: x\r\n\r\n" * 1000
    sent, start, healthy_checked = 0, time.monotonic(), False
    while fd_count(w.pid) > w.fd_base + FD_MARGIN:
        took = time.monotonic() - start
        check(took < within, f"{n} pipelining clients that never read: the server still has {fd_count(w.pid)} "
                             f"descriptors {took:.0f} s later (baseline {w.fd_base}, --idle-timeout {idle})")
        for s in socks:
            try:
                sent += s.send(chunk)
            except OSError:
                pass  # full (the server is not reading), or closed by the server
        if not healthy_checked and took > 1:
            http_healthy(app.port, "while the pipelining clients block their connections")
            healthy_checked = True
        time.sleep(0.01)
    took = time.monotonic() - start
    print(f"pipelined {sent} bytes of requests on {n} connections; the server closed them after {took:.1f} s")
    w.finish()
    for s in socks:
        s.close()
    http_healthy(app.port, "after the fault")
    app.stop()


# --- chat_server ---------------------------------------------------------------------------------------------------

def chat_endless_line(binary):
    """10 clients each send an endless line (no newline, up to 64 MiB). Each
    is disconnected once its line passes --max-line (4096), memory stays
    bounded, and each is logged once. --idle-timeout stays at its default
    (300 s): the limit ends them, not the timeout."""
    app = App([binary, "--port", "0"])
    w = Watch(app, "chat_endless_line")
    results = []

    def client():
        with tcp(app.port, timeout=10) as s:
            block, sent = b"x" * (1 << 16), 0
            try:
                while sent < (64 << 20):
                    s.sendall(block)
                    sent += len(block)
                results.append(f"sent all {sent} bytes without being disconnected")
            except OSError:
                results.append("disconnected")

    threads = run_threads([client] * 10)
    chat_healthy(app.port, "during the endless lines")
    join_all(threads, 30, "endless lines")
    check_eq(results, ["disconnected"] * 10, "endless-line clients")
    w.wait_fds_back(3, "after the endless lines")
    w.finish()
    check_eq(app.stderr().count("sent a line longer than 4096 bytes"), 10, "log lines about too long lines")
    chat_healthy(app.port, "after the fault")
    app.stop()


def chat_never_reads(binary):
    """3 clients never read but keep talking (so they are not idle): a
    talker sends them 200 lines of 60 KB, far more than the kernel buffers
    hold, with --queue 1024 so their outboxes never fill. The write timeout
    (--idle-timeout 1) must disconnect them while they still hold their
    sockets."""
    idle, n = 1, 3
    app = App([binary, "--port", "0", "--idle-timeout", str(idle), "--queue", "1024", "--max-line", "65536"])
    w = Watch(app, "chat_never_reads")
    deaf = [tcp(app.port, rcvbuf=4096) for _ in range(n)]
    talker = tcp(app.port, timeout=10)
    stop = threading.Event()

    def keep_talking():  # the deaf clients' reading sides stay busy
        while not stop.wait(0.2):
            for d in deaf:
                try:
                    d.sendall(b"still here\n")
                except OSError:
                    pass

    def drain_talker():  # the talker hears the deaf client's lines; it reads them
        talker.settimeout(0.2)
        while not stop.is_set():
            try:
                if not talker.recv(1 << 16):
                    return
            except socket.timeout:
                pass
            except OSError:
                return

    helpers = run_threads([keep_talking, drain_talker])
    time.sleep(0.3)  # both are in the room
    line = b"t" * 60000 + b"\n"
    for _ in range(200):
        talker.sendall(line)
    chat_healthy(app.port, "while clients do not read")
    check(fd_count(w.pid) >= w.fd_base + n, f"the server does not hold the {n} clients that never read")
    w.wait_fds_back(idle + 3, f"{n} clients that never read, past --idle-timeout {idle}")
    stop.set()
    join_all(helpers, 5, "helpers")
    w.finish()
    check_eq(app.stderr().count("did not take a line within"), n, "log lines about the clients that never read")
    for d in deaf:
        d.close()
    talker.close()
    chat_healthy(app.port, "after the fault")
    app.stop()


def chat_idle(binary):
    """50 clients connect and say nothing in a quiet room: with
    --idle-timeout 1 the server closes them while they keep their sockets."""
    idle = 1
    app = App([binary, "--port", "0", "--idle-timeout", str(idle)])
    w = Watch(app, "chat_idle")
    socks = [tcp(app.port) for _ in range(50)]
    w.wait_fds_back(idle + 3, f"50 silent clients, past --idle-timeout {idle}")
    check_eq(count_closed_by_peer(socks, idle + 3), 50, "silent clients disconnected")
    w.finish()
    for s in socks:
        s.close()
    chat_healthy(app.port, "after the fault")
    app.stop()


# --- port_forwarder ------------------------------------------------------------------------------------------------

def forwarder(binary, upstream, idle):
    return App([binary, "--port", "0", "--to", f"127.0.0.1:{upstream.port}", "--idle-timeout", str(idle)])


def forwarder_reset(binary):
    """100 clients through the forwarder to an echo upstream: 50 send 256 KiB
    and close with a reset without reading; 50 make the upstream close with
    a reset. The forwarder closes both sides of each at once: descriptors
    back within 3 s with --idle-timeout 300, so the timeout plays no part."""
    up = Upstream(echo_upstream_handler, backlog=512, timeout=None)
    app = forwarder(binary, up, 300)
    line_echo_healthy(app.port, "before the fault")
    w = Watch(app, "forwarder_reset")
    socks = [tcp(app.port, timeout=10) for _ in range(100)]
    for s in socks:  # every one is relayed before the resets start
        s.sendall(b"hello\n")
        check_eq(s.recv(100), b"hello\n", "echo through the forwarder")
    for i, s in enumerate(socks):
        if i % 2 == 0:
            s.setblocking(False)
            try:
                s.send(b"z" * (256 << 10))
            except BlockingIOError:
                pass
            reset_close(s)
        else:
            s.sendall(b"reset\n")
    line_echo_healthy(app.port, "during the resets")
    for s in socks[1::2]:
        check(closed_by_peer(s, 5), "a client whose upstream reset was not closed")
        s.close()
    w.wait_fds_back(3, "after 100 resets")
    w.finish()
    line_echo_healthy(app.port, "after the fault")
    app.stop()


def healthy_or(behaviour):
    """An upstream handler: a connection whose first bytes are the healthy
    client's line is echoed; any other gets `behaviour(conn)`."""
    def handler(conn):
        first = conn.recv(1 << 16)
        if first == b"healthy\n":
            conn.sendall(first)
        else:
            behaviour(conn)
    return handler


def forwarder_half_close(binary):
    """100 clients send a request, half-close, and then go away entirely,
    against an upstream that accepts, reads the request and never answers
    (nor closes). The forwarder's reply direction waits on the silent
    upstream; --idle-timeout 1 must close both sides of all 100 (descriptors
    back to the baseline)."""
    idle = 1
    up = Upstream(healthy_or(lambda conn: time.sleep(60)), backlog=512, timeout=None)
    app = forwarder(binary, up, idle)
    w = Watch(app, "forwarder_half_close")
    for _ in range(100):
        s = tcp(app.port)
        s.sendall(b"request\n")
        s.shutdown(socket.SHUT_WR)
        s.close()
    line_echo_healthy(app.port, "while 100 half-closed sessions wait on the silent upstream")
    w.wait_fds_back(idle + 3, f"100 half-closed clients, past --idle-timeout {idle}")
    check(w.fd_peak >= w.fd_base + 100, f"the forwarder never held the sessions (peak {w.fd_peak} descriptors)")
    w.finish()
    line_echo_healthy(app.port, "after the fault")
    app.stop()


def forwarder_never_reads(binary):
    """The upstream sends without end; 5 clients half-close and never read
    (and keep their sockets). The forwarder's writes to them stall, and
    nothing else is left of each session; --idle-timeout 1 must close both
    sides of each."""
    idle = 1

    def flood(conn):
        block = b"f" * (1 << 16)
        while True:
            conn.sendall(block)

    up = Upstream(healthy_or(flood), backlog=512, timeout=None)
    app = forwarder(binary, up, idle)
    w = Watch(app, "forwarder_never_reads")
    socks = [tcp(app.port, rcvbuf=4096) for _ in range(5)]
    for s in socks:
        s.sendall(b"go\n")
        s.shutdown(socket.SHUT_WR)  # the client-to-upstream pump ends: only the stalled write is left
    time.sleep(0.5)  # the pipes fill
    line_echo_healthy(app.port, "while clients do not read")
    check(fd_count(w.pid) >= w.fd_base + 10, "the forwarder does not hold the 5 sessions")
    w.wait_fds_back(idle + 3, f"5 clients that never read, past --idle-timeout {idle}")
    w.finish()
    for s in socks:
        s.close()
    line_echo_healthy(app.port, "after the fault")
    app.stop()


# --- udp_echo ------------------------------------------------------------------------------------------------------

def udp_flood(binary):
    """For 3 s, four senders blast small datagrams and one blasts 65,507-byte
    ones (the largest IPv4 UDP payload), from sockets that close at once (so
    replies meet ICMP port unreachable). The server keeps answering a healthy
    client, echoes a 65,507-byte datagram whole, and its descriptors and
    memory do not grow."""
    app = App([binary, "--port", "0"])
    w = Watch(app, "udp_flood")
    stop = threading.Event()
    counts = []

    def blaster(size):
        sent = 0
        payload = b"u" * size
        while not stop.is_set():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.setblocking(False)
                for _ in range(200):
                    try:
                        s.sendto(payload, ("127.0.0.1", app.port))
                        sent += 1
                    except (BlockingIOError, ConnectionRefusedError):
                        pass
        counts.append(sent)

    threads = run_threads([lambda: blaster(16)] * 4 + [lambda: blaster(65507)])
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        udp_healthy(app.port, "during the flood")
        time.sleep(0.2)
    udp_healthy(app.port, "with a 65,507-byte datagram during the flood", size=65507)
    stop.set()
    join_all(threads, 5, "UDP senders")
    print(f"sent {sum(counts)} datagrams in 3 s")
    check(w.fd_peak <= w.fd_base + FD_MARGIN, f"descriptors grew to {w.fd_peak} during the flood (baseline {w.fd_base})")
    w.wait_fds_back(1, "after the flood")
    w.finish()
    udp_healthy(app.port, "with a 65,507-byte datagram after the flood", size=65507)
    app.stop()


# --- echo_server ---------------------------------------------------------------------------------------------------

def stop_echo_server(app):
    """echo_server reports its stop on stderr, not with 'stopped by signal'."""
    app.proc.send_signal(signal.SIGTERM)
    try:
        app.proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        app.kill()
        raise TestFailure("echo_server did not exit within 10 s of SIGTERM")
    check_eq(app.proc.returncode, 0, f"echo_server exit status (stderr: {app.stderr()[-2000:]!r})")


def echo_connection_flood(binary):
    """echo_server --max-connections 100: 100 clients hold every slot, then
    1,000 more connect in a burst. Each extra one is closed at once, the
    server does not hold them (descriptors stay at baseline + 100); when one
    slot frees, a healthy client is served; when all leave, descriptors
    return to the baseline."""
    limit, extra = 100, 1000
    raise_fd_limit(limit + extra + 200)
    app = App([binary, "--port", "0", "--max-connections", str(limit), "--idle-timeout", "60"])
    line_echo_healthy(app.port, "before the fault")
    w = Watch(app, "echo_connection_flood")
    holders = []
    for _ in range(limit):
        s = tcp(app.port, timeout=10)
        s.sendall(b"hold\n")
        check_eq(s.recv(100), b"hold\n", "a holder's echo")
        holders.append(s)
    flood = [tcp(app.port, timeout=10) for _ in range(extra)]  # connected by the kernel, in a burst
    refused = count_closed_by_peer(flood, 5)
    check_eq(refused, extra, "connections beyond --max-connections closed by the server")
    for s in flood:
        s.close()
    n = settle_fds(w.pid)
    check(n <= w.fd_base + limit + FD_MARGIN, f"after the flood the server holds {n} descriptors "
                                              f"(baseline {w.fd_base} + {limit} holders)")
    holders.pop().close()
    deadline = time.monotonic() + HEALTHY_WITHIN  # the freed slot is noticed a moment later
    while True:
        try:
            line_echo_healthy(app.port, "in the slot a holder freed")
            break
        except TestFailure:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    for s in holders:
        s.close()
    w.wait_fds_back(3, "after every client left")
    w.finish()
    line_echo_healthy(app.port, "after the fault")
    stop_echo_server(app)


# --- an exception in a handler (test app throwing_server) ----------------------------------------------------------

def handler_exception(binary):
    """throwing_server's handler (run by coop::net::serve) throws on the line
    'throw'. Five clients make it throw: each connection ends, each
    exception is logged exactly once, and a client connected all along keeps
    being served."""
    app = App([binary, "--port", "0"])
    w = Watch(app, "handler_exception")
    bystander = tcp(app.port)
    for i in range(5):
        with tcp(app.port) as s:
            s.sendall(b"throw\n")
            check(closed_by_peer(s, HEALTHY_WITHIN), f"thrower {i}: connection still open")
        bystander.sendall(b"still there\n")
        check_eq(bystander.recv(100), b"still there\n", f"the bystander after thrower {i}")
        line_echo_healthy(app.port, f"after thrower {i}")
    bystander.close()
    w.wait_fds_back(3, "after the throwing connections")
    w.finish()
    time.sleep(0.1)  # the last report is written as the fiber ends
    lines = [l for l in app.stderr().splitlines() if "handler failed on purpose" in l]
    check_eq(len(lines), 5, f"log lines naming the exception (stderr: {app.stderr()!r})")
    check(all(re.fullmatch(r"coop: .*: handler failed on purpose", l) for l in lines), f"log lines: {lines}")
    print(f"logged: {lines[0]}")
    app.stop()


CASES = {f.__name__: f for f in [
    http_slowloris, http_huge_header, http_idle_keepalive, http_pipeline_never_reads,
    chat_endless_line, chat_never_reads, chat_idle,
    forwarder_reset, forwarder_half_close, forwarder_never_reads,
    udp_flood, echo_connection_flood, handler_exception,
]}

if __name__ == "__main__":
    main(CASES)
