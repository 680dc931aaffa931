#!/usr/bin/env python3
"""Runs a tutorial program and compares its standard output, byte for byte,
with the text the Python tutorial prints.

    compare_output.py PROGRAM EXPECTED_FILE
"""
import difflib
import subprocess
import sys


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    program, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path, "rb") as f:
        expected = f.read()
    run = subprocess.run([program], stdout=subprocess.PIPE, timeout=60)
    if run.returncode != 0:
        print(f"{program} exited with status {run.returncode}", file=sys.stderr)
        return 1
    if run.stdout == expected:
        return 0
    print(f"{program}: output differs from {expected_path}", file=sys.stderr)
    diff = difflib.unified_diff(
        expected.decode("utf-8", "backslashreplace").splitlines(keepends=True),
        run.stdout.decode("utf-8", "backslashreplace").splitlines(keepends=True),
        fromfile="expected",
        tofile="actual",
    )
    sys.stderr.writelines(repr(line)[1:-1] + "\n" for line in diff)
    return 1


if __name__ == "__main__":
    sys.exit(main())
