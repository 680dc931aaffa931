"""Integration tests of apps/samples/http_pg against a private PostgreSQL
cluster that the test starts: `python3 test_http_pg.py CASE HTTP_PG_BINARY`."""

import os
import shutil
import signal
import sys
import tempfile
import threading
import time

from samplelib import App, IO_TIMEOUT, check, check_cli, check_eq, connect, main

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts"))
from benchlib import Postgres  # noqa: E402


def get(port, target):
    """One GET on a connection of its own: (status, body)."""
    s = connect(port)
    s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def parallel_gets(port, n, target):
    """`n` GETs at once, each on its own connection: (results, wall seconds)."""
    results = [None] * n

    def one(i):
        results[i] = get(port, target)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(IO_TIMEOUT * 3)
    return results, time.monotonic() - t0


def concurrent(binary):
    """With the hooks, 20 requests that each sleep 300 ms in PostgreSQL overlap on
    the server's one thread; with COOP_HOOKS=0 they queue."""
    pg = Postgres()
    try:
        app = App([binary, "--port", "0", "--pg", pg.conninfo])
        status, body = get(app.port, "/")
        check_eq(status, 200, f"GET / ({body!r})")
        results, took = parallel_gets(app.port, 20, "/?sleep_ms=300")
        check(all(r and r[0] == 200 for r in results), f"some requests failed: {results}")
        check(took < 3.0, f"20 x 300 ms took {took:.2f} s with the hooks: the queries did not overlap (6 s serial)")
        check_eq(get(app.port, "/?sleep_ms=abc")[0], 400, "status of a malformed sleep_ms")
        app.stop()

        os.environ["COOP_HOOKS"] = "0"
        slow = App([binary, "--port", "0", "--pg", pg.conninfo])
        del os.environ["COOP_HOOKS"]
        results, took_off = parallel_gets(slow.port, 5, "/?sleep_ms=300")
        check(all(r and r[0] == 200 for r in results), f"some requests failed without hooks: {results}")
        check(took_off >= 1.4, f"5 x 300 ms took {took_off:.2f} s with COOP_HOOKS=0: they should queue")
        slow.stop()
        print(f"20 x 300 ms with hooks: {took:.2f} s; 5 x 300 ms without: {took_off:.2f} s")
    finally:
        pg.stop()


def database_down(binary):
    """A database that cannot be reached: 503 with libpq's message; the server stays up."""
    d = tempfile.mkdtemp(prefix="coop-nopg-")
    try:
        app = App([binary, "--port", "0", "--pg", f"host={d} dbname=postgres connect_timeout=2"])
        status, body = get(app.port, "/")
        check_eq(status, 503, f"status with no database ({body!r})")
        check("database:" in body, f"body names the database failure: {body!r}")
        check(app.alive(), "server died")
        app.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def cli(binary):
    check_cli(binary, [[], ["--pg", "x", "--port", "70000"], ["--pg", "x", "--bogus"],
                       ["--pg", "x", "--idle-timeout", "0"]])


if __name__ == "__main__":
    main({"concurrent": concurrent, "database_down": database_down, "cli": cli})
