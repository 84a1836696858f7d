#!/usr/bin/env bash
# The main job on the embedded defaults: a uforge server (SQLite, local blob storage,
# self-signed TLS) and a live migration scan of this machine against it. Run as root.
#
#   bash scripts/quickstart.sh [EXTRA uforge-scan run FLAGS, e.g. -e /srv/cache]
#
# Environment:
#   UFORGE_DATA_DIR   the server's data directory (default /var/lib/uforge-quickstart)
#   UFORGE_LISTEN     the address it listens on (default 127.0.0.1:8443)
#   UFORGE_SCAN_ROOT  the root the agent scans (default /, this machine); another root (a
#                     mounted disk, a chroot) is named after its /etc/hostname
#   UFORGE_BIN_DIR    a directory holding uforge-server, uforge and uforge-scan already built:
#                     used as they are instead of `cargo build --release`
#   UFORGE_IMAGE      an image format (qcow2, vmdk...): also build an image of the scan
set -euo pipefail
cd "$(dirname "$0")/.."
data=${UFORGE_DATA_DIR:-/var/lib/uforge-quickstart}
listen=${UFORGE_LISTEN:-127.0.0.1:8443}
root=${UFORGE_SCAN_ROOT:-/}
mirror=$(awk '/^URIs:/ && $2 ~ /debian$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
security=$(awk '/^URIs:/ && $2 ~ /debian-security$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
security=${security:-http://deb.debian.org/debian-security}
suite=$(. "${root%/}/etc/os-release" && echo "${VERSION_CODENAME:-bookworm}")

# Repository signatures are checked with gpgv against the Debian archive keyring.
# Images are built with mmdebstrap, e2fsprogs, dosfstools, mtools and qemu-img.
tools="gpgv debian-archive-keyring"
[ -n "${UFORGE_IMAGE:-}" ] && tools="$tools mmdebstrap eatmydata e2fsprogs dosfstools mtools fdisk qemu-utils"
for p in $tools; do
    dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed ||
        { apt-get update -qq && apt-get install -y -qq "$p" >/dev/null; }
done

if [ -n "${UFORGE_BIN_DIR:-}" ]; then
    bin=$(cd "$UFORGE_BIN_DIR" && pwd)
    for b in uforge-server uforge uforge-scan; do
        [ -x "$bin/$b" ] || { echo "UFORGE_BIN_DIR: no executable $bin/$b" >&2; exit 1; }
    done
else
    echo "building uforge-server and uforge-scan (cargo build --release)..."
    cargo build --release -p uforge-server -p uforge-scan-cli
    bin=$PWD/target/release
fi
mkdir -p "$data"

# The server is left running after this script, so that the README's next commands work; a
# rerun reuses it. Stop it with: kill "$(cat /var/lib/uforge-quickstart/server.pid)".
# A pid of the file that names a zombie or, reused, another program is not the server.
running() {
    local pid stat
    pid=$(cat "$data/server.pid" 2>/dev/null) && [ -n "$pid" ] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $stat == *"(uforge-server) "[!Z]* ]]
}
if ! running; then
    : >"$data/server.out"
    setsid "$bin/uforge-server" serve --data-dir "$data" --listen "$listen" \
        >>"$data/server.out" 2>>"$data/server.log" </dev/null &
    echo $! >"$data/server.pid"
fi
server=$(cat "$data/server.pid")
url=
for _ in $(seq 150); do
    running || { tail -20 "$data/server.log" >&2; exit 1; }
    url=$(grep -o 'https://[0-9.:]*' "$data/server.out" | tail -1 || true)
    [ -n "$url" ] && curl -sk -o /dev/null "$url/api/v1/health" && break
    sleep 0.2
done
curl -sk -o /dev/null "$url/api/v1/health" || { echo "server at $url does not answer" >&2; exit 1; }
echo "server: $url (pid $server, data in $data, log $data/server.log)"

if [ ! -s "$data/demo.token" ]; then
    (umask 077 && "$bin/uforge-server" user add demo --data-dir "$data" | awk '{print $NF}' >"$data/demo.token")
fi
export UFORGE_URL=$url UFORGE_USER=demo UFORGE_CACERT=$data/tls/cert.pem
client() { "$bin/uforge" --token-file "$data/demo.token" "$@"; }
# Each suite is added once and synced until a sync succeeds: a rerun finishes what an earlier
# run left half done.
repos=$(client --json repo list)
for line in "deb $mirror $suite main" "deb $mirror $suite-updates main" \
    "deb $security $suite-security main"; do
    id=$(printf '%s' "$repos" | LINE=$line python3 -c '
import json, os, sys
for r in json.load(sys.stdin):
    if r["line"] == os.environ["LINE"]:
        print(r["id"], "synced" if r.get("synced_at") else "")
        break')
    if [ -z "$id" ]; then
        id=$(client --json repo add "$line" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
    fi
    case "$id" in
    *synced) ;;
    *) client repo sync "${id%% *}" ;;
    esac
done

# This machine is scanned without the server's data and the build tree; another root is
# named after the host name it holds.
if [ "$root" = / ]; then
    agent_args=(-n "$(hostname)" --root / -e "$data" -e "$PWD/target")
else
    name=$(head -n1 "${root%/}/etc/hostname" 2>/dev/null || true)
    [ -n "$name" ] || { echo "UFORGE_SCAN_ROOT: $root has no /etc/hostname to name it" >&2; exit 1; }
    agent_args=(-n "$name" --root "$root")
fi
"$bin/uforge-scan" run -U "$url" -u demo --token-file "$data/demo.token" --cacert "$data/tls/cert.pem" \
    "${agent_args[@]}" "$@"
client scan list
client package list

# UFORGE_IMAGE=qcow2 (or any format) also builds an image of the scan. It stays where the server
# wrote it, in its data directory: a download to this filesystem would store it twice.
if [ -n "${UFORGE_IMAGE:-}" ]; then
    scan=$(client --json scan list | python3 -c 'import json, sys; print(max(s["id"] for s in json.load(sys.stdin)))')
    job=$(client --json image generate "$scan" --format "$UFORGE_IMAGE" --wait |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
    file=$(client --json image status "$job" | python3 -c 'import json, sys; print(json.load(sys.stdin)["file"])')
    echo "image $job is at $data/images/$job/$file"
    echo "  (\`uforge image download $job --link -o FILE\` puts it elsewhere on this filesystem without a copy)"
fi
