"""Scanning from Python against the uforge-scan CLI on the same root, in the same run.

    python benches/python_scan.py --root ROOT --cli target/release/uforge-scan [--runs 7]

Each round runs the CLI (`uforge-scan scan -q --root ROOT -o FILE`, wall time of the process)
and `uforge.scan(ROOT)` in this process, alternating which goes first; the page cache is warmed
first. Best of N for each. Also shown, not judged: `scan()` followed by `Report.save()` (the
same output as the CLI's) and a whole `python -c` process (interpreter start and import
included). Target: `uforge.scan` within 5% of the CLI. Exit status 1 if it is missed.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import uforge


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()

    out = tempfile.mkdtemp(prefix="uforge-bench-")
    cli_out = os.path.join(out, "cli.ufr")
    py_out = os.path.join(out, "py.ufr")

    def cli():
        subprocess.run([args.cli, "scan", "-q", "--root", args.root, "-o", cli_out], check=True)

    def py():
        uforge.scan(args.root)

    def py_save():
        uforge.scan(args.root).save(py_out)

    def py_process():
        code = f"import uforge; uforge.scan({args.root!r})"
        subprocess.run([sys.executable, "-c", code], check=True)

    contenders = {"cli": cli, "py": py, "py_save": py_save, "py_process": py_process}
    for fn in contenders.values():  # warm the page cache and the code
        fn()
    best = {name: float("inf") for name in contenders}
    for i in range(args.runs):
        order = list(contenders.items())
        if i % 2:
            order.reverse()
        for name, fn in order:
            best[name] = min(best[name], timed(fn))

    report = uforge.Report.load(cli_out)
    stats = report.stats
    print(
        f"python scan: root {args.root}, {stats['entries']} entries, "
        f"{stats['bytes'] / 1e6:.0f} MB hashed, {os.cpu_count()} cores, best of {args.runs}"
    )
    base = best["cli"]
    rows = [
        ("uforge-scan scan -o FILE (process)", "cli"),
        ("uforge.scan(root)", "py"),
        ("uforge.scan(root).save(FILE)", "py_save"),
        ("python -c 'uforge.scan(root)' (process)", "py_process"),
    ]
    for label, name in rows:
        print(f"  {label:<44} {best[name]:8.3f} s  ({best[name] / base * 100:5.1f}% of the CLI)")
    ratio = best["py"] / base
    ok = ratio <= 1.05
    print(f"  target: uforge.scan within 5% of the CLI: {'PASS' if ok else 'FAIL'} ({(ratio - 1) * 100:+.1f}%)")
    for f in (cli_out, py_out):
        if os.path.exists(f):
            os.remove(f)
    os.rmdir(out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
