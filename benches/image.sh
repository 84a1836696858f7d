#!/usr/bin/env bash
# Image generation benchmark, measured against a baseline in the same run.
#
# 1. Time: `uforge image build --format qcow2` of the ~700 MB kernel fixture (install the
#    scanned packages, reconcile with the overlay, tune for KVM with GRUB for BIOS and UEFI,
#    write the qcow2) against `mmdebstrap` installing the same package list, at the same
#    versions, into a directory. Target: no longer than the baseline.
# 2. Size: the qcow2 against the bytes of the files it holds (apparent sizes in the image's
#    root filesystem). Target: at most 1.1 times.
#
#   bash benches/image.sh
set -euo pipefail
cd "$(dirname "$0")/.."

mirror=${UFORGE_MIRROR:-$(awk '/^URIs:/ && $2 ~ /debian$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
repo="deb $mirror bookworm main"
cache=${UFORGE_CACHE_DIR:-/var/cache/uforge-fixtures/repo-cache}
out=$(mktemp -d /var/tmp/uforge-bench-image.XXXXXX)
mnt=$out/mnt
loop=
cleanup() {
    mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"
    [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
    rm -rf "$out"
}
trap cleanup EXIT

cargo build --release -q -p uforge-scan-cli
scan=$PWD/target/release/uforge-scan
uforge=$PWD/target/release/uforge
root=$(bash tests/fixtures/debian-root.sh kernel)

"$scan" scan -q --root "$root" -o "$out/k.ufr"
"$scan" analyze -q --report "$out/k.ufr" --repo "$repo" --cache-dir "$cache" -o "$out/k.json"
"$scan" overlay -q --report "$out/k.ufr" --analysis "$out/k.json" -o "$out/k.tar"
list=$(chroot "$root" dpkg-query -W -f '${db:Status-Status} ${Package}:${Architecture}=${Version}\n' |
    awk '$1 == "installed" {print $2}' | paste -sd,)

fail=0
verdict() {
    if (($(echo "$1" | bc -l))); then echo "  PASS"; else
        echo "  FAIL"
        fail=1
    fi
}

# Both runs download from the mirror; one throwaway run warms the mirror's and the page cache
# for both, so neither is measured cold.
mmdebstrap --quiet --variant=custom --include="$list" bookworm "$out/warm" "$repo" >/dev/null 2>&1
rm -rf "$out/warm"

t0=$(date +%s.%N)
mmdebstrap --quiet --variant=custom --include="$list" bookworm "$out/baseline" "$repo" >/dev/null 2>&1
t1=$(date +%s.%N)
base=$(echo "$t1 - $t0" | bc -l)
rm -rf "$out/baseline"

t0=$(date +%s.%N)
"$uforge" image build -q --report "$out/k.ufr" --overlay "$out/k.tar" --analysis "$out/k.json" \
    --repo "$repo" --cache-dir "$cache" --format qcow2 -o "$out/k.qcow2" --work-dir "$out" >/dev/null
t1=$(date +%s.%N)
ours=$(echo "$t1 - $t0" | bc -l)

echo "1. qcow2 of the kernel fixture: $(printf '%.1f' "$ours") s; mmdebstrap of the same packages: $(printf '%.1f' "$base") s (ratio $(printf '%.2f' "$(echo "$ours / $base" | bc -l)"), target <= 1.00)"
verdict "$ours <= $base"

# Bytes of the files in the image: mount its root filesystem (partition 3, after the BIOS
# boot and EFI system partitions) and add up apparent sizes.
qemu-img convert -O raw "$out/k.qcow2" "$out/k.raw"
start=$(sfdisk --json "$out/k.raw" | python3 -c 'import json,sys; t=json.load(sys.stdin)["partitiontable"]; print(t["partitions"][2]["start"] * t.get("sectorsize", 512))')
loop=$(losetup --find --show --read-only --offset "$start" "$out/k.raw")
mkdir -p "$mnt"
mount -o ro,noload "$loop" "$mnt"
files=$(du -sb --apparent-size -x "$mnt" | cut -f1)
umount "$mnt"
losetup -d "$loop"
loop=
size=$(stat -c %s "$out/k.qcow2")
echo "2. qcow2: $((size >> 20)) MiB for $((files >> 20)) MiB of files (ratio $(printf '%.3f' "$(echo "$size / $files" | bc -l)"), target <= 1.10)"
verdict "$size <= 1.1 * $files"
exit $fail
