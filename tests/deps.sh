#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine (as root). Quick when all is present.
set -euo pipefail
pkgs=(mmdebstrap attr libcap2-bin bc time util-linux findutils coreutils dpkg dpkg-dev
    gpgv gpg debian-archive-keyring gzip xz-utils tar curl ca-certificates libarchive-tools
    postgresql postgresql-client libpq-dev python3
    qemu-utils qemu-system-x86 ovmf e2fsprogs dosfstools mtools fdisk mount eatmydata skopeo umoci
    docker-registry apache2-utils openssl s3cmd libvirt-daemon-system libvirt-clients
    libvirt-daemon-driver-qemu grub-pc-bin grub-efi-amd64-bin grub-common)
# Two passes: installing one package can remove another that conflicts with it (qemu-system-x86
# from bookworm removes a backported qemu-utils), and the second pass puts it back at the
# matching version.
for _pass in 1 2; do
    missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && break
    export DEBIAN_FRONTEND=noninteractive
    [ "$_pass" = 1 ] && apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
done
for c in qemu-img qemu-system-x86_64 mmdebstrap; do
    command -v "$c" >/dev/null || { echo "deps.sh: $c is missing after the install" >&2; exit 1; }
done

# The publish tests' services (tests/services): Garage is built from crates.io once and cached
# under /var/cache/uforge-tools (keyed by version); so is the small bootable guest disk.
bash tests/services/build-garage.sh > /dev/null
bash tests/services/guest-image.sh > /dev/null
