#!/bin/bash
# Build a tiny bootable Debian 12 guest disk (qcow2) that boots under BIOS *and*
# UEFI, gets an address by DHCP on its virtio NIC and serves a marker page on
# port 80 with nginx-light. No loop devices or mounts are needed: the root fs
# is made with `mke2fs -d`, the ESP with mtools, GRUB is written with dd.
#
#   build-guest-image.sh OUT.qcow2
#
# Needs (Debian): mmdebstrap e2fsprogs dosfstools mtools fdisk grub-pc-bin
#                 grub-efi-amd64-bin grub-common qemu-utils
set -euo pipefail
out=${1:?usage: build-guest-image.sh OUT.qcow2}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=${SUITE:-bookworm}
MARKER=${MARKER:-uforge-guest-ok}
work=$(mktemp -d /tmp/uforge-img.XXXXXX)
trap 'rm -rf "$work"' EXIT
uuid=$(cat /proc/sys/kernel/random/uuid)

t0=$(date +%s)
# --- 1. root file system -----------------------------------------------------
unshare --mount --propagation private mmdebstrap --variant=apt --mode=root \
  --include=linux-image-amd64,initramfs-tools,udev,kmod,systemd-sysv,dbus,nginx-light,iproute2 \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"; printf "MODULES=list\nCOMPRESS=lz4\n" > "$1/etc/initramfs-tools/conf.d/uforge"; printf "virtio_pci\nvirtio_blk\nvirtio_scsi\nvirtio_net\next4\n" >> "$1/etc/initramfs-tools/modules"' \
  --include=lz4 \
  --customize-hook="echo uforge-guest > \"\$1/etc/hostname\"" \
  --customize-hook="echo 'UUID=$uuid / ext4 defaults,errors=remount-ro 0 1' > \"\$1/etc/fstab\"" \
  --customize-hook='printf "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n" > "$1/etc/systemd/network/20-wired.network"' \
  --customize-hook='chroot "$1" systemctl enable systemd-networkd' \
  --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer' \
  --customize-hook="echo $MARKER > \"\$1/var/www/html/index.html\"" \
  --customize-hook='echo root:uforge | chroot "$1" chpasswd' \
  --customize-hook='rm -f "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/*_Packages' \
  "$SUITE" "$work/root" "$MIRROR"
t1=$(date +%s)

kver=$(basename "$(ls -d "$work"/root/lib/modules/* | head -1)")
# --- 2. file systems ----------------------------------------------------------
root_mb=$(( $(du -sm "$work/root" | cut -f1) * 13 / 10 + 64 ))
esp_mb=32
mke2fs -q -t ext4 -L uforge-root -U "$uuid" -d "$work/root" "$work/root.img" "${root_mb}M"

cat > "$work/embed.cfg" <<EOF
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
search --no-floppy --fs-uuid --set=root $uuid
echo "uforge: booting $kver from \$root"
linux /boot/vmlinuz-$kver root=UUID=$uuid ro console=tty0 console=ttyS0,115200n8
initrd /boot/initrd.img-$kver
boot
EOF
mods="part_msdos part_gpt ext2 fat search search_fs_uuid linux echo serial terminal normal test"
grub-mkimage -O x86_64-efi -o "$work/BOOTX64.EFI" -p /boot/grub -c "$work/embed.cfg" $mods
grub-mkimage -O i386-pc -o "$work/core.img" -p /boot/grub -c "$work/embed.cfg" biosdisk $mods

mkfs.vfat -n UFORGE-ESP -C "$work/esp.img" $((esp_mb * 1024)) >/dev/null
MTOOLS_SKIP_CHECK=1 mmd -i "$work/esp.img" ::/EFI ::/EFI/BOOT
MTOOLS_SKIP_CHECK=1 mcopy -i "$work/esp.img" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI

# --- 3. disk: MBR | core.img in the post-MBR gap | p1 ESP (0xef) | p2 root ---
total_mb=$((1 + esp_mb + root_mb + 1))
truncate -s "${total_mb}M" "$work/disk.raw"
sfdisk -q "$work/disk.raw" <<EOF
label: dos
start=2048, size=$((esp_mb * 2048)), type=ef
start=$((2048 + esp_mb * 2048)), size=$((root_mb * 2048)), type=83, bootable
EOF
dd if="$work/esp.img" of="$work/disk.raw" bs=1M seek=1 conv=notrunc status=none
dd if="$work/root.img" of="$work/disk.raw" bs=1M seek=$((1 + esp_mb)) conv=notrunc status=none
core_sectors=$(( ($(stat -c %s "$work/core.img") + 511) / 512 ))
[ "$core_sectors" -lt 2047 ] || { echo "core.img too large" >&2; exit 1; }
# boot.img code (first 440 bytes, keeps the partition table); it loads sector 1
dd if=/usr/lib/grub/i386-pc/boot.img of="$work/disk.raw" bs=440 count=1 conv=notrunc status=none
dd if="$work/core.img" of="$work/disk.raw" bs=512 seek=1 conv=notrunc status=none
# diskboot.img's block list (last 12 bytes of core.img sector 0), as written by
# grub-mkimage, is "start=2, len=N-1": right for core.img placed at sector 1.
python3 - "$work/core.img" "$core_sectors" <<'EOF'
import struct, sys
start, length, _ = struct.unpack("<QHH", open(sys.argv[1], "rb").read(512)[-12:])
assert (start, length) == (2, int(sys.argv[2]) - 1), (start, length)
EOF

qemu-img convert -f raw -O qcow2 -c "$work/disk.raw" "$out"
t2=$(date +%s)
echo "IMAGE=$out"
echo "IMAGE_KERNEL=$kver"
echo "IMAGE_ROOT_UUID=$uuid"
echo "IMAGE_VIRTUAL_MB=$total_mb"
echo "IMAGE_FILE_BYTES=$(stat -c %s "$out")"
echo "IMAGE_MARKER=$MARKER"
echo "IMAGE_DEBOOTSTRAP_SECONDS=$((t1 - t0))"
echo "IMAGE_ASSEMBLE_SECONDS=$((t2 - t1))"
