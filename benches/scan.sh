#!/usr/bin/env bash
# Scan benchmark, measured against baselines in the same run.
#
# 1. Speed: a full scan of a ~700 MB Debian root with a kernel (warm cache) against
#    `find ROOT -type f -print0 | xargs -0 -P2 sha256sum`. Target: at most half its wall time.
# 2. Memory: peak RSS of a scan of a synthetic tree of 1,000,000 small files. Target: < 300 MB.
#
#   bash benches/scan.sh            # both
#   FILES=200000 bash benches/scan.sh memory
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
runs=${RUNS:-5}
files=${FILES:-1000000}
cache=${UFORGE_FIXTURE_CACHE:-/var/cache/uforge-fixtures}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cargo build --release -q -p uforge-scan-cli -p uforge-benches
bin=target/release/uforge-scan

. benches/lib.sh

fail=0
if [ "$what" = all ] || [ "$what" = speed ]; then
    root=$(bash tests/fixtures/debian-root.sh kernel)
    size=$(du -sm "$root" | cut -f1)
    nfiles=$(find "$root" -type f | wc -l)
    # Warm the page cache for both contenders.
    find "$root" -type f -print0 | xargs -0 cat >/dev/null
    base=$(best "find '$root' -type f -print0 | xargs -0 -P2 sha256sum")
    ours=$(best "$bin scan -q --root '$root' -o '$out/kernel.ufr'")
    ratio=$(echo "$ours / $base" | bc -l)
    printf 'speed: root %s MB, %s files, %s cores\n' "$size" "$nfiles" "$(nproc)"
    printf '  baseline find | xargs -P2 sha256sum  %8.3f s\n' "$base"
    printf '  uforge-scan scan                     %8.3f s  (%.2fx of baseline, target <= 0.50x)\n' "$ours" "$ratio"
    printf '  report size %s KiB\n' "$(($(stat -c %s "$out/kernel.ufr") / 1024))"
    if (($(echo "$ratio > 0.5" | bc -l))); then
        echo "  FAIL: scan is slower than half the baseline"
        fail=1
    else
        echo "  PASS"
    fi
fi

if [ "$what" = all ] || [ "$what" = memory ]; then
    tree="$cache/tree-$files"
    if [ ! -f "$tree.done" ]; then
        echo "building a tree of $files files in $tree (once)..."
        rm -rf "$tree"
        target/release/uforge-bench-tree "$tree" "$files"
    fi
    /usr/bin/time -f '%M %e' -o "$out/time" "$bin" scan -q --root "$tree" -o "$out/tree.ufr"
    read -r rss_kb secs <"$out/time"
    rss_mb=$((rss_kb / 1024))
    printf 'memory: %s files\n' "$files"
    printf '  peak RSS %s MB in %s s (target < 300 MB), report %s KiB\n' "$rss_mb" "$secs" "$(($(stat -c %s "$out/tree.ufr") / 1024))"
    if [ "$rss_mb" -ge 300 ]; then
        echo "  FAIL: peak RSS over 300 MB"
        fail=1
    else
        echo "  PASS"
    fi
fi
exit $fail
