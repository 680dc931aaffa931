"""coopctl (apps/coopctl) against the admin endpoint of a running
echo_server --admin, and against fake endpoints that answer badly or not at
all: its output, its exit status (0 done, 1 endpoint trouble, 2 bad
arguments) and its one-line errors.

    python3 test_coopctl.py CASE ECHO_SERVER COOPCTL
"""

import json
import os
import pty
import re
import select
import socket
import subprocess
import tempfile
import threading
import time

from samplelib import check, check_eq, connect, main, run_process
from test_admin import start, stop

IDLE = 10  # idle echo clients: their fibers park on read


def coopctl_ok(coopctl, *args):
    """coopctl's stdout; it must exit 0 with nothing on stderr."""
    status, out, err = run_process([coopctl, *args])
    check_eq(status, 0, f"exit status of coopctl {' '.join(args)} (stderr: {err!r})")
    check_eq(err, "", f"stderr of coopctl {' '.join(args)}")
    return out


def coopctl_fails(coopctl, status, *args):
    """coopctl's one line on stderr; it must exit `status` with nothing on stdout."""
    got, out, err = run_process([coopctl, *args])
    check_eq(got, status, f"exit status of coopctl {' '.join(args)} (stderr: {err!r})")
    check_eq(out, "", f"stdout of coopctl {' '.join(args)}")
    check(err.endswith("\n") and err.count("\n") == 1, f"stderr of coopctl {' '.join(args)} is not one line: {err!r}")
    return err


def fibers_json(coopctl, address, *filters):
    args = [a for f in filters for a in ("--filter", f)]
    fibers = json.loads(coopctl_ok(coopctl, address, "fibers", "--json", *args))
    check(isinstance(fibers, list) and all(isinstance(f, dict) for f in fibers), f"a JSON array of objects: {fibers}")
    return fibers


def eventually(cond, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        check(time.monotonic() < deadline, f"never held: {what}")
        time.sleep(0.05)


def with_idle_clients(app, coopctl, address, n=IDLE):
    clients = [connect(app.port) for _ in range(n)]
    eventually(lambda: len(fibers_json(coopctl, address, "wait=read")) == n, f"{n} fibers parked on read")
    return clients


def case_metrics(echo_server, coopctl):
    with tempfile.TemporaryDirectory() as d:
        app, address = start(echo_server, os.path.join(d, "admin.sock"))
        out = coopctl_ok(coopctl, address, "metrics")
        check(out.startswith("# HELP "), f"/metrics as it comes: {out[:80]!r}")
        check('coop_fibers_parked{runtime="1",thread="0",wait="accept"} 1\n' in out, f"the accepting fiber in {out!r}")
        check("coop_offload_jobs_queued 0\n" in out, "the offload pool's samples")
        stop(app)


def case_tcp(echo_server, coopctl):
    app, address = start(echo_server, "127.0.0.1:0")
    port = address.rsplit(":", 1)[1]
    for a in (address, f"localhost:{port}"):
        out = coopctl_ok(coopctl, a, "metrics")
        check('coop_fibers_parked{runtime="1",thread="0",wait="accept"} 1\n' in out, f"metrics over {a}")
    accepting = fibers_json(coopctl, address, "wait=accept")
    check_eq(len(accepting), 1, "fibers waiting in accept over TCP")
    stop(app)


def case_fibers(echo_server, coopctl):
    with tempfile.TemporaryDirectory() as d:
        app, address = start(echo_server, os.path.join(d, "admin.sock"))
        clients = with_idle_clients(app, coopctl, address)
        reading = fibers_json(coopctl, address, "wait=read")
        for f in reading:
            check(f["state"] == "waiting" and f["what"] == "read" and f["fd"] >= 0 and f["waiting_seconds"] >= 0,
                  f"a reading fiber: {f}")
        everyone = fibers_json(coopctl, address)
        check(len(everyone) > IDLE, f"unfiltered: {len(everyone)} fibers")
        check_eq(len(fibers_json(coopctl, address, "wait=read", "state=waiting", "runtime=1", "thread=0")), IDLE,
                 "several filters")
        check_eq(len(fibers_json(coopctl, address, "wait=read", "state=ready")), 0, "filters that exclude each other")
        check_eq(len(fibers_json(coopctl, address, f"fd={reading[0]['fd']}")), 1, "--filter fd=N")
        check_eq(len(fibers_json(coopctl, address, f"id={reading[0]['id']}")), 1, "--filter id=N")
        check_eq(len(fibers_json(coopctl, address, "thread=1")), 0, "a thread that does not exist")

        lines = coopctl_ok(coopctl, address, "fibers", "--filter", "wait=read").splitlines()
        check(re.match(r"\s*ID\s+RT/TH\s+STATE\s+WAIT\s+FD\s+WAITING\s+WHAT\s+NAME$", lines[0]), f"header: {lines[0]!r}")
        rows = [line for line in lines[1:-1] if not line.lstrip().startswith("at ")]
        check_eq(len(rows), IDLE, f"table rows in {lines}")
        places = [line.strip() for line in lines[1:-1] if line.lstrip().startswith("at ")]
        check_eq(len(places), IDLE, f"an 'at' line under each row in {lines}")
        check(all("echo_once" in p and "echo_handler.hpp:" in p for p in places), f"where they wait: {places}")
        fds = {str(f["fd"]) for f in reading}
        for row in rows:
            cols = row.split()
            check(cols[1:4] == ["1/0", "waiting", "read"] and cols[4] in fds and re.fullmatch(r"\d+\.\d{3}s", cols[5])
                  and cols[6] == "read", f"a table row: {row!r}")
        check_eq(lines[-1], f"{IDLE} of {len(everyone)} fibers: {IDLE} waiting", "the summary line")
        table = coopctl_ok(coopctl, address, "fibers").splitlines()
        waiting = sum(1 for f in everyone if f.get("where"))
        check_eq(len(table), len(everyone) + waiting + 2,
                 "the whole table: header, fibers (and where each waiting one waits), summary")
        for c in clients:
            c.close()
        stop(app)


def case_top(echo_server, coopctl):
    with tempfile.TemporaryDirectory() as d:
        app, address = start(echo_server, os.path.join(d, "admin.sock"))
        clients = with_idle_clients(app, coopctl, address, 3)
        started = time.monotonic()
        out = coopctl_ok(coopctl, address, "top", "--iterations", "2", "--interval", "0.2")
        check(time.monotonic() - started >= 0.2, "two refreshes 0.2 s apart")
        check("\x1b" not in out, f"no terminal codes when stdout is not a terminal: {out!r}")
        screens = out.split("\n\n")
        check_eq(len(screens), 2, f"refreshes in {out!r}")
        for n, screen in enumerate(screens, 1):
            lines = screen.splitlines()
            check(lines[0].startswith(f"coopctl top: {address}: 1 runtime threads, ") and f"refresh {n}," in lines[0],
                  f"title: {lines[0]!r}")
            check(lines[1].split() == ["RT/TH", "FIBERS", "RUNNING", "READY", "PARKED", "SWITCHES/s", "PARKS/s",
                                       "REACTOR/s", "HANDLERS/s", "SPAWNED/s", "ACCEPTED/s"], f"columns: {lines[1]!r}")
            row = lines[2].split()
            check(row[0] == "1/0" and int(row[1]) >= 4 and int(row[4]) >= 4, f"the thread's fibers: {lines[2]!r}")
            rates = row[5:]
            check_eq(len(rates), 6, f"rates in {lines[2]!r}")
            if n == 1:
                check(all(r == "-" for r in rates), f"no rates without an earlier sample: {lines[2]!r}")
            else:
                check(all(float(r) >= 0 for r in rates), f"rates: {lines[2]!r}")
            check(lines[3].strip().startswith("parked: read 3, "), f"parked by wait kind: {lines[3]!r}")
            check("accept 1" in lines[3], f"the accepting fiber: {lines[3]!r}")
            check(re.fullmatch(r"offload: 0 queued, 0 running, \S+ completed/s, \d+ threads", lines[4]),
                  f"offload: {lines[4]!r}")
        check("\x1b[H\x1b[2J" in on_terminal(coopctl, address, "top", "--iterations", "1"),
              "the screen is cleared on a terminal")
        for c in clients:
            c.close()
        stop(app)


def on_terminal(coopctl, *args):
    """What coopctl writes with its stdout on a pseudo-terminal; it must exit 0."""
    master, slave = pty.openpty()
    p = subprocess.Popen([coopctl, *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    data, deadline = b"", time.monotonic() + 10
    try:
        while time.monotonic() < deadline and select.select([master], [], [], deadline - time.monotonic())[0]:
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # EIO: coopctl closed the terminal
                break
            if not chunk:
                break
            data += chunk
    finally:
        os.close(master)
    check_eq(p.wait(timeout=10), 0, f"exit status of coopctl {' '.join(args)} on a terminal")
    return data.decode(errors="replace")


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def case_errors(echo_server, coopctl):
    with tempfile.TemporaryDirectory() as d:
        missing = os.path.join(d, "missing.sock")
        err = coopctl_fails(coopctl, 1, missing, "metrics")
        check(err.startswith(f"coopctl: {missing}: connect: "), f"a missing socket: {err!r}")

        app, address = start(echo_server, os.path.join(d, "admin.sock"))
        coopctl_ok(coopctl, address, "metrics")
        stop(app)
        for command in ("metrics", "fibers", "top"):
            err = coopctl_fails(coopctl, 1, address, command)
            check(err.startswith(f"coopctl: {address}: connect: "), f"a stopped server ({command}): {err!r}")

        # A socket file nobody listens on, as a server killed with SIGKILL leaves it.
        left = os.path.join(d, "left.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(left)
        s.close()
        err = coopctl_fails(coopctl, 1, left, "fibers")
        check(err.startswith(f"coopctl: {left}: connect: ") and "refused" in err, f"a left socket file: {err!r}")

    nobody = f"127.0.0.1:{free_port()}"
    err = coopctl_fails(coopctl, 1, nobody, "metrics")
    check(err.startswith(f"coopctl: {nobody}: connect: ") and "refused" in err, f"a TCP port nobody listens on: {err!r}")


class FakeEndpoint:
    """A Unix socket server in the test process: each connection gets
    `answer(request)` (None: no answer, the connection is held open)."""

    def __init__(self, path, answer):
        self.answer = answer
        self.held = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(10)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                request += chunk
            reply = self.answer(request.decode())
            if reply is None:
                self.held.append(conn)
                continue
            conn.sendall(reply.encode())
            conn.close()


def http_reply(status, body, ctype="application/json"):
    return (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body.encode())}\r\n"
            f"Connection: close\r\n\r\n{body}")


def case_bad_answers(_echo_server, coopctl):
    with tempfile.TemporaryDirectory() as d:
        def path(name):
            return os.path.join(d, name)

        FakeEndpoint(path("404.sock"), lambda req: http_reply("404 Not Found", "no\n", "text/plain"))
        err = coopctl_fails(coopctl, 1, path("404.sock"), "metrics")
        check_eq(err, f"coopctl: {path('404.sock')}: GET /metrics: 404 Not Found\n", "a 404")

        FakeEndpoint(path("garbage.sock"), lambda req: http_reply("200 OK", '[{"id": 1,'))
        err = coopctl_fails(coopctl, 1, path("garbage.sock"), "fibers")
        check(err.startswith(f"coopctl: {path('garbage.sock')}: GET /fibers: malformed JSON"), f"cut JSON: {err!r}")

        FakeEndpoint(path("object.sock"), lambda req: http_reply("200 OK", '{"id": 1}'))
        err = coopctl_fails(coopctl, 1, path("object.sock"), "fibers", "--json")
        check(err.startswith(f"coopctl: {path('object.sock')}: GET /fibers: not a JSON array"), f"an object: {err!r}")

        # Fields coopctl does not know are kept; numbers stay as written.
        fibers = [{"id": 7, "name": "worker \"a\"", "runtime": 2, "thread": 1, "state": "waiting", "wait": "join",
                   "what": "join", "fiber": 9, "waiting_seconds": 1.25, "where": ["f()", "g()"], "stack_bytes": 4096},
                  {"id": 9, "name": "", "runtime": 2, "thread": 1, "state": "ready"}]
        requests = []

        def answer(req):
            requests.append(req)
            return http_reply("200 OK", json.dumps(fibers))

        FakeEndpoint(path("future.sock"), answer)
        check_eq(json.loads(coopctl_ok(coopctl, path("future.sock"), "fibers", "--json")), fibers, "--json round trip")
        check(requests[0].startswith("GET /fibers HTTP/1.1\r\n"), f"the request: {requests[0]!r}")
        out = coopctl_ok(coopctl, path("future.sock"), "fibers", "--json", "--filter", "fiber=9")
        check('"waiting_seconds":1.25,' in out, f"a number as written: {out!r}")
        check_eq(json.loads(out), fibers[:1], "--filter fiber=9")
        check_eq(json.loads(coopctl_ok(coopctl, path("future.sock"), "fibers", "--json", "--filter",
                                       'name=worker "a"')), fibers[:1], "--filter name=...")
        lines = coopctl_ok(coopctl, path("future.sock"), "fibers").splitlines()
        check_eq(lines[1].split(), ["7", "2/1", "waiting", "join", "-", "1.250s", "join", "(fiber", "9)", "worker",
                                    '"a"'], "a joining fiber's row")
        check_eq(lines[2].strip(), "at f()", "where it waits: the first frame, on a line of its own")
        check_eq(lines[3].split(), ["9", "2/1", "ready", "-", "-", "-", "-"], "a ready fiber's row")
        check_eq(lines[4], "2 of 2 fibers: 1 ready, 1 waiting", "the summary")

        silent = FakeEndpoint(path("silent.sock"), lambda req: None)
        started = time.monotonic()
        err = coopctl_fails(coopctl, 1, path("silent.sock"), "metrics")
        took = time.monotonic() - started
        check_eq(err, f"coopctl: {path('silent.sock')}: reading the response: no answer within 5 s\n", "no answer")
        check(4 <= took < 15, f"gave up after {took:.1f} s")
        for conn in silent.held:
            conn.close()


def case_cli(_echo_server, coopctl):
    status, out, err = run_process([coopctl, "--help"])
    check_eq(status, 0, "--help exit status")
    check(out.startswith("Usage: coopctl SOCKET COMMAND [options]\n"), f"--help: {out[:60]!r}")
    for word in ("metrics", "fibers", "top", "--json", "--filter", "--interval", "--iterations"):
        check(word in out, f"--help mentions {word}")
    check_eq(err, "", "--help stderr")
    sock = "/nonexistent/admin.sock"
    for args in ([], [sock], [sock, "bogus"], [sock, "top", "--interval", "-1"], [sock, "top", "--interval", "0"],
                 [sock, "top", "--interval", "soon"], [sock, "top", "--iterations", "-1"],
                 [sock, "fibers", "--filter", "nokey"], [sock, "fibers", "--filter", "bogus=1"],
                 [sock, "fibers", "--filter", "=1"], [sock, "metrics", "--json"], [sock, "fibers", "--interval", "1"],
                 [sock, "fibers", "extra"], [sock, "metrics", "--nope"], ["127.0.0.1:99999", "metrics"],
                 ["127.0.0.1:0", "metrics"], ["nohost:1", "metrics"]):
        err = coopctl_fails(coopctl, 2, *args)
        check(err.startswith("coopctl: error: ") and err.endswith(" (try --help)\n"), f"stderr for {args}: {err!r}")


if __name__ == "__main__":
    main({
        "metrics": case_metrics,
        "tcp": case_tcp,
        "fibers": case_fibers,
        "top": case_top,
        "errors": case_errors,
        "bad_answers": case_bad_answers,
        "cli": case_cli,
    })
