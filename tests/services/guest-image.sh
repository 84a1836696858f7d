#!/bin/bash
# Prints the path of a small bootable Debian guest disk (qcow2, BIOS and UEFI, nginx serving
# a marker page), building it with build-guest-image.sh when it is not cached. The cache
# under /var/cache/uforge-tools/images is keyed by a stamp of the build script.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
stamp=$(sha256sum "$here/build-guest-image.sh" | cut -c1-12)
img=${GUEST_IMAGE_CACHE:-/var/cache/uforge-tools/images}/bookworm-nginx-$stamp.qcow2
if [ ! -f "$img" ]; then
  mkdir -p "$(dirname "$img")"
  "$here/build-guest-image.sh" "$img.tmp" >&2
  mv "$img.tmp" "$img"
fi
echo "$img"
