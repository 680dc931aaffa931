"""Helpers the benchmark scripts share (bench/echo_syscalls, scripts/compare,
scripts/bench): starting a server that prints "listening on HOST:PORT",
reading a process's CPU time and peak RSS from /proc, counting system calls
from strace -c output and instructions from a callgrind profile, CSV output.
"""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time


def say(msg):
    print(msg, file=sys.stderr, flush=True)


def start_server(cmd, wrapper=()):
    """Starts `cmd` (under `wrapper`, e.g. strace or valgrind, when given) and
    waits for its first line: "listening on HOST:PORT" (or a bare port number,
    as echo_bench printed before). Returns (Popen, port)."""
    p = subprocess.Popen(list(wrapper) + list(cmd), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
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


def cpu_seconds(pid):
    """CPU time of all the process's threads (schedstat: nanoseconds, every thread)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
        except (OSError, ValueError):
            pass
    return total / 1e9


def proc_status_kib(pid, field):
    """A "kB" field of /proc/PID/status (VmHWM: peak RSS, VmRSS...), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) if m else 0


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


def loadgen_run(bindir, server_cmd, connections, size, duration, warmup):
    """Starts a server, drives it with loadgen for `duration` seconds after
    `warmup`, samples its peak RSS (VmHWM) and stops it (it must exit 0).
    Returns (loadgen's JSON report, peak RSS in KiB)."""
    server, port = start_server(server_cmd)
    name = os.path.basename(server_cmd[0])
    try:
        cmd = [os.path.join(bindir, "loadgen"), "--port", str(port), "--connections", str(connections),
               "--size", str(size), "--duration", str(duration), "--warmup", str(warmup),
               "--server-pid", str(server.pid), "--json"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180 + duration)
        try:
            report = json.loads(r.stdout)
        except ValueError:
            raise RuntimeError(f"loadgen failed against {name} (exit {r.returncode}): {r.stderr.strip()}")
        rss_kib = proc_status_kib(server.pid, "VmHWM")
        status = stop_server(server)
        if status != 0:
            raise RuntimeError(f"{' '.join(server_cmd)} exited with {status}")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return report, rss_kib


def write_csv(path, rows):
    fields = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def gnuplot(script, what):
    """Runs a gnuplot script; False (with a note) when gnuplot is missing or fails."""
    import shutil
    if not shutil.which("gnuplot"):
        say(f"{what}: gnuplot not found (scripts/setup installs gnuplot-nox); no chart")
        return False
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        say(f"{what}: gnuplot failed: {r.stderr.strip()}")
        return False
    return True
