#!/bin/bash
# Start/stop a private libvirtd (monolithic daemon, qemu + storage drivers) for
# tests, without systemd, fully isolated from any system instance:
# libvirtd runs in its own mount namespace where /run/libvirt, /etc/libvirt,
# /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt are bind mounts of
# sub-directories of DIR. Its unix socket is therefore DIR/run/libvirt-sock
# and clients connect with  qemu:///system?socket=DIR/run/libvirt-sock
#
#   libvirt.sh start DIR   -> prints KEY=VALUE lines (also written to DIR/env)
#   libvirt.sh stop  DIR   -> destroys all domains, stops libvirtd
#
#   LIBVIRT_CACHE_DIR=/var/cache/uforge-tools/libvirt-cache  (optional) keeps the
#   QEMU capabilities cache across instances: start drops from ~8 s to ~1 s.
#   (libvirt revalidates the cache against the qemu binary's mtime/version.)
#
# Needs (Debian): libvirt-daemon-system libvirt-clients qemu-system-x86
#                 qemu-utils ovmf passt util-linux (unshare)
set -euo pipefail

cmd=${1:?usage: libvirt.sh start|stop DIR}
dir=${2:?usage: libvirt.sh start|stop DIR}

uri() { echo "qemu:///system?socket=$dir/run/libvirt-sock"; }

stop() {
  dir=$(cd "$dir" 2>/dev/null && pwd) || return 0
  [ -f "$dir/libvirtd.pid" ] || return 0
  pid=$(cat "$dir/libvirtd.pid")
  if kill -0 "$pid" 2>/dev/null; then
    for d in $(virsh -q -c "$(uri)" list --name 2>/dev/null); do
      virsh -q -c "$(uri)" destroy "$d" >/dev/null 2>&1 || true
    done
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  # leftovers (qemu/passt outlive a killed libvirtd): their pid files are in our run dir
  for pf in "$dir"/run/qemu/*.pid "$dir"/run/qemu/passt/*.pid; do
    [ -f "$pf" ] || continue
    p=$(cat "$pf" 2>/dev/null || true)
    [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
  done
  rm -f "$dir/libvirtd.pid"
}

start() {
  mkdir -p "$dir"/{run,etc,lib,cache,log}
  dir=$(cd "$dir" && pwd)
  cache=${LIBVIRT_CACHE_DIR:-$dir/cache}
  mkdir -p "$cache"
  # a private copy of the packaged configuration, then our overrides
  cp -a /etc/libvirt/. "$dir/etc/"
  rm -f "$dir"/etc/qemu/networks/autostart/*.xml   # no default NAT network / dnsmasq
  cat > "$dir/etc/libvirtd.conf" <<EOF
unix_sock_group = "root"
unix_sock_ro_perms = "0770"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "2:file:$dir/log/libvirtd.log"
EOF
  cat > "$dir/etc/qemu.conf" <<EOF
# run qemu as root, no DAC relabelling, no AppArmor/SELinux profiles
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
# no cgroups (no systemd here; avoids leaking machine cgroups)
cgroup_controllers = [ ]
# qemu writes its own log / chardev log files: no virtlogd needed
stdio_handler = "file"
# no virtlockd either
lock_manager = "nop"
EOF
  # bind-mount targets must exist on the host; they stay empty there
  mkdir -p /run/libvirt /etc/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt

  t0=$(date +%s.%N)
  # unshare without --fork execs libvirtd in the new mount namespace, so $! is libvirtd
  unshare --mount --propagation private sh -c "
    mount --bind '$dir/run'   /run/libvirt &&
    mount --bind '$dir/etc'   /etc/libvirt &&
    mount --bind '$dir/lib'   /var/lib/libvirt &&
    mount --bind '$cache' /var/cache/libvirt &&
    mount --bind '$dir/log'   /var/log/libvirt &&
    exec /usr/sbin/libvirtd --config /etc/libvirt/libvirtd.conf --pid-file '$dir/libvirtd.pid.tmp'
  " > "$dir/libvirtd.out" 2>&1 &
  echo $! > "$dir/libvirtd.pid"

  for _ in $(seq 300); do
    virsh -q -c "$(uri)" version >/dev/null 2>&1 && break
    kill -0 "$(cat "$dir/libvirtd.pid")" 2>/dev/null || { cat "$dir/libvirtd.out" >&2; exit 1; }
    sleep 0.1
  done
  virsh -q -c "$(uri)" version >/dev/null || { echo "libvirtd did not come up" >&2; cat "$dir/libvirtd.out" >&2; stop; exit 1; }
  t1=$(date +%s.%N)
  cat > "$dir/env" <<EOF
LIBVIRT_URI=$(uri)
LIBVIRT_SOCKET=$dir/run/libvirt-sock
LIBVIRTD_PID=$(cat "$dir/libvirtd.pid")
LIBVIRTD_LOG=$dir/log/libvirtd.log
LIBVIRT_QEMU_LOG_DIR=$dir/log/qemu
LIBVIRT_STARTUP_SECONDS=$(python3 -c "print(round($t1-$t0,3))")
EOF
  cat "$dir/env"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
