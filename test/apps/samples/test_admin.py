"""The admin endpoint (coop::run_options::admin_socket) of a running
echo_server --admin: /metrics parsed by the Prometheus client library's own
parser, /fibers as JSON and text, a misbehaving admin client.

    python3 test_admin.py CASE ECHO_SERVER
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from samplelib import App, check, check_eq, connect, main

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # a python3 other than Debian's (pyenv): its package is still there
    sys.path.append("/usr/lib/python3/dist-packages")
    from prometheus_client.parser import text_string_to_metric_families


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10.0):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def get(address, target, method="GET"):
    """(status, content type, body) of one request to an admin endpoint."""
    if address.startswith("/"):
        conn = UnixHTTPConnection(address)
    else:
        host, port = address.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10.0)
    try:
        conn.request(method, target)
        res = conn.getresponse()
        return res.status, res.getheader("Content-Type"), res.read().decode()
    finally:
        conn.close()


def metrics(address):
    """{(name, frozenset(labels)): value} of every sample of /metrics."""
    status, ctype, body = get(address, "/metrics")
    check_eq(status, 200, "/metrics status")
    check(ctype.startswith("text/plain; version=0.0.4"), f"/metrics content type {ctype!r}")
    samples = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples, name, **labels):
    """The sum of `name` over the samples whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)


def eventually(cond, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"never held: {what}")
        time.sleep(0.05)


def start(binary, admin, *args):
    """echo_server --admin ADMIN, once its accepting fiber waits in accept (it
    may announce itself a moment before)."""
    app = App([binary, "--port", "0", "--admin", admin, *args])
    line = app._read_line(10.0)
    check(line.startswith("admin on "), f"expected 'admin on ADDRESS', got {line!r}")
    address = line[len("admin on "):].strip()
    eventually(lambda: value(metrics(address), "coop_fibers_parked", wait="accept") == 1, "a fiber waits in accept")
    return app, address


def stop(app):
    """SIGTERM: echo_server drains and exits 0."""
    app.proc.send_signal(signal.SIGTERM)
    try:
        app.proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        app.kill()
        raise AssertionError("echo_server did not exit within 10 s of SIGTERM")
    check_eq(app.proc.returncode, 0, f"exit status (stderr: {app.stderr()!r})")


def idle_clients(port, n):
    """`n` connections that send nothing: their fibers park on read."""
    return [connect(port) for _ in range(n)]


def case_metrics(binary):
    with tempfile.TemporaryDirectory() as d:
        app, address = start(binary, os.path.join(d, "admin.sock"))
        check_eq(address, os.path.join(d, "admin.sock"), "the bound address")
        before = metrics(address)
        check_eq(value(before, "coop_fibers_parked", wait="read"), 0, "fibers parked on read at first")
        check_eq(value(before, "coop_fibers_parked", wait="accept"), 1, "the accepting fiber")
        clients = idle_clients(app.port, 100)
        eventually(lambda: value(metrics(address), "coop_fibers_parked", wait="read") == 100,
                   "100 fibers parked on read")
        m = metrics(address)
        check_eq(value(m, "coop_fibers_parked", runtime="1", thread="0", wait="read"), 100,
                 'coop_fibers_parked{runtime="1",thread="0",wait="read"}')
        check(value(m, "coop_fibers") >= 101, "coop_fibers counts the connections' fibers")
        check(value(m, "coop_fibers_spawned_total") - value(before, "coop_fibers_spawned_total") >= 100,
              "coop_fibers_spawned_total grew by the connections")
        check(value(m, "coop_serve_accepted_total") - value(before, "coop_serve_accepted_total") == 100,
              "coop_serve_accepted_total grew by 100")
        check_eq(value(m, "coop_serve_connections_open"), 100, "coop_serve_connections_open")
        check(value(m, "coop_context_switches_total") > value(before, "coop_context_switches_total"),
              "context switches counted")
        check(value(m, "coop_scheduling_delay_seconds_count") > 0, "the scheduling delay histogram has samples")
        check(value(m, "coop_scheduling_delay_seconds_bucket", le="+Inf") ==
              value(m, "coop_scheduling_delay_seconds_count"), "the +Inf bucket holds every sample")
        for c in clients:
            c.close()
        eventually(lambda: value(metrics(address), "coop_fibers_parked", wait="read") == 0,
                   "no fiber parked on read once the clients left")
        after = metrics(address)
        check(value(after, "coop_fibers_finished_total") - value(m, "coop_fibers_finished_total") >= 100,
              "coop_fibers_finished_total grew by the connections")
        stop(app)
        check(not os.path.exists(os.path.join(d, "admin.sock")), "the socket file is removed at the end")


def case_fibers(binary):
    with tempfile.TemporaryDirectory() as d:
        app, address = start(binary, os.path.join(d, "admin.sock"))
        clients = idle_clients(app.port, 100)
        eventually(lambda: value(metrics(address), "coop_fibers_parked", wait="read") == 100,
                   "100 fibers parked on read")
        status, ctype, body = get(address, "/fibers")
        check_eq(status, 200, "/fibers status")
        check_eq(ctype, "application/json", "/fibers content type")
        fibers = json.loads(body)
        reading = [f for f in fibers if f.get("wait") == "read"]
        check_eq(len(reading), 100, "fibers waiting on read in /fibers")
        for f in reading:
            check(f["state"] == "waiting" and f["what"] == "read" and f["fd"] >= 0 and f["waiting_seconds"] >= 0,
                  f"a reading fiber's entry: {f}")
            check(f["runtime"] == 1 and f["thread"] == 0 and f["id"] > 0, f"a reading fiber's entry: {f}")
        status, ctype, text = get(address, "/fibers?format=text")
        check_eq(status, 200, "/fibers?format=text status")
        check(text.startswith("coop: ") and text.count("on read (fd ") == 100, f"text dump: {text[:200]!r}")
        check_eq(get(address, "/nothing")[0], 404, "an unknown path")
        check_eq(get(address, "/metrics", method="POST")[0], 405, "POST")
        for c in clients:
            c.close()
        stop(app)


def case_tcp(binary):
    app, address = start(binary, "127.0.0.1:0")
    host, port = address.rsplit(":", 1)
    check(host == "127.0.0.1" and int(port) > 0, f"bound to {address}")
    check(value(metrics(address), "coop_fibers_parked", wait="accept") == 1, "metrics over TCP")
    stop(app)


def case_misbehaving_client(binary):
    """A client that connects and sends nothing, and one with a huge header:
    the server keeps echoing, the next admin client is answered."""
    with tempfile.TemporaryDirectory() as d:
        app, address = start(binary, os.path.join(d, "admin.sock"))
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.connect(address)
        echo = connect(app.port)
        echo.sendall(b"still here")
        check_eq(echo.recv(100), b"still here", "the echo while an admin client is silent")
        started = time.monotonic()
        check_eq(get(address, "/metrics")[0], 200, "the next admin client")
        check(time.monotonic() - started < 5, "the silent client was cut off within its 2 s")
        check_eq(silent.recv(10), b"", "the silent client's connection is closed")
        silent.close()
        huge = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        huge.settimeout(10)
        huge.connect(address)
        huge.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        reply = huge.recv(100)
        check(reply.startswith(b"HTTP/1.1 431"), f"a 20 kB header gets 431: {reply!r}")
        huge.close()
        echo.close()
        stop(app)


def case_bad_address(binary):
    """An address that cannot be served: one line on stderr, the server runs."""
    app = App([binary, "--port", "0", "--admin", "not-an-address:1"])
    c = connect(app.port)
    c.sendall(b"x")
    check_eq(c.recv(1), b"x", "the server serves without its admin endpoint")
    c.close()
    stop(app)
    err = app.stderr()
    check("coop: admin endpoint not-an-address:1: " in err and "not served" in err, f"stderr: {err!r}")


def case_sample(binary, *extra):
    """A sample server with --admin: its endpoint serves /metrics and /fibers;
    it stops on SIGTERM as usual ("stopped by signal 15")."""
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "admin.sock")
        app = App([binary, "--port", "0", "--admin", sock, *extra])
        line = app._read_line(10.0)
        check_eq(line, f"admin on {sock}\n", "the line after 'listening on'")
        eventually(lambda: value(metrics(sock), "coop_fibers_parked", wait="accept") >= 1, "a fiber waits in accept")
        status, _, body = get(sock, "/fibers")
        check_eq(status, 200, "/fibers status")
        check(any(f.get("wait") == "accept" for f in json.loads(body)), "/fibers lists the accepting fiber")
        app.stop()


if __name__ == "__main__":
    main({
        "metrics": case_metrics,
        "fibers": case_fibers,
        "tcp": case_tcp,
        "misbehaving_client": case_misbehaving_client,
        "bad_address": case_bad_address,
        "sample": case_sample,
    })
