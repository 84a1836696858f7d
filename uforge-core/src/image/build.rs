//! The whole build: check, install, reconcile, tune, write.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::disk::{self, Disk};
use super::install::{self, InstallSpec};
use super::reconcile::{self, ReconcileStats};
use super::tune::{self, TuneSpec};
use super::{Format, NetworkPolicy, Staged, Target, TuningLog};
use crate::blobstore::BlobStore;
use crate::facts::UsrLayout;
use crate::model::FileKind;
use crate::progress::Progress;
use crate::repo::Sources;
use crate::report::ReportReader;
use crate::{Error, Result};

/// What to build.
pub struct BuildSpec<'a> {
    /// The scan's report file (native or JSON).
    pub report: &'a Path,
    /// Contents of the overlay's files, by SHA-256.
    pub blobs: &'a dyn BlobStore,
    /// The package repositories (with the flat ones of recreated packages), their keyring and
    /// cache.
    pub sources: &'a Sources,
    /// Output format.
    pub format: Format,
    /// Target platform (None: the format's default).
    pub target: Option<Target>,
    /// Network policy.
    pub network: NetworkPolicy,
    /// Scratch directory for the build (needs room for the whole image); created if missing.
    pub work_dir: &'a Path,
    /// The image file to write. It is written as `OUTPUT.partial` and renamed when complete,
    /// so a failed build never leaves a file that looks finished.
    pub output: &'a Path,
    /// More images written from the same build, in other formats of the same kind (disk or
    /// tree) as `format`: one install for an image per cloud.
    pub extra_outputs: Vec<(Format, PathBuf)>,
}

/// What a build produced.
#[derive(Debug, Clone, Serialize)]
pub struct BuildResult {
    /// The image file.
    pub output: PathBuf,
    /// Format written.
    pub format: Format,
    /// Target tuned for.
    pub target: Target,
    /// Size of the image file in bytes.
    pub size: u64,
    /// SHA-256 of the image file, hex.
    pub sha256: String,
    /// Every change made to the scanned machine's files.
    pub tuning_log: TuningLog,
    /// How the installed root was made equal to the scanned machine.
    pub reconcile: ReconcileStats,
    /// The images of [`BuildSpec::extra_outputs`]: format, file, size and SHA-256.
    pub extra: Vec<(Format, PathBuf, u64, String)>,
    /// The source's /usr layout, which the image reproduces.
    pub layout: UsrLayout,
}

/// The phases a build reports, in order. The tuning reports sub-phases (`tune: bootloader`),
/// which count as their phase (see [`phase_step`]).
pub const PHASES: [&str; 5] = ["check", "install", "reconcile", "tune", "write"];

/// The position (1 to [`PHASES`]`.len()`) of a phase a build reported.
pub fn phase_step(phase: &str) -> Option<usize> {
    let main = phase.split(':').next().unwrap_or(phase);
    PHASES.iter().position(|p| *p == main).map(|n| n + 1)
}

/// Builds an image from a scan; see the [module](super) documentation for the steps. Progress
/// phases are the [`PHASES`].
///
/// On error nothing is left at `spec.output` (nor at its `.partial` name) and the work
/// directory's mounts and loop devices are released.
pub fn build(spec: &BuildSpec<'_>, progress: &dyn Progress) -> Result<BuildResult> {
    let target = spec.target.unwrap_or(spec.format.default_target());
    if spec.format.is_disk() && target.is_container() {
        return Err(Error::Invalid(format!(
            "the container target needs a container format (oci, docker-archive, tar.gz), not {}",
            spec.format
        )));
    }
    for (f, _) in &spec.extra_outputs {
        if f.is_disk() != spec.format.is_disk() {
            return Err(Error::Invalid(format!(
                "{} and {f} images need separate builds: one is a disk, the other a tree",
                spec.format
            )));
        }
    }
    let partial = partial_path(spec.output);
    let res = build_inner(spec, target, &partial, progress);
    if res.is_err() {
        let _ = std::fs::remove_file(&partial);
        for (_, out) in &spec.extra_outputs {
            let _ = std::fs::remove_file(partial_path(out));
            let _ = std::fs::remove_file(out);
        }
    }
    let _ = std::fs::remove_dir_all(spec.work_dir.join("root"));
    let _ = std::fs::remove_file(spec.work_dir.join("disk.raw"));
    res
}

/// Where an output is written before it is complete.
pub fn partial_path(output: &Path) -> PathBuf {
    let mut s = output.as_os_str().to_os_string();
    s.push(".partial");
    PathBuf::from(s)
}

fn build_inner(
    spec: &BuildSpec<'_>,
    target: Target,
    partial: &Path,
    progress: &dyn Progress,
) -> Result<BuildResult> {
    let mut reader = ReportReader::open(spec.report)?;
    let header = reader.header().clone();
    let mut content = 0u64;
    let mut layout = UsrLayout::default();
    while let Some(e) = reader.next_file()? {
        if e.kind == FileKind::File {
            content += e.size;
        }
        layout.observe(&e);
    }
    drop(reader);
    let layout = layout.finish(&header.packages);
    let suite = header.machine.os.version_codename.clone().ok_or_else(|| {
        Error::Invalid("the scan does not name its release (VERSION_CODENAME)".into())
    })?;

    progress.phase(PHASES[0], None);
    // Before any download: a layout the install cannot give the new root fails the build now.
    layout.check()?;
    // Only the repositories of the scan's release: installing another release's packages
    // would half upgrade the machine.
    let (release_sources, repos) = spec.sources.for_release(&header, progress)?;
    install::check_available(&header.packages, &repos)?;
    drop(repos);
    progress.finish();

    std::fs::create_dir_all(spec.work_dir).map_err(|e| Error::io("create", spec.work_dir, e))?;
    // The files, what tuning adds (kernel, bootloader, agents) and, for trees, the archive.
    let need = if spec.format.is_disk() {
        content + content / 4 + (1 << 30)
    } else {
        2 * content + (512 << 20)
    };
    check_space(spec.work_dir, need)?;
    let root = spec.work_dir.join("root");
    if root.exists() {
        let _ = super::chroot::unmount(&root);
        std::fs::remove_dir_all(&root).map_err(|e| Error::io("remove", &root, e))?;
    }
    let raw = spec.work_dir.join("disk.raw");
    let mut disk = if spec.format.is_disk() {
        Some(Disk::create(&raw, disk::size_for(content), &root)?)
    } else {
        std::fs::create_dir_all(&root).map_err(|e| Error::io("create", &root, e))?;
        None
    };

    install::install(
        &InstallSpec {
            packages: &header.packages,
            suite: &suite,
            sources: &release_sources,
            root: &root,
            layout: &layout,
        },
        progress,
    )?;

    let stats = reconcile::reconcile(&root, spec.report, spec.blobs, spec.work_dir, progress)?;
    let lost: Vec<String> = stats
        .unrestorable
        .iter()
        .filter(|(_, why)| !why.starts_with("sockets"))
        .map(|(p, why)| format!("{p}: {why}"))
        .collect();
    if !lost.is_empty() {
        let shown: Vec<&str> = lost.iter().take(10).map(String::as_str).collect();
        return Err(Error::Invalid(format!(
            "{} scanned entries cannot be rebuilt: {}{}",
            lost.len(),
            shown.join("; "),
            if lost.len() > shown.len() {
                "; …"
            } else {
                ""
            }
        )));
    }

    let sources = install::lines(&release_sources);
    let log = tune::tune(
        &TuneSpec {
            root: &root,
            header: &header,
            format: spec.format,
            target,
            network: spec.network,
            sources: &sources,
            keyring: spec.sources.keyring.as_deref(),
            work: spec.work_dir,
        },
        disk.as_mut(),
        progress,
    )?;

    progress.phase(PHASES[4], None);
    if let Some(d) = disk.take() {
        d.close()?;
    }
    let name = header
        .machine
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "uforge-image".into());
    let staged = Staged {
        root: &root,
        disk: spec.format.is_disk().then_some(raw.as_path()),
        name: &name,
        machine: &header.machine,
        target,
    };
    let mut extra = Vec::new();
    for (f, out) in &spec.extra_outputs {
        let p = partial_path(out);
        let _ = std::fs::remove_file(&p);
        f.writer().write(&staged, &p)?;
        let (size, sha) = hash_file(&p)?;
        std::fs::rename(&p, out).map_err(|e| Error::io("rename", &p, e))?;
        extra.push((*f, out.clone(), size, sha));
    }
    let _ = std::fs::remove_file(partial);
    spec.format.writer().write(&staged, partial)?;
    let (size, sha256) = hash_file(partial)?;
    std::fs::rename(partial, spec.output).map_err(|e| Error::io("rename", partial, e))?;
    progress.finish();
    Ok(BuildResult {
        output: spec.output.to_path_buf(),
        format: spec.format,
        target,
        size,
        sha256,
        tuning_log: log,
        reconcile: stats,
        extra,
        layout,
    })
}

/// Fails when the filesystem of `dir` has less than `need` bytes free, before a long build
/// runs into a full disk half way.
pub fn check_space(dir: &Path, need: u64) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("{}: path holds a NUL byte", dir.display())))?;
    // SAFETY: statvfs fills the zeroed struct; c is a valid NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(Error::io("statvfs", dir, std::io::Error::last_os_error()));
    }
    let free = st.f_bavail as u64 * st.f_frsize as u64;
    if free < need {
        return Err(Error::Invalid(format!(
            "not enough free space in {}: the build needs about {} MiB, {} MiB are free",
            dir.display(),
            need >> 20,
            free >> 20
        )));
    }
    Ok(())
}

/// Size and SHA-256 (hex) of a file.
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, crate::blobstore::to_hex(&h.finalize().into())))
}
