"""What the measuring scripts share (scripts/compare, scripts/soak,
scripts/bench, bench/echo_syscalls): building the programs, starting a
server that prints "listening on HOST:PORT", reading /proc, counting system
calls (strace -c) and instructions (callgrind), writing CSV, running gnuplot,
and a private PostgreSQL cluster.

Python 3 standard library only; the scripts import it from their own folder
(and test/apps/samples/test_http_pg.py its Postgres).
"""

import argparse
import csv
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def say(msg):
    """Progress and warnings: on standard error, so standard output stays the report."""
    print(msg, file=sys.stderr, flush=True)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr ("NAME: error: ...
    (try --help)") and exit status 2, as every coop program does."""

    def __init__(self, name, **kwargs):
        super().__init__(**kwargs)
        self.name = name

    def error(self, message):
        print(f"{self.name}: error: {message} (try --help)", file=sys.stderr)
        sys.exit(2)


def add_build_options(parser):
    """--bin and --no-setup, the options build_apps() reads."""
    parser.add_argument("--bin", help="directory with echo_server and loadgen (skips setup and build)")
    parser.add_argument("--no-setup", action="store_true", help="do not run scripts/setup")


def build_apps(args, who, optional=()):
    """Returns the directory holding echo_server and loadgen: args.bin as given,
    or build/bin after scripts/setup (unless args.no_setup) and a build of just
    those two targets with the default preset, and of the `optional` ones that
    the configuration has (the Go baseline needs golang-go). Exits when
    echo_server or loadgen is missing."""
    bindir = args.bin
    if not bindir:
        if not args.no_setup:
            subprocess.run([os.path.join(ROOT, "scripts", "setup")], check=True)
        # Only the two programs it runs: the whole project takes minutes more to build here.
        subprocess.run(["cmake", "--preset", "default"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", "--preset", "default", "--target", "echo_server", "loadgen"],
                       cwd=ROOT, check=True, stdout=sys.stderr)
        for target in optional:  # absent from the configuration: left out
            subprocess.run(["cmake", "--build", "--preset", "default", "--target", target], cwd=ROOT,
                           stdout=sys.stderr, stderr=subprocess.DEVNULL)
        bindir = os.path.join(ROOT, "build", "bin")
    for exe in ("echo_server", "loadgen"):
        if not os.access(os.path.join(bindir, exe), os.X_OK):
            sys.exit(f"{who}: {exe} not found in {bindir}")
    return bindir


def start_echo_server(bindir, *extra, stderr=subprocess.DEVNULL):
    """Starts `echo_server --port 0 EXTRA...` and reads its "listening on" line;
    returns (process, port). Kills it and raises RuntimeError on any other line."""
    return start_server([os.path.join(bindir, "echo_server"), "--port", "0", *extra], stderr=stderr)


def proc_status_kib(pid, field):
    """A "kB" field of /proc/PID/status (VmRSS, VmHWM...) in KiB; 0 when absent."""
    with open(f"/proc/{pid}/status") as f:
        m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) if m else 0


def cpu_seconds(pid):
    """CPU time of all the process's threads (schedstat: nanoseconds, every thread)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
        except (OSError, ValueError):
            pass
    return total / 1e9

def open_fds(pid):
    """How many file descriptors process `pid` has open (entries of /proc/PID/fd)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def write_csv(path, rows):
    """Rows (dicts) to `path` with a header line: every key, in first-seen order."""
    fields = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)

def gnuplot(script, who):
    """Runs a gnuplot script; False (and a warning) when gnuplot is missing or fails."""
    try:
        r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    except FileNotFoundError:
        say(f"{who}: gnuplot not found (scripts/setup installs gnuplot-nox); no chart")
        return False
    if r.returncode != 0:
        say(f"{who}: gnuplot failed: {r.stderr.strip()}")
        return False
    return True


def start_server(cmd, wrapper=(), stderr=subprocess.DEVNULL):
    """Starts `cmd` (under `wrapper`, e.g. strace or valgrind, when given) and
    waits for its first line: "listening on HOST:PORT" (or a bare port number,
    as echo_bench printed before). Returns (Popen, port)."""
    p = subprocess.Popen(list(wrapper) + list(cmd), stdout=subprocess.PIPE, stderr=stderr, text=True)
    line = p.stdout.readline()
    m = re.fullmatch(r"(?:listening on \S+:)?(\d+)\n", line)
    if not m:
        p.kill()
        p.wait()
        raise RuntimeError(f"{' '.join(cmd)}: unexpected first line {line!r}")
    return p, int(m.group(1))


def traced_pid(p):
    """The pid of the program a wrapper (strace) started: the wrapper's child."""
    for _ in range(200):
        kids = open(f"/proc/{p.pid}/task/{p.pid}/children").read().split()
        if kids:
            return int(kids[0])
        time.sleep(0.01)
    raise RuntimeError("no traced child")


def stop_server(p, pid=None, sig=signal.SIGTERM, timeout=60):
    """Asks the server (or, under a wrapper, the traced `pid`) to stop; returns its exit status."""
    os.kill(pid or p.pid, sig)
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise RuntimeError("server did not stop")


def strace_counts(text):
    """System call name -> count, from the table `strace -c` writes."""
    calls = {}
    for line in text.splitlines():
        parts = line.split()
        # "% time seconds usecs/call calls [errors] syscall"
        if len(parts) >= 5 and parts[-1].isidentifier() and parts[3].isdigit():
            calls[parts[-1]] = int(parts[3])
    calls.pop("total", None)
    return calls


def callgrind_total(path):
    """Instructions executed (Ir) in a callgrind profile: its summary line."""
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError(f"{path}: no summary line")


def http_get(address, target, timeout=10.0):
    """The body of GET `target` from an admin endpoint: a Unix socket path or HOST:PORT."""
    if "/" in address or ":" not in address:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address)
    else:
        host, port = address.rsplit(":", 1)
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    with sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: coop\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(1 << 16):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"GET {target} from {address}: {head[:80]!r}")
    return body


class Scraper:
    """Asks an admin endpoint for `targets` in turn at once and then every
    `interval` seconds, from a thread, until stop(); counts the answers."""

    def __init__(self, address, targets, interval):
        self.address, self.targets, self.interval = address, targets, interval
        self.done = threading.Event()
        self.answers = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:  # at once, then every interval
            for target in self.targets:
                http_get(self.address, target)
                self.answers += 1
            if self.done.wait(self.interval):
                return

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.answers


def loadgen_run(bindir, server_cmd, connections, size, duration, warmup, scrape=None, stream=False):
    """Starts a server, drives it with loadgen for `duration` seconds after
    `warmup` (with `stream`, loadgen --stream: no waiting for each echo),
    samples its peak RSS (VmHWM) and stops it (it must exit 0).
    With `scrape` ((targets, interval)), the server has an admin endpoint
    (its "admin on ADDRESS" line) that a Scraper asks meanwhile.
    Returns (loadgen's JSON report, peak RSS in KiB)."""
    server, port = start_server(server_cmd)
    name = os.path.basename(server_cmd[0])
    scraper = None
    try:
        if scrape:
            line = server.stdout.readline()
            if not line.startswith("admin on "):
                raise RuntimeError(f"{name}: expected 'admin on ADDRESS', got {line!r}")
            scraper = Scraper(line[len("admin on "):].strip(), *scrape)
        cmd = [os.path.join(bindir, "loadgen"), "--port", str(port), "--connections", str(connections),
               "--size", str(size), "--duration", str(duration), "--warmup", str(warmup),
               "--server-pid", str(server.pid), "--json"] + (["--stream"] if stream else [])
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180 + duration)
        if scraper and scraper.stop() == 0:
            raise RuntimeError(f"{name}: the admin endpoint was never scraped")
        try:
            report = json.loads(r.stdout)
        except ValueError:
            raise RuntimeError(f"loadgen failed against {name} (exit {r.returncode}): {r.stderr.strip()}")
        rss_kib = proc_status_kib(server.pid, "VmHWM")
        status = stop_server(server)
        if status != 0:
            raise RuntimeError(f"{' '.join(server_cmd)} exited with {status}")
    finally:
        if scraper:
            scraper.done.set()
        if server.poll() is None:
            server.kill()
            server.wait()
    return report, rss_kib


class Postgres:
    """initdb and postgres in a temporary directory, on a Unix socket there only
    (as the postgres user when run as root); stopped by stop()."""

    def __init__(self, max_connections=100):
        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bindirs:
            raise RuntimeError("PostgreSQL is not installed (scripts/setup installs postgresql)")
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
                                      "listen_addresses=", "-c", f"max_connections={max_connections}", "-c",
                                      "fsync=off"],
                                     preexec_fn=as_server_user, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(self.dir, ".s.PGSQL.5432")):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"postgres did not start: see {self.dir}/server.log")
            time.sleep(0.05)
        time.sleep(0.2)  # the socket file appears just before the server accepts
        self.conninfo = f"host={self.dir} dbname=postgres user=postgres"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            self.proc.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
