"""Helpers for the sample apps' integration tests (Python 3 stdlib only).

Each test script is run by ctest as `python3 SCRIPT CASE BINARY...`; it starts
the app as a process, waits for its "listening on HOST:PORT" line, talks to it
over 127.0.0.1 and stops it with SIGTERM, expecting exit status 0.
"""

import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

IO_TIMEOUT = 10.0  # seconds any single socket operation may take in a test


class TestFailure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise TestFailure(message)


def check_eq(actual, expected, what):
    if actual != expected:
        raise TestFailure(f"{what}: expected {expected!r}, got {actual!r}")


_started = []  # every App, so that a failing test leaves no process behind


class App:
    """A running sample app: `port` is where it listens."""

    def __init__(self, argv, startup_timeout=10.0):
        _started.append(self)
        self.argv = argv
        self.stderr_file = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.stderr_file)
        line = self._read_line(startup_timeout)
        m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)
        if not m:
            self.kill()
            raise TestFailure(f"{argv[0]}: expected 'listening on 127.0.0.1:PORT', got {line!r}; "
                              f"stderr: {self.stderr()!r}")
        self.port = int(m.group(1))
        check(self.port != 0, "the app announced port 0")

    def _read_line(self, timeout):
        deadline = time.monotonic() + timeout
        data = b""
        fd = self.proc.stdout.fileno()
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.kill()
                raise TestFailure(f"{self.argv[0]}: no complete line within {timeout}s (got {data!r})")
            chunk = os.read(fd, 1)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace")

    def stderr(self):
        self.stderr_file.seek(0)
        return self.stderr_file.read().decode(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Sends `sig`; expects a clean exit (status 0, 'stopped by signal N')."""
        check(self.alive(), f"{self.argv[0]} died early with status {self.proc.returncode}; "
                            f"stderr: {self.stderr()!r}")
        self.proc.send_signal(sig)
        self.stop_waiting(timeout, sig)

    def stop_waiting(self, timeout=10.0, sig=signal.SIGTERM):
        """After `sig` was sent: expects a clean exit within `timeout` (status 0, 'stopped by signal N')."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TestFailure(f"{self.argv[0]} did not exit within {timeout}s (signal {int(sig)} sent)")
        check_eq(self.proc.returncode, 0, f"exit status after signal {int(sig)} (stderr: {self.stderr()!r})")
        check(f"stopped by signal {int(sig)}\n" in out.decode(), f"no 'stopped by signal' line in {out!r}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Upstream:
    """A TCP server in the test process on 127.0.0.1:0 (for a proxy under test
    to connect to): each connection is served by `handler(sock)` in its own
    thread, with `timeout` on its socket operations (None: none). Counts the
    connections accepted; collects what handlers raised.
    With `listen=False` the port is bound but refuses connections until
    `listen()`."""

    def __init__(self, handler, listen=True, backlog=64, timeout=IO_TIMEOUT):
        self.handler = handler
        self.backlog = backlog
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.errors = []
        self.accepted = 0
        if listen:
            self.listen()

    def listen(self):
        self.sock.listen(self.backlog)
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(self.timeout)
        try:
            with conn:
                self.handler(conn)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))


def flood_then_stop(app, n=200):
    """Opens `n` connections as fast as possible and sends SIGTERM at once: the
    server must still exit cleanly within 10 s. (Connection fibers cancelled
    before they first ran used to stay in their task_group forever, and the
    server hung in its shutdown.)"""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", app.port))
            socks.append(s)
        app.stop(timeout=10.0)
    finally:
        for s in socks:
            s.close()


def check_refused(port, what="while draining"):
    """A new connection to `port` is refused at once: not accepted, not left hanging
    in a backlog nobody accepts from."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        raise TestFailure(f"a new connection was accepted {what}")
    except ConnectionRefusedError:
        pass
    except socket.timeout:
        raise TestFailure(f"a new connection hung {what} instead of being refused")


def connect(port, timeout=IO_TIMEOUT):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_all(sock):
    """Reads until end of stream; a reset also counts as the end."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def recv_exact(sock, n):
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(1 << 16, n - got))
        check(chunk, f"stream ended after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class LineReader:
    """Reads '\\n'-terminated lines from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            check(chunk, f"stream ended while waiting for a line (have {self.buf[:80]!r})")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"


def run_process(argv, timeout=30.0):
    """Runs a command to completion; returns (status, stdout, stderr) as text."""
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def check_cli(binary, bad_args_list):
    """--help exits 0 with usage on stdout; each bad argument list exits 2 with
    exactly one line on stderr and nothing on stdout."""
    status, out, err = run_process([binary, "--help"])
    check_eq(status, 0, "--help exit status")
    check(out.startswith("Usage: "), f"--help output starts with {out[:40]!r}")
    check("--port" in out or "--consumers" in out, "--help lists the options")
    check_eq(err, "", "--help stderr")
    for args in bad_args_list:
        status, out, err = run_process([binary] + args)
        check_eq(status, 2, f"exit status for {args}")
        check_eq(out, "", f"stdout for {args}")
        check(err.endswith("\n") and err.count("\n") == 1, f"stderr for {args} is not one line: {err!r}")
        check(": error: " in err, f"stderr for {args} does not say error: {err!r}")


def main(cases):
    """Runs the case named by argv[1] with the remaining arguments; exit 0 on
    success, 1 with a message on failure."""
    if len(sys.argv) < 2 or sys.argv[1] not in cases:
        print(f"usage: {sys.argv[0]} {{{'|'.join(cases)}}} ARGS...", file=sys.stderr)
        sys.exit(2)
    signal.alarm(120)  # a last resort; ctest's TIMEOUT is the real bound
    try:
        cases[sys.argv[1]](*sys.argv[2:])
    except Exception:  # noqa: BLE001 - report any failure, including assertion-like ones
        traceback.print_exc()
        print(f"FAIL: {sys.argv[1]}", file=sys.stderr)
        sys.exit(1)
    finally:
        for app in _started:
            app.kill()
    print(f"PASS: {sys.argv[1]}")
