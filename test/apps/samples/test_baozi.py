"""Integration tests of apps/baozi: `python3 test_baozi.py CASE BAOZI_BINARY [EXPECTED_FILE]`."""

import collections
import os
import re

from samplelib import check, check_cli, check_eq, main, run_process

SUMMARY = re.compile(r"summary: made (\d+) baozi, eaten (\d+) \((.*)\), lost (\d+), eaten twice (\d+): (ok|MISMATCH)\n")


def story(binary, expected_file):
    """The default run tells the baozi tutorial's story line for line (its 15
    lines of output, after the two '--->starting' lines), then the checked
    summary."""
    with open(expected_file, encoding="utf-8") as f:
        expected = f.read()
    for args in ([], ["--capacity", "1"], ["--capacity", "3"], ["--consumers", "2", "--baozi", "5", "--threads", "1"]):
        status, out, err = run_process([binary] + args)
        check_eq(status, 0, f"exit status of baozi {args}")
        check_eq(err, "", f"stderr of baozi {args}")
        if out != expected:
            raise AssertionError(f"baozi {args} output differs:\n--- expected\n{expected}--- got\n{out}")


def counts(binary, *_):
    """Scaled runs: the summary adds up (made = consumers x rounds = eaten,
    nothing lost or eaten twice), and the story lines agree with it."""
    combos = [  # consumers, rounds, capacity, threads
        (1, 200, 0, 1),
        (3, 1000, 0, 2),
        (4, 3000, 1, 1),
        (8, 2000, 5, 2),
        (16, 500, 64, 3),
        (5, 0, 0, 1),
        (2, 20000, 1000, 2),
    ]
    for consumers, rounds, capacity, threads in combos:
        args = ["--consumers", str(consumers), "--baozi", str(rounds), "--capacity", str(capacity),
                "--threads", str(threads)]
        status, out, err = run_process([binary] + args, timeout=60)
        check_eq(status, 0, f"exit status of baozi {args}")
        check_eq(err, "", f"stderr of baozi {args}")
        lines = out.splitlines(keepends=True)
        m = SUMMARY.fullmatch(lines[-1])
        check(m, f"last line of baozi {args} is not a summary: {lines[-1]!r}")
        made, eaten, per, lost, twice, verdict = m.groups()
        check_eq((int(made), int(eaten), int(lost), int(twice), verdict),
                 (consumers * rounds, consumers * rounds, 0, 0, "ok"), f"summary of baozi {args}")
        # Cross-check the summary against the story it printed.
        kinds = collections.Counter()
        eaten_by = collections.Counter()
        for line in lines[:-1]:
            if line == "--->starting eating baozi...\n":
                kinds["start"] += 1
            elif mm := re.fullmatch(r"\[(c\d+)\] is eating baozi (\d+)\n", line):
                kinds["eat"] += 1
                eaten_by[mm.group(1)] += 1
                check(1 <= int(mm.group(2)) <= rounds, f"baozi number out of range: {line!r}")
            elif re.fullmatch(r"\[producer\] is making baozi (\d+)\n", line):
                kinds["make"] += 1
            else:
                raise AssertionError(f"unexpected line from baozi {args}: {line!r}")
        check_eq((kinds["start"], kinds["eat"], kinds["make"]), (consumers, consumers * rounds, rounds),
                 f"story lines of baozi {args} (start, eat, make)")
        if consumers <= 8:
            expected_per = ", ".join(f"c{i}: {eaten_by[f'c{i}']}" for i in range(1, consumers + 1))
            check_eq(per, expected_per, f"per-consumer counts of baozi {args}")
        # Quiet mode prints the summary only, with the same totals.
        status, out, _ = run_process([binary, "--quiet"] + args, timeout=60)
        check_eq(status, 0, f"exit status of baozi --quiet {args}")
        check_eq(len(out.splitlines()), 1, f"line count of baozi --quiet {args}")
        m = SUMMARY.fullmatch(out)
        check(m and m.group(6) == "ok" and int(m.group(1)) == consumers * rounds, f"quiet summary: {out!r}")


def large(binary, *_):
    """Many consumers over several threads, a million baozi: still exact.
    Under ThreadSanitizer (COOP_SANITIZE=thread, set by CMake) 100,000: a
    million did not finish within 60 s there on a loaded 2-core machine."""
    rounds = 1000 if os.environ.get("COOP_SANITIZE") == "thread" else 10000
    args = ["--quiet", "--consumers", "100", "--baozi", str(rounds), "--capacity", "16", "--threads", "2"]
    status, out, _ = run_process([binary] + args, timeout=60)
    check_eq(status, 0, f"exit status of baozi {args}")
    m = SUMMARY.fullmatch(out)
    check(m, f"summary line: {out!r}")
    made = str(100 * rounds)
    check_eq(m.group(1, 2, 4, 5, 6), (made, made, "0", "0", "ok"), "summary")


def cli(binary, *_):
    check_cli(binary, [
        ["--bogus"],
        ["--consumers", "0"],
        ["--consumers", "many"],
        ["--threads", "0"],
        ["--baozi", "-1"],
        ["stray-word"],
    ])


if __name__ == "__main__":
    main({"story": story, "counts": counts, "large": large, "cli": cli})
