//! The migration fidelity report: every difference between an image's filesystem and the
//! scanned machine that the image's tuning log does not explain.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use super::cmd;
use super::disk::Attached;
use super::reconcile::scan_like;
use super::TuningLog;
use crate::analysis::{compare, PackageChange};
use crate::facts::UsrLayout;
use crate::fsroot::{Links, RootDir};
use crate::model::FileKind;
use crate::rawpath::{to_text, TextPath};
use crate::report::ReportReader;
use crate::{Error, Result};

/// One unexplained difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// In-root path (lossy for display; see `path_b64` in the JSON form for exact bytes).
    pub path: String,
    /// `added` (in the image only), `removed` (on the source only) or `modified`.
    pub status: String,
    /// For `modified`: what differs.
    pub what: Vec<String>,
}

/// What `verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    /// Differences the tuning log does not explain.
    pub unexplained: Vec<Difference>,
    /// Package differences the tuning log does not explain.
    pub unexplained_packages: Vec<PackageChange>,
    /// Differences the tuning log explains.
    pub explained: u64,
    /// Packages the tuning installed or changed.
    pub explained_packages: u64,
    /// Entries compared (of the image).
    pub entries: u64,
    /// Sockets of the source absent from the image, explained: no archive carries a socket;
    /// the program that listens on one creates it when it starts.
    pub absent_sockets: Vec<String>,
    /// The source's /usr layout.
    pub layout: UsrLayout,
    /// The image's /usr layout: differs from [`Self::layout`] only with unexplained
    /// differences of `/bin`, `/sbin` or `/lib*`.
    pub image_layout: UsrLayout,
}

impl Verification {
    /// Whether the image is the scanned machine plus its logged tuning.
    pub fn is_faithful(&self) -> bool {
        self.unexplained.is_empty() && self.unexplained_packages.is_empty()
    }
}

/// Compares the filesystem inside `image` (any disk format `qemu-img` reads, an OVA, a tar.gz
/// of a root, or a directory holding a root) with the scan `report`. The tuning log is read from the image unless
/// `log` is given. `work` holds temporary files and mounts.
pub fn verify(
    image: &Path,
    report: &Path,
    log: Option<&Path>,
    work: &Path,
) -> Result<Verification> {
    std::fs::create_dir_all(work).map_err(|e| Error::io("create", work, e))?;
    let header = ReportReader::open(report)?.header().clone();
    let scanned = work.join("image.report");
    let (entries, in_image_log) = with_image_root(image, work, |root| {
        let entries = scan_like(root, &header, &scanned)?.entries;
        Ok((entries, tuning_log_of(root)))
    })?;
    finish(report, &scanned, entries, log, in_image_log)
}

/// Runs `f` on the root filesystem inside `image` (see [`verify`] for the forms read),
/// unpacked or mounted under `work` and removed or unmounted afterwards.
pub(crate) fn with_image_root<T>(
    image: &Path,
    work: &Path,
    f: impl FnOnce(&Path) -> Result<T>,
) -> Result<T> {
    std::fs::create_dir_all(work).map_err(|e| Error::io("create", work, e))?;
    if image.is_dir() {
        // An unpacked root (`umoci unpack`, a mounted disk).
        return f(image);
    }
    let mut magic = [0u8; 512];
    let n = std::fs::File::open(image)
        .and_then(|mut f| f.read(&mut magic))
        .map_err(|e| Error::io("read", image, e))?;
    let mnt = work.join("image-root");
    if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        let _ = std::fs::remove_dir_all(&mnt);
        std::fs::create_dir_all(&mnt).map_err(|e| Error::io("create", &mnt, e))?;
        cmd::run(
            Command::new("tar")
                .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpzf"])
                .arg(image)
                .arg("-C")
                .arg(&mnt),
        )?;
        let res = f(&mnt);
        let _ = std::fs::remove_dir_all(&mnt);
        return res;
    }
    let disk = disk_of(image, &magic[..n], work)?;
    let raw = work.join("image.raw");
    let raw_path = if qemu_format(&disk)? == "raw" {
        disk.clone()
    } else {
        cmd::run(
            Command::new("qemu-img")
                .args(["convert", "-O", "raw"])
                .arg(&disk)
                .arg(&raw),
        )?;
        raw.clone()
    };
    let att = Attached::mount_root(&raw_path, &mnt)?;
    let res = f(&mnt);
    drop(att);
    let _ = std::fs::remove_file(&raw);
    if disk != image {
        let _ = std::fs::remove_file(&disk);
    }
    res
}

/// The tuning log inside the image root `root`, read with the root's links resolved in it:
/// an image whose log is a link to `/etc/shadow` must not make us read the host's.
pub(crate) fn tuning_log_of(root: &Path) -> Option<Vec<u8>> {
    let dir = RootDir::open(root, Links::InRoot).ok()?.crossing_mounts();
    dir.read(TuningLog::IN_IMAGE.as_bytes(), 256 << 20).ok()
}

/// Compares the scan of the image with the report and sorts the differences out.
fn finish(
    report: &Path,
    scanned: &Path,
    entries: u64,
    log: Option<&Path>,
    in_image_log: Option<Vec<u8>>,
) -> Result<Verification> {
    let log_bytes = match log {
        Some(p) => Some(std::fs::read(p).map_err(|e| Error::io("read", p, e))?),
        None => in_image_log,
    };
    let log: TuningLog = match log_bytes {
        Some(b) => serde_json::from_slice(&b)
            .map_err(|e| Error::Invalid(format!("the tuning log is not valid: {e}")))?,
        None => TuningLog::default(),
    };
    let mut sockets = HashSet::new();
    let mut source = ReportReader::open(report)?;
    let packages = source.header().packages.clone();
    let mut layout = UsrLayout::default();
    while let Some(e) = source.next_file()? {
        layout.observe(&e);
        if e.kind == FileKind::Socket {
            sockets.insert(e.path);
        }
    }
    let image_layout = UsrLayout::of_report(scanned)?;
    let cmp = compare(ReportReader::open(report)?, ReportReader::open(scanned)?)?;
    let _ = std::fs::remove_file(scanned);
    let explained = log.explained();
    let mut out = Verification {
        entries,
        layout: layout.finish(&packages),
        image_layout,
        ..Default::default()
    };
    let text = |p: &[u8]| match to_text(p) {
        TextPath::Utf8(s) => s.to_string(),
        TextPath::Base64(_) => String::from_utf8_lossy(p).into_owned(),
    };
    for f in cmp.files {
        if explained.contains_key(f.path.as_slice()) {
            out.explained += 1;
            continue;
        }
        if f.status == "removed" && sockets.contains(&f.path) {
            out.absent_sockets.push(text(&f.path));
            continue;
        }
        out.unexplained.push(Difference {
            path: text(&f.path),
            status: f.status.into(),
            what: f.what.into_iter().map(String::from).collect(),
        });
    }
    let tuned: Vec<&str> = log
        .steps
        .iter()
        .flat_map(|s| s.packages.iter())
        .map(|p| p.split('=').next().unwrap_or(p))
        .collect();
    for p in cmp.packages {
        let base = p.name.split(':').next().unwrap_or(&p.name);
        if tuned.contains(&base) {
            out.explained_packages += 1;
        } else {
            out.unexplained_packages.push(p);
        }
    }
    Ok(out)
}

/// The disk image inside `image`: itself, or the VMDK of an OVA (extracted into `work`).
fn disk_of(image: &Path, head: &[u8], work: &Path) -> Result<PathBuf> {
    let is_tar = head.len() >= 262 && &head[257..262] == b"ustar";
    if !is_tar {
        return Ok(image.to_path_buf());
    }
    let list =
        String::from_utf8_lossy(&cmd::run(Command::new("tar").arg("-tf").arg(image))?).into_owned();
    let Some(vmdk) = list.lines().find(|l| l.ends_with(".vmdk")) else {
        return Err(Error::Invalid(format!(
            "{} is a tar archive but neither an OVA nor a tar.gz root; verify OCI and docker \
             images by unpacking them (umoci unpack) and scanning the root",
            image.display()
        )));
    };
    cmd::run(
        Command::new("tar")
            .arg("-xf")
            .arg(image)
            .arg("-C")
            .arg(work)
            .arg(vmdk),
    )?;
    Ok(work.join(vmdk))
}

fn qemu_format(image: &Path) -> Result<String> {
    let out = cmd::run(
        Command::new("qemu-img")
            .args(["info", "--output=json"])
            .arg(image),
    )?;
    let v: serde_json::Value = serde_json::from_slice(&out)
        .map_err(|e| Error::Invalid(format!("qemu-img info {}: {e}", image.display())))?;
    Ok(v["format"].as_str().unwrap_or("raw").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;
    use crate::scan::{scan_to_report, ScanOptions};

    #[test]
    fn the_tuning_log_is_read_inside_the_image() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("var/lib/uforge")).unwrap();
        let host = tmp.path().join("host-log.json");
        std::fs::write(&host, b"{\"steps\": []}").unwrap();
        let log = root.join(&TuningLog::IN_IMAGE[1..]);
        std::os::unix::fs::symlink(&host, &log).unwrap();
        assert_eq!(tuning_log_of(&root), None, "read the host's file");
        std::fs::remove_file(&log).unwrap();
        std::fs::write(&log, b"{}").unwrap();
        assert_eq!(tuning_log_of(&root).as_deref(), Some(&b"{}"[..]));
    }

    /// A socket of the source is absent from any image; verify says why instead of counting
    /// it, and still counts what else differs.
    #[test]
    fn absent_sockets_are_explained() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("srv/app")).unwrap();
        std::fs::write(src.join("etc.conf"), b"listen = /srv/app/app.sock\n").unwrap();
        let _listener =
            std::os::unix::net::UnixListener::bind(src.join("srv/app/app.sock")).unwrap();
        let report = tmp.path().join("src.ufr");
        scan_to_report(&ScanOptions::new(&src), &NoProgress)
            .unwrap()
            .save(&report)
            .unwrap();
        // The image as an archive makes it: everything but the socket.
        let img = tmp.path().join("img");
        let copy = Command::new("cp")
            .arg("-a")
            .arg(&src)
            .arg(&img)
            .status()
            .unwrap();
        assert!(copy.success());
        std::fs::remove_file(img.join("srv/app/app.sock")).unwrap();

        let v = verify(&img, &report, None, &tmp.path().join("work")).unwrap();
        assert!(v.is_faithful(), "{:?}", v.unexplained);
        assert_eq!(v.absent_sockets, ["/srv/app/app.sock"]);

        std::fs::write(img.join("etc.conf"), b"listen = elsewhere\n").unwrap();
        let v = verify(&img, &report, None, &tmp.path().join("work")).unwrap();
        let paths: Vec<&str> = v.unexplained.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["/etc.conf"]);
        assert_eq!(v.absent_sockets, ["/srv/app/app.sock"]);
    }
}
