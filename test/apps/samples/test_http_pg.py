"""Integration tests of apps/samples/http_pg against a private PostgreSQL
cluster that the test starts: `python3 test_http_pg.py CASE HTTP_PG_BINARY`."""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from samplelib import App, IO_TIMEOUT, check, check_cli, check_eq, connect, main


class Postgres:
    """initdb and postgres in a temporary directory, on a Unix socket there only
    (as the postgres user when run as root); stopped by stop()."""

    def __init__(self):
        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        check(bindirs, "PostgreSQL is not installed (scripts/setup installs postgresql)")
        bindir = bindirs[-1]
        self.dir = tempfile.mkdtemp(prefix="coop-pg-")
        user = None
        if os.getuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)

        def as_server_user():
            if user:
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)

        data = os.path.join(self.dir, "data")
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        subprocess.run([os.path.join(bindir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
                       preexec_fn=as_server_user, stdout=self.log, stderr=self.log, check=True, timeout=60)
        self.proc = subprocess.Popen([os.path.join(bindir, "postgres"), "-D", data, "-k", self.dir, "-c",
                                      "listen_addresses=", "-c", "max_connections=100", "-c", "fsync=off"],
                                     preexec_fn=as_server_user, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(self.dir, ".s.PGSQL.5432")):
            check(time.monotonic() < deadline and self.proc.poll() is None, "postgres did not start")
            time.sleep(0.05)
        time.sleep(0.2)  # the socket file appears just before the server accepts
        self.conninfo = f"host={self.dir} dbname=postgres user=postgres"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            self.proc.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


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
