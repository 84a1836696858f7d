#!/usr/bin/env bash
# Server benchmark, against baselines measured in the same run.
#
# 1. 20 agents scanning fixture-sized machines at once against one server: all must succeed.
# 2. Peak RSS of the server while it receives a 2 GiB overlay. Target: under 150 MB.
# 3. End-to-end time of one live scan of the drifted fixture, next to
#    `tar -cf - ROOT | cat >/dev/null` over the same root (shipping the whole disk, before any
#    network).
#
#   bash benches/server.sh
set -euo pipefail
cd "$(dirname "$0")/.."

agents=${AGENTS:-20}
mirror=${UFORGE_MIRROR:-$(awk '/^URIs:/ && $2 ~ /debian$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
work=$(mktemp -d /var/tmp/uforge-bench.XXXXXX)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -q -p uforge-server -p uforge-scan-cli
bin=$PWD/target/release

"$bin/uforge-server" serve --data-dir "$work/data" --listen 127.0.0.1:0 >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do
    url=$(grep -o 'https://[0-9.:]*' "$work/server.out" | head -1 || true)
    [ -n "$url" ] && break
    sleep 0.2
done
token=$("$bin/uforge-server" user add bench --data-dir "$work/data" | awk '{print $NF}')
export UFORGE_TOKEN=$token UFORGE_URL=$url UFORGE_USER=bench UFORGE_CACERT=$work/data/tls/cert.pem
fail=0

# 2. First, on the fresh server: a 2 GiB overlay, one 2 GiB file no package owns (written,
# not sparse). The peak covers the whole life of the process so far.
big="$work/bigroot"
mkdir -p "$big/srv"
dd if=/dev/zero of="$big/srv/blob.img" bs=1M count=2048 status=none
"$bin/uforge-scan" run -q -n big --root "$big"
rss=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
printf 'memory: server peak RSS %d MB, from its start through receiving a 2 GiB overlay (target < 150 MB)\n' "$((rss / 1024))"
if [ "$rss" -lt $((150 * 1024)) ]; then echo "  PASS"; else
    echo "  FAIL"
    fail=1
fi
id=$("$bin/uforge" --json repo add "deb $mirror bookworm main" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
"$bin/uforge" repo sync "$id" >/dev/null
root=$(bash tests/fixtures/debian-root.sh drifted)

# 3. Then, on a quiet server: one machine, warm caches on both sides.
"$bin/uforge-scan" run -q -n warmup --root "$root"
t0=$(date +%s.%N)
"$bin/uforge-scan" run -q -n single --root "$root"
t1=$(date +%s.%N)
tar -cf - -C "$root" . | cat >/dev/null
t2=$(date +%s.%N)
tar -cf - -C "$root" . | cat >/dev/null
t3=$(date +%s.%N)
ours=$(echo "$t1 - $t0" | bc -l)
base=$(echo "$t3 - $t2" | bc -l)
printf 'end to end: one live scan of the drifted fixture (%s MB on disk)\n' "$(du -sm "$root" | cut -f1)"
printf '  tar -cf - ROOT | cat            %7.2f s (the whole disk, no network)\n' "$base"
printf '  uforge-scan run (5 steps, TLS)  %7.2f s\n' "$ours"

# 1. Many agents at once.
t0=$(date +%s.%N)
pids=()
for i in $(seq -w 1 "$agents"); do
    "$bin/uforge-scan" run -q -n "machine-$i" --root "$root" >"$work/agent-$i.log" 2>&1 &
    pids+=($!)
done
ok=0
for p in "${pids[@]}"; do
    if wait "$p"; then ok=$((ok + 1)); fi
done
t1=$(date +%s.%N)
complete=$("$bin/uforge" --json scan list | python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin) if s["machine"].startswith("machine-") and s["status"] == "complete"))')
printf 'concurrency: %d agents at once: %d succeeded, %d scans complete, %.1f s\n' "$agents" "$ok" "$complete" "$(echo "$t1 - $t0" | bc -l)"
if [ "$ok" -eq "$agents" ] && [ "$complete" -eq "$agents" ]; then echo "  PASS"; else
    echo "  FAIL"
    tail -3 "$work"/agent-*.log
    fail=1
fi

exit $fail
