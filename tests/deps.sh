#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine (as root). Quick when all is present.
set -euo pipefail
pkgs=(mmdebstrap attr libcap2-bin bc time util-linux findutils coreutils dpkg dpkg-dev
    gpgv gpg debian-archive-keyring gzip xz-utils tar curl ca-certificates libarchive-tools
    postgresql postgresql-client libpq-dev python3
    qemu-utils qemu-system-x86 ovmf e2fsprogs dosfstools mtools fdisk mount eatmydata skopeo umoci
    docker-registry apache2-utils openssl s3cmd libvirt-daemon-system libvirt-clients
    libvirt-daemon-driver-qemu grub-pc-bin grub-efi-amd64-bin grub-common)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The publish tests' services (tests/services): Garage is built from crates.io once and cached
# under /var/cache/uforge-tools (keyed by version); so is the small bootable guest disk.
bash tests/services/build-garage.sh > /dev/null
bash tests/services/guest-image.sh > /dev/null
