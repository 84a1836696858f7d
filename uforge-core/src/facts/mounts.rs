//! Filesystems: mounted ones and block devices on a live system, configured ones otherwise.

use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::rootfs::{lossy, RootFs};
use crate::model::{Mount, Partition, RawPath};

/// Filesystems whose content the kernel makes up: never worth recording.
const PSEUDO: &str = "proc sysfs devtmpfs devpts cgroup cgroup2 mqueue securityfs pstore bpf \
    debugfs tracefs configfs fusectl hugetlbfs binfmt_misc autofs efivarfs rpc_pipefs nsfs \
    selinuxfs nfsd fuse.gvfsd-fuse fuse.portal fuse.lxcfs";

/// Filesystems held by another machine: that machine's backups cover them.
const NETWORK: &str = "nfs nfs4 cifs smb3 smbfs sshfs fuse.sshfs glusterfs fuse.glusterfs ceph \
    fuse.ceph 9p afs lustre davfs fuse.davfs fuse.s3fs fuse.rclone";

fn listed(list: &str, fstype: &str) -> bool {
    list.split_whitespace().any(|t| t == fstype)
}

/// Mount points a live scan should skip, with the reason (`pseudo filesystem`,
/// `network filesystem`). Memory filesystems count as pseudo only under `/run`, `/dev`,
/// `/sys` and `/proc`, where they hold runtime state; elsewhere (`/tmp`) their content is
/// the scanner's business.
/// A mount point below one already listed is left out, as skipping the upper one covers it.
pub fn live_excludes(mounts: &[Mount]) -> Vec<(Vec<u8>, &'static str)> {
    let mut out: Vec<(Vec<u8>, &'static str)> = Vec::new();
    let mut sorted: Vec<&Mount> = mounts.iter().filter(|m| m.target != "/").collect();
    sorted.sort_by(|a, b| a.target.cmp(&b.target));
    for m in sorted {
        let t = m.target.as_bytes();
        let runtime = ["/run", "/dev", "/sys", "/proc"]
            .iter()
            .any(|d| t == d.as_bytes() || is_under(t, d.as_bytes()));
        let reason = if listed(PSEUDO, &m.fstype)
            || (runtime && matches!(m.fstype.as_str(), "tmpfs" | "ramfs"))
        {
            "pseudo filesystem"
        } else if listed(NETWORK, &m.fstype) {
            "network filesystem"
        } else {
            continue;
        };
        if !out.iter().any(|(p, _)| p == t || is_under(t, p)) {
            out.push((t.to_vec(), reason));
        }
    }
    out
}

fn is_under(path: &[u8], dir: &[u8]) -> bool {
    dir == b"/" || (path.starts_with(dir) && path.get(dir.len()) == Some(&b'/'))
}

/// Live: the kernel's mount table and sysfs. Otherwise: the root's fstab.
pub(crate) fn gather(rfs: &mut RootFs, root: &Path, live: bool) -> (Vec<Mount>, Vec<Partition>) {
    if !live {
        let mounts = rfs.read(b"/etc/fstab").map(|t| parse_fstab(&t));
        return (mounts.unwrap_or_default(), Vec::new());
    }
    let uuids = uuids_by_device();
    let info = match fs::read("/proc/self/mountinfo") {
        Ok(t) => t,
        Err(e) => {
            rfs.error(b"/proc/self/mountinfo", e);
            Vec::new()
        }
    };
    let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut mounts = parse_mountinfo(&info, root.as_os_str().as_bytes());
    let mut fstypes = HashMap::new();
    for m in &mut mounts {
        if let Some(dev) = device_name(&m.source) {
            m.uuid = uuids.get(&dev).cloned();
            fstypes.entry(dev).or_insert_with(|| m.fstype.clone());
        }
    }
    let partitions = partitions(rfs, &uuids, &fstypes);
    (mounts, partitions)
}

/// Kernel name (`vda1`, `dm-0`) of a `/dev/...` mount source, through any `/dev/mapper` link.
fn device_name(source: &str) -> Option<Vec<u8>> {
    if !source.starts_with("/dev/") {
        return None;
    }
    let real = fs::canonicalize(source).unwrap_or_else(|_| source.into());
    Some(real.file_name()?.as_bytes().to_vec())
}

/// udev names each `/dev/disk/by-uuid` link after the filesystem UUID and points it at the device.
fn uuids_by_device() -> HashMap<Vec<u8>, String> {
    let mut map = HashMap::new();
    let Ok(dir) = fs::read_dir("/dev/disk/by-uuid") else {
        return map;
    };
    for entry in dir.flatten() {
        if let Ok(target) = fs::read_link(entry.path()) {
            if let Some(dev) = target.file_name() {
                let uuid = entry.file_name().to_string_lossy().into_owned();
                map.insert(dev.as_bytes().to_vec(), uuid);
            }
        }
    }
    map
}

/// Block devices from `/sys/class/block`, sorted by name.
fn partitions(
    rfs: &mut RootFs,
    uuids: &HashMap<Vec<u8>, String>,
    fstypes: &HashMap<Vec<u8>, String>,
) -> Vec<Partition> {
    let class = Path::new("/sys/class/block");
    let entries = match fs::read_dir(class) {
        Ok(e) => e,
        Err(e) => {
            rfs.error(b"/sys/class/block", e);
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().as_bytes().to_vec();
        let dir = class.join(entry.file_name());
        let read = |f: &str| fs::read_to_string(dir.join(f)).ok();
        let size = read("size")
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
            .saturating_mul(512);
        if size == 0 && (name.starts_with(b"loop") || name.starts_with(b"ram")) {
            continue;
        }
        let number = read("partition").and_then(|s| s.trim().parse().ok());
        // A partition's sysfs directory sits inside its disk's.
        let parent = number
            .and_then(|_| fs::canonicalize(&dir).ok())
            .and_then(|p| Some(lossy(p.parent()?.file_name()?.as_bytes())));
        out.push(Partition {
            name: lossy(&name),
            parent,
            number,
            size,
            uuid: uuids.get(&name).cloned(),
            fstype: fstypes.get(&name).cloned(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Mounts at or below `root` (a host path), with targets made relative to it.
fn parse_mountinfo(text: &[u8], root: &[u8]) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        // The optional fields end at a lone "-"; fstype, source and superblock options follow.
        let Some(sep) = fields.iter().position(|f| *f == b"-") else {
            continue;
        };
        if sep < 6 || fields.len() < sep + 3 {
            continue;
        }
        let target = unescape(fields[4]);
        let target = if root == b"/" {
            target
        } else if target == root {
            b"/".to_vec()
        } else if is_under(&target, root) {
            target[root.len()..].to_vec()
        } else {
            continue;
        };
        let mut options = lossy(fields[5]);
        for opt in lossy(fields.get(sep + 3).copied().unwrap_or(b"")).split(',') {
            if !opt.is_empty() && !options.split(',').any(|o| o == opt) {
                options.push(',');
                options.push_str(opt);
            }
        }
        out.push(Mount {
            source: lossy(&unescape(fields[sep + 2])),
            target: lossy(&target),
            fstype: lossy(&unescape(fields[sep + 1])),
            options,
            uuid: None,
            origin: "mountinfo".to_string(),
        });
    }
    out
}

fn parse_fstab(text: &[u8]) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let mut fields = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty());
        let Some(source) = fields.next().filter(|f| !f.starts_with(b"#")) else {
            continue;
        };
        let Some(target) = fields.next() else {
            continue;
        };
        let source = lossy(&unescape(source));
        let uuid = source
            .strip_prefix("UUID=")
            .map(|u| u.trim_matches('"').to_string());
        out.push(Mount {
            target: lossy(&unescape(target)),
            fstype: fields.next().map_or_else(|| "auto".into(), lossy),
            options: fields.next().map_or_else(|| "defaults".into(), lossy),
            source,
            uuid,
            origin: "fstab".to_string(),
        });
    }
    out
}

/// Every mount point `/proc/self/mountinfo` lists, as raw host paths.
pub(crate) fn mount_points(mountinfo: &[u8]) -> Vec<RawPath> {
    mountinfo
        .split(|&b| b == b'\n')
        .filter_map(|l| l.split(|&b| b == b' ').nth(4))
        .map(unescape)
        .collect()
}

/// Undoes the `\ooo` octal escapes fstab and mountinfo use for blanks and backslashes.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let oct = field
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) if field[i] == b'\\' => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                // The kernel escapes single bytes (at most \377); anything larger is kept as
                // text.
                match u8::try_from(v) {
                    Ok(byte) => out.push(byte),
                    Err(_) => out.extend_from_slice(&field[i..i + 4]),
                }
                i += 4;
            }
            _ => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &[u8] = b"\
22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
23 22 0:21 / /proc rw,nosuid shared:12 - proc proc rw
24 23 0:40 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw
25 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw,size=4k
26 22 0:25 / /run rw,nosuid shared:5 - tmpfs tmpfs rw,mode=755
27 22 0:26 / /tmp rw - tmpfs tmpfs rw
28 22 0:50 / /mnt/my\\040share rw - nfs4 srv:/export rw,vers=4.2
29 22 0:51 / /srv/root/var rw - ext4 /dev/vdb rw
30 22 0:52 / /srv/root rw - xfs /dev/vdc rw
garbage line
";

    #[test]
    fn mountinfo_and_excludes() {
        let m = parse_mountinfo(MOUNTINFO, b"/");
        assert_eq!(m.len(), 9);
        assert_eq!(m[0].source, "/dev/vda1");
        assert_eq!(m[0].options, "rw,relatime,errors=remount-ro");
        assert_eq!(m[6].target, "/mnt/my share");
        assert_eq!(m[6].fstype, "nfs4");
        assert_eq!(m[0].origin, "mountinfo");
        let ex = live_excludes(&m);
        let ex: Vec<(&[u8], &str)> = ex.iter().map(|(p, r)| (p.as_slice(), *r)).collect();
        assert_eq!(
            ex,
            [
                (&b"/dev"[..], "pseudo filesystem"),
                (b"/mnt/my share", "network filesystem"),
                (b"/proc", "pseudo filesystem"),
                (b"/run", "pseudo filesystem"),
            ]
        );
        let sub = parse_mountinfo(MOUNTINFO, b"/srv/root");
        let targets: Vec<_> = sub.iter().map(|m| m.target.as_str()).collect();
        assert_eq!(targets, ["/var", "/"]);
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape(br"/srv/a\040b/c\134d"), b"/srv/a b/c\\d");
        assert_eq!(unescape(br"/x\04"), br"/x\04");
        assert_eq!(unescape(br"/x\777"), br"/x\777");
        assert_eq!(
            mount_points(MOUNTINFO)[6..8],
            [b"/mnt/my share".to_vec(), b"/srv/root/var".to_vec()]
        );
    }

    #[test]
    fn fstab() {
        let m = parse_fstab(
            b"# comment\n\n  UUID=\"ab-cd\" / ext4 errors=remount-ro 0 1\n\
              /dev/sdb1\t/mnt/with\\040space  xfs defaults 0 2\nLABEL=x /x\nonlyone\n",
        );
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].uuid.as_deref(), Some("ab-cd"));
        assert_eq!(m[0].origin, "fstab");
        assert_eq!(m[1].target, "/mnt/with space");
        assert_eq!(m[1].uuid, None);
        assert_eq!(
            (m[2].fstype.as_str(), m[2].options.as_str()),
            ("auto", "defaults")
        );
    }

    #[test]
    fn live_facts_of_this_machine() {
        let mut rfs = RootFs::new(Path::new("/"));
        let (mounts, _) = gather(&mut rfs, Path::new("/"), true);
        if Path::new("/proc/self/mountinfo").exists() {
            assert!(mounts.iter().any(|m| m.target == "/"));
        }
    }
}
