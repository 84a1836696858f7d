#!/bin/bash
# Builds Garage (the S3-compatible store the publish tests run) with only the S3 API and the
# LMDB metadata engine, and caches the binary under /var/cache/uforge-tools, keyed by version.
#
#   build-garage.sh            -> prints the binary's path (building it when not cached)
#
# The build is the slow part of installing the test services (about 15 minutes on 2 cores
# at opt-level 3); GARAGE_OPT_LEVEL (default 1) trades the store's speed for a shorter build.
set -euo pipefail
VER=${GARAGE_VERSION:-2.5.0}
JOBS=${JOBS:-$(nproc)}
DEST=${GARAGE_CACHE:-/var/cache/uforge-tools}/garage-$VER
if [ -x "$DEST/garage" ]; then echo "$DEST/garage"; exit 0; fi
BUILD=$(mktemp -d /var/tmp/garage-build.XXXXXX)
trap 'rm -rf "$BUILD"' EXIT
start=$(date +%s)
CARGO_TARGET_DIR=$BUILD/target \
CARGO_PROFILE_RELEASE_OPT_LEVEL=${GARAGE_OPT_LEVEL:-1} \
CARGO_PROFILE_RELEASE_CODEGEN_UNITS=${GARAGE_CODEGEN_UNITS:-16} \
CARGO_PROFILE_RELEASE_LTO=false \
CARGO_PROFILE_RELEASE_DEBUG=false \
  cargo install garage --version "=$VER" --locked --quiet \
  --no-default-features --features "${GARAGE_FEATURES:-bundled-libs,lmdb}" \
  -j "$JOBS" --root "$BUILD/root" >&2
end=$(date +%s)
mkdir -p "$DEST"
install -m 0755 "$BUILD/root/bin/garage" "$DEST/garage.tmp"
mv "$DEST/garage.tmp" "$DEST/garage"
echo "built garage $VER in $((end - start)) s" >&2
echo "$DEST/garage"
