"""Scans a root with the uforge Python module, prints a summary, and analyses it against a
package repository.

    pip install ./uforge-py
    python examples/python_scan.py /path/to/rootfs \
        --repo 'deb http://deb.debian.org/debian bookworm main' --overlay overlay.tar
"""

import argparse
import collections
import os
import sys

import uforge


def progress(entries, size):
    print(f"\r  {entries} entries, {size / 1048576:.0f} MiB hashed", end="", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description="Scan a root and analyse it with uforge.")
    ap.add_argument("root", nargs="?", default="/")
    ap.add_argument("--repo", action="append", default=[], help="a sources.list line (repeatable)")
    ap.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/uforge"))
    ap.add_argument("--overlay", help="write the overlay tar here")
    args = ap.parse_args()

    report = uforge.scan(args.root, progress=progress)
    print(file=sys.stderr)
    m = report.machine
    print(f"{args.root}: {m.os.pretty_name or 'unknown OS'} ({m.arch}), host {m.hostname or '-'}")
    for n in m.network:
        print(f"  {n.name}: {n.method} {' '.join(n.addresses)}")
    print(f"{len(report.packages)} packages")

    # files() decodes one entry at a time: this loop holds no list of the machine's files.
    kinds = collections.Counter()
    unowned = 0
    for f in report.files():
        kinds[f.kind] += 1
        if f.package is None and f.kind == "file":
            unowned += f.size
    for kind, n in kinds.most_common():
        print(f"{n:>9} {kind}")
    print(f"{unowned / 1048576:.1f} MiB in files owned by no package")
    for e in report.errors[:10]:
        print(f"  not recorded: {os.fsdecode(e.path)}: {e.op}: {e.message}")

    if not args.repo:
        return
    repos = uforge.RepoIndex.from_sources(args.repo, cache_dir=args.cache_dir, archs=report.index_archs)
    analysis = uforge.analyze(report, repos)
    print(f"missing packages: {len(analysis.missing_packages)}")
    for name, version, arch in analysis.missing_packages:
        print(f"  {name} {version} {arch}")
    for mf in analysis.modified_files:
        print(f"  modified ({mf.change}) {os.fsdecode(mf.path)} from {mf.package}")
    s = analysis.stats
    print(
        f"{len(analysis.unknown_files)} unknown files; {len(analysis.wanted)} of {s['entries']} "
        f"entries wanted ({s['wanted_bytes'] / 1048576:.1f} MiB)"
    )
    if args.overlay:
        try:
            o = uforge.write_overlay(report, analysis, args.overlay)
        except uforge.OverlayError as e:
            sys.exit(f"overlay: {e}")
        print(f"overlay: {o['members']} members, {o['bytes'] / 1048576:.1f} MiB -> {args.overlay}")


if __name__ == "__main__":
    main()
