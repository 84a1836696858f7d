#!/usr/bin/env bash
# Analysis and overlay benchmark, measured against baselines in the same run.
#
# 1. Size: the overlay of the drifted fixture against `tar -cf - ROOT` (what copying the whole
#    disk ships). Target: at most 5%.
# 2. Throughput: writing an overlay of every file of the ~700 MB kernel fixture against
#    `tar -cf - FILES | cat >/dev/null` over the same file list. Target: at least 80%.
# 3. Scale: analysing a report of 1,000,000 entries (the drifted machine plus synthetic files)
#    against the loaded bookworm index. Target: under 5 s.
#
#   bash benches/analysis.sh
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-3}
entries=${ENTRIES:-1000000}
mirror=${UFORGE_MIRROR:-$(awk '/^URIs:/ && $2 ~ /debian$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
repo="deb $mirror bookworm main"
cache=${UFORGE_CACHE_DIR:-/var/cache/uforge-fixtures/repo-cache}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cargo build --release -q -p uforge-scan-cli -p uforge-benches
bin=$PWD/target/release/uforge-scan

. benches/lib.sh

fail=0
verdict() {
    if (($(echo "$1" | bc -l))); then echo "  PASS"; else
        echo "  FAIL"
        fail=1
    fi
}

# 1. Size.
drifted=$(bash tests/fixtures/debian-root.sh drifted)
"$bin" scan -q --root "$drifted" -o "$out/d.ufr"
"$bin" analyze -q --report "$out/d.ufr" --repo "$repo" --cache-dir "$cache" -o "$out/d.json"
"$bin" overlay -q --report "$out/d.ufr" --analysis "$out/d.json" -o "$out/d.tar"
whole=$(tar -cf - -C "$drifted" . | wc -c)
ours=$(stat -c %s "$out/d.tar")
pct=$(echo "100 * $ours / $whole" | bc -l)
printf 'size: drifted fixture\n'
printf '  tar -cf - ROOT      %12d bytes\n' "$whole"
printf '  overlay             %12d bytes  (%.2f%%, target <= 5%%)\n' "$ours" "$pct"
verdict "$pct <= 5"

# 2. Throughput: an analysis against an empty repository wants every file.
kernel=$(bash tests/fixtures/debian-root.sh kernel)
mkdir -p "$out/empty-repo"
: >"$out/empty-repo/Packages"
"$bin" scan -q --root "$kernel" -o "$out/k.ufr"
"$bin" analyze -q --report "$out/k.ufr" --repo "deb [trusted=yes] file:$out/empty-repo ./" \
    --cache-dir "$out/cache" -o "$out/k.json"
python3 - "$out/k.json" "$out/k.list" <<'EOF'
import json, sys, base64
a = json.load(open(sys.argv[1]))
with open(sys.argv[2], "wb") as f:
    for w in a["wanted"]:
        p = w["path"].encode() if "path" in w else base64.b64decode(w["path_b64"])
        f.write(b"." + p + b"\0")
EOF
find "$kernel" -type f -print0 | xargs -0 cat >/dev/null
base=$(best "tar -cf - -C '$kernel' --no-recursion --null -T '$out/k.list' | cat >/dev/null")
mine=$(best "'$bin' overlay -q --report '$out/k.ufr' --analysis '$out/k.json' -o - | cat >/dev/null")
bytes=$("$bin" overlay -q --report "$out/k.ufr" --analysis "$out/k.json" -o - | wc -c)
rel=$(echo "$base / $mine" | bc -l)
printf 'throughput: every file of the kernel fixture (%d MB of tar)\n' "$((bytes / 1048576))"
printf '  tar -cf - FILES | cat    %8.3f s\n' "$base"
printf '  uforge-scan overlay      %8.3f s  (%.0f%% of tar'"'"'s throughput, target >= 80%%)\n' "$mine" "$(echo "100 * $rel" | bc -l)"
verdict "$rel >= 0.8"

# 3. Scale.
target/release/uforge-bench-report "$out/d.ufr" "$out/big.ufr" "$entries" >/dev/null
t=$(best "'$bin' analyze -q --report '$out/big.ufr' --repo '$repo' --cache-dir '$cache' -o '$out/big.json'")
printf 'scale: analysis of a %d-entry report against the bookworm index\n' "$entries"
printf '  uforge-scan analyze      %8.3f s  (target < 5 s)\n' "$t"
verdict "$t < 5"
exit $fail
