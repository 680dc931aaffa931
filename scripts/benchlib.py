"""What scripts/compare and scripts/soak share: building the two programs,
starting echo_server, reading /proc, writing CSV and running gnuplot.

Python 3 standard library only; the scripts import it from their own folder.
"""

import argparse
import csv
import os
import re
import subprocess
import sys

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


def build_apps(args, who):
    """Returns the directory holding echo_server and loadgen: args.bin as given,
    or build/bin after scripts/setup (unless args.no_setup) and a build of just
    those two targets with the default preset. Exits when one is missing."""
    bindir = args.bin
    if not bindir:
        if not args.no_setup:
            subprocess.run([os.path.join(ROOT, "scripts", "setup")], check=True)
        # Only the two programs it runs: the whole project takes minutes more to build here.
        subprocess.run(["cmake", "--preset", "default"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", "--preset", "default", "--target", "echo_server", "loadgen"],
                       cwd=ROOT, check=True, stdout=sys.stderr)
        bindir = os.path.join(ROOT, "build", "bin")
    for exe in ("echo_server", "loadgen"):
        if not os.access(os.path.join(bindir, exe), os.X_OK):
            sys.exit(f"{who}: {exe} not found in {bindir}")
    return bindir


def start_echo_server(bindir, *extra, stderr=subprocess.DEVNULL):
    """Starts `echo_server --port 0 EXTRA...` and reads its "listening on" line;
    returns (process, port). Kills it and raises RuntimeError on any other line."""
    cmd = [os.path.join(bindir, "echo_server"), "--port", "0", *extra]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True)
    line = server.stdout.readline()
    m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)
    if not m:
        server.kill()
        server.wait()
        raise RuntimeError(f"{' '.join(extra)}: echo_server's first line was {line!r}")
    return server, int(m.group(1))


def proc_status_kib(pid, field):
    """A "kB" field of /proc/PID/status (VmRSS, VmHWM...) in KiB; 0 when absent."""
    with open(f"/proc/{pid}/status") as f:
        m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) if m else 0


def cpu_seconds(pid):
    """User + system CPU time of process `pid` so far, in seconds (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    """How many file descriptors process `pid` has open (entries of /proc/PID/fd)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def write_csv(path, rows):
    """Rows (dicts with the same keys, in order) to `path` with a header line."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
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
