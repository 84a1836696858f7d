#!/usr/bin/env bash
# Template dependency check benchmark, measured against apt's resolver in the same run.
#
# The package set of the bootable fixture (a real bookworm machine with a kernel), pinned and
# then free, checked against the bookworm index loaded once. Baseline: `apt-get --simulate
# install` of the same pinned set from the same mirror, with its own lists and an empty dpkg
# status (apt's cache load and resolution). Target: each check well under 1 s.
#
#   bash benches/template.sh
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-5}
mirror=${UFORGE_MIRROR:-$(awk '/^URIs:/ && $2 ~ /debian$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
cache=${UFORGE_CACHE_DIR:-/var/cache/uforge-fixtures/repo-cache}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cargo build --release -q -p uforge-benches
. benches/lib.sh

fail=0
root=$(bash tests/fixtures/debian-root.sh bootable)
target/release/uforge-bench-template "$root" "$cache" "deb $mirror {release} main" "$runs" acme-agent >"$out/ours"
load=$(awk '$1 == "load" {print $2}' "$out/ours")
pinned=$(awk '$1 == "pinned" {print $2}' "$out/ours")
free=$(awk '$1 == "free" {print $2}' "$out/ours")
count=$(awk '$1 == "packages" {print $2}' "$out/ours")

# apt on the same set, in a directory of its own.
apt="$out/apt"
mkdir -p "$apt/etc/apt/sources.list.d" "$apt/etc/apt/preferences.d" "$apt/var/lib/apt/lists/partial" \
    "$apt/var/cache/apt/archives/partial" "$apt/var/lib/dpkg"
: >"$apt/var/lib/dpkg/status"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main" >"$apt/etc/apt/sources.list"
aptopts="-o Dir=$apt -o Dir::State::status=$apt/var/lib/dpkg/status -o APT::Architecture=amd64 -o Debug::NoLocking=1 -o APT::Sandbox::User=root"
# shellcheck disable=SC2086
apt-get $aptopts -qq update >/dev/null
dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${db:Status-Abbrev} ${Package}:${Architecture}=${Version}\n' |
    awk '$1 == "ii" {print $2}' | grep -v '^acme-agent' >"$out/set"
# The first run builds apt's binary cache; the best run is the one compared.
# shellcheck disable=SC2086
apt-get $aptopts -qq -s install $(cat "$out/set") >/dev/null
base=$(best "apt-get $aptopts -qq -s install $(tr '\n' ' ' <"$out/set") >/dev/null")

printf 'check of the bootable fixture'"'"'s %d packages against the bookworm index (loaded once in %.2f s)\n' "$count" "$load"
printf '  apt-get -s install (pinned)  %8.3f s\n' "$base"
printf '  pinned                       %8.3f s  (target < 1 s)\n' "$pinned"
verdict "$pinned < 1"
printf '  free                         %8.3f s  (target < 1 s)\n' "$free"
verdict "$free < 1"
exit $fail
