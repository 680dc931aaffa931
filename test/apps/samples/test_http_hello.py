"""Integration tests of apps/samples/http_hello:
`python3 test_http_hello.py CASE HTTP_HELLO_BINARY [THREADS]`."""

import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from samplelib import (App, IO_TIMEOUT, check, check_cli, check_eq, check_refused, connect, flood_then_stop, main,
                       recv_all)

HELLO = b"Hello, world!\n"


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return self.headers.get(name.lower())


class Conn:
    """A raw HTTP/1.x client connection that reads responses by Content-Length."""

    def __init__(self, port):
        self.sock = connect(port)
        self.buf = b""

    def send(self, raw):
        self.sock.sendall(raw)

    def _fill(self):
        chunk = self.sock.recv(1 << 16)
        check(chunk, f"connection closed in the middle of a response (have {self.buf!r})")
        self.buf += chunk

    def response(self, head=False):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head_bytes, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        m = re.fullmatch(r"HTTP/1\.[01] (\d{3}) .*", lines[0])
        check(m, f"bad status line {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        check("content-length" in headers, f"no Content-Length in {lines}")
        length = 0 if head else int(headers["content-length"])
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return Response(int(m.group(1)), headers, body)

    def at_end(self):
        """True when the server has closed the connection (and sent nothing more)."""
        rest = recv_all(self.sock)
        return self.buf + rest == b""

    def close(self):
        self.sock.close()


def get(path="/", version="1.1", extra=""):
    return f"GET {path} HTTP/{version}\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()


def check_hello(res, what):
    check_eq(res.status, 200, f"{what}: status")
    check_eq(res.body, HELLO, f"{what}: body")
    check_eq(res.header("content-length"), str(len(HELLO)), f"{what}: Content-Length")


def start(binary, threads, *extra):
    return App([binary, "--port", "0", "--threads", str(threads), *extra])


def keep_alive(binary, threads="1"):
    """Several requests on one connection, one at a time and pipelined;
    Connection: close and HTTP/1.0 end the connection after the response."""
    app = start(binary, threads)
    c = Conn(app.port)
    for i in range(5):
        c.send(get(f"/request/{i}"))
        res = c.response()
        check_hello(res, f"request {i} on a kept-alive connection")
        check(res.header("connection") != "close", f"request {i}: the server wants to close")
    c.send(get("/a") + get("/b") + get("/c"))  # pipelined in one packet
    for i in range(3):
        check_hello(c.response(), f"pipelined request {i}")
    c.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    res = c.response(head=True)
    check_eq((res.status, res.header("content-length")), (200, str(len(HELLO))), "HEAD: status and length")
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    res = c.response()
    check_eq((res.status, res.header("allow")), (405, "GET, HEAD"), "POST: status and Allow")
    c.send(get("/last", extra="Connection: close\r\n"))
    res = c.response()
    check_hello(res, "request with Connection: close")
    check_eq(res.header("connection"), "close", "Connection header of the last response")
    check(c.at_end(), "the server kept the connection open after Connection: close")
    c.close()

    c = Conn(app.port)  # HTTP/1.0 closes by default, keeps alive when asked
    c.send(get("/", "1.0", "Connection: keep-alive\r\n"))
    check_hello(c.response(), "HTTP/1.0 keep-alive request")
    c.send(get("/", "1.0"))
    check_hello(c.response(), "HTTP/1.0 request")
    check(c.at_end(), "the server kept an HTTP/1.0 connection open")
    c.close()
    app.stop()


def _send_ignoring_reset(sock, data):
    try:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the server may stop reading once it has answered


def bad_request(binary, threads="1"):
    """Malformed requests get '400 Bad Request' with Connection: close, then
    the connection ends; the server keeps serving others."""
    app = start(binary, threads)
    garbage = [
        b"this is not http at all\r\n\r\n",
        b"\x00\x01\x02\x03 binary junk\r\n\r\n",
        b"GET / HTTP/1.1\r\nNo colon in this header\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: twelve\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"GET / HTTP/9.9 and more junk\r\n\r\n",
    ]
    for raw in garbage:
        c = Conn(app.port)
        c.send(raw)
        if raw.startswith(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
            check_hello(c.response(), "the good request before the bad one")
        res = c.response()
        check_eq(res.status, 400, f"status for {raw!r}")
        check_eq(res.header("connection"), "close", f"Connection header for {raw!r}")
        check(c.at_end(), f"connection still open after 400 for {raw!r}")
        c.close()
    # Garbage followed by much more: the server stops reading at the error,
    # but must not reset the connection before the 400 has been read.
    c = Conn(app.port)
    junk = b"BAD REQUEST LINE \x01\x02\r\n\r\n" + b"j" * (4 << 20)
    sender = threading.Thread(target=lambda: _send_ignoring_reset(c.sock, junk))
    sender.start()
    res = c.response()
    check_eq(res.status, 400, "status for a bad request followed by 4 MiB")
    sender.join(IO_TIMEOUT)
    c.close()
    # Still serving.
    c = Conn(app.port)
    c.send(get())
    check_hello(c.response(), "a good request after the bad ones")
    c.close()
    app.stop()


def wrk(binary, threads="1"):
    """A short wrk run: requests were served, no socket errors, no non-2xx."""
    path = shutil.which("wrk")
    if not path:
        print("wrk is not installed", file=sys.stderr)
        sys.exit(77)  # ctest: SKIP_RETURN_CODE
    app = start(binary, threads)
    p = subprocess.run([path, "-t1", "-c10", "-d1s", f"http://127.0.0.1:{app.port}/"],
                       capture_output=True, text=True, timeout=30)
    print(p.stdout)
    check_eq(p.returncode, 0, f"wrk exit status (stderr: {p.stderr!r})")
    m = re.search(r"^\s*(\d+) requests in ", p.stdout, re.M)
    check(m and int(m.group(1)) > 0, "wrk made no requests")
    check("Socket errors" not in p.stdout, "wrk saw socket errors")
    check("Non-2xx" not in p.stdout, "wrk saw non-2xx responses")
    # The server is still healthy afterwards.
    c = Conn(app.port)
    c.send(get())
    check_hello(c.response(), "a request after the wrk run")
    c.close()
    app.stop()


def sigterm_with_clients(binary, threads="1"):
    """SIGTERM with idle keep-alive connections and one half-sent request:
    exit 0; every connection ends."""
    app = start(binary, threads, "--drain-timeout", "1")  # the idle ones are closed after it
    conns = [Conn(app.port) for _ in range(6)]
    for c in conns:
        c.send(get())
        check_hello(c.response(), "a request before shutdown")
    conns[0].send(b"GET / HTTP/1.1\r\nHost: x\r\n")  # the rest never comes
    app.stop()
    for c in conns:
        check(c.at_end(), "a connection left open after shutdown")
        c.close()
    app2 = start(binary, threads)
    app2.stop(signal.SIGINT)


def sigterm_during_connect_flood(binary, threads="1"):
    flood_then_stop(start(binary, threads, "--drain-timeout", "1"))


def sigterm_drains(binary, threads="1"):
    """SIGTERM with a request in progress: new clients are refused at once (on every
    thread's listener), the request in progress is answered, then the server exits."""
    app = start(binary, threads, "--drain-timeout", "20")
    busy = Conn(app.port)
    busy.send(get())
    check_hello(busy.response(), "a request before shutdown")
    busy.send(b"GET / HTTP/1.1\r\nHost: x\r\n")  # half a request...
    app.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    for _ in range(4):  # with 2 threads, the kernel would spread these over both listeners
        check_refused(app.port)
    busy.send(b"Connection: close\r\n\r\n")  # ...finished during the drain
    check_hello(busy.response(), "the request in progress at SIGTERM")
    check(busy.at_end(), "the connection stayed open after Connection: close")
    busy.close()
    app.stop_waiting(timeout=10.0)


def cli(binary, *_):
    check_cli(binary, [
        ["--threads", "0"],
        ["--threads", "-1"],
        ["--threads", "x"],
        ["--idle-timeout", "0"],
        ["--idle-timeout", "soon"],
        ["--port", "123456"],
        ["--host", "::zz"],
        ["--bogus"],
    ])


if __name__ == "__main__":
    main({
        "keep_alive": keep_alive,
        "bad_request": bad_request,
        "wrk": wrk,
        "sigterm_with_clients": sigterm_with_clients,
        "sigterm_during_connect_flood": sigterm_during_connect_flood,
        "sigterm_drains": sigterm_drains,
        "cli": cli,
    })
