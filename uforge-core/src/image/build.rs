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
use crate::model::ReportHeader;
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
    /// Whether what tuning installs may upgrade, downgrade or remove the source's packages
    /// (see [`TuneSpec::allow_upgrades`]).
    pub allow_upgrades: bool,
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
    build_with(
        &mut FromScan { spec },
        &Output {
            format: spec.format,
            target: spec.target,
            network: spec.network,
            work_dir: spec.work_dir,
            output: spec.output,
            extra_outputs: spec.extra_outputs.clone(),
            allow_upgrades: spec.allow_upgrades,
        },
        progress,
    )
}

/// Where an output is written before it is complete.
pub fn partial_path(output: &Path) -> PathBuf {
    let mut s = output.as_os_str().to_os_string();
    s.push(".partial");
    PathBuf::from(s)
}

/// What the tuning and the writers need to know of the machine a build makes.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The machine: facts and package list, as a scan of it would have them.
    pub header: ReportHeader,
    /// Bytes of file content the root will hold, to size the disk.
    pub content: u64,
    /// The repositories the packages come from (flat local ones included), for the tuning's
    /// own installs.
    pub sources: Sources,
    /// Kernel parameters added to the image's command line.
    pub kernel_params: Vec<String>,
    /// The /usr layout the install gives the root.
    pub layout: UsrLayout,
    /// The disk size asked for, in bytes (a template's `installation.disk.size_mib`); `None`:
    /// sized for the content.
    pub disk_size: Option<u64>,
}

/// How a build fills a fresh root: the pluggable step between making the disk and tuning it.
/// A scan's packages made equal to the scanned machine by its overlay (black box, [`build`]),
/// or a template's packages, My Software and install profile (white box,
/// [`crate::template::generate`]).
pub trait Populate {
    /// Checks what the root will be made from, before anything is written (phase `check`).
    fn check(&mut self, progress: &dyn Progress) -> Result<Prepared>;
    /// Fills `root` (empty, or a new filesystem) using `work` as scratch space (phases
    /// `install` and `reconcile`).
    fn populate(
        &mut self,
        prepared: &Prepared,
        root: &Path,
        work: &Path,
        progress: &dyn Progress,
    ) -> Result<ReconcileStats>;
}

/// Where and how a build writes its image, whatever fills its root.
#[derive(Debug, Clone)]
pub struct Output<'a> {
    /// Output format.
    pub format: Format,
    /// Target platform (None: the format's default).
    pub target: Option<Target>,
    /// Network policy.
    pub network: NetworkPolicy,
    /// Scratch directory for the build (needs room for the whole image); created if missing.
    pub work_dir: &'a Path,
    /// The image file, written as `OUTPUT.partial` and renamed when complete.
    pub output: &'a Path,
    /// More images of the same kind (disk or tree) written from the same build.
    pub extra_outputs: Vec<(Format, PathBuf)>,
    /// Whether tuning may upgrade, downgrade or remove the machine's packages
    /// (see [`TuneSpec::allow_upgrades`]).
    pub allow_upgrades: bool,
}

/// The overlay of a scan on its installed packages: the black-box [`Populate`].
struct FromScan<'a> {
    spec: &'a BuildSpec<'a>,
}

impl Populate for FromScan<'_> {
    fn check(&mut self, progress: &dyn Progress) -> Result<Prepared> {
        let spec = self.spec;
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
        header.machine.os.version_codename.as_ref().ok_or_else(|| {
            Error::Invalid("the scan does not name its release (VERSION_CODENAME)".into())
        })?;
        // Before any download: a layout the install cannot give the new root fails the build now.
        layout.check()?;
        // Only the repositories of the scan's release: installing another release's packages
        // would half upgrade the machine.
        let (release_sources, repos) = spec.sources.for_release(&header, progress)?;
        install::check_available(&header.packages, &repos)?;
        Ok(Prepared {
            header,
            content,
            sources: release_sources,
            kernel_params: Vec::new(),
            layout,
            disk_size: None,
        })
    }

    fn populate(
        &mut self,
        prepared: &Prepared,
        root: &Path,
        work: &Path,
        progress: &dyn Progress,
    ) -> Result<ReconcileStats> {
        let suite = prepared
            .header
            .machine
            .os
            .version_codename
            .clone()
            .unwrap_or_default();
        install::install(
            &InstallSpec {
                packages: &prepared.header.packages,
                suite: &suite,
                sources: &prepared.sources,
                root,
                layout: &prepared.layout,
            },
            progress,
        )?;
        let stats = reconcile::reconcile(root, self.spec.report, self.spec.blobs, work, progress)?;
        let lost: Vec<String> = stats
            .unrestorable
            .iter()
            .filter(|(_, why)| !why.starts_with("sockets"))
            .map(|(p, why)| format!("{p}: {why}"))
            .collect();
        if !lost.is_empty() {
            return Err(unrestorable(&lost));
        }
        Ok(stats)
    }
}

/// The error of entries that could not be made as asked, the first ten named.
pub(crate) fn unrestorable(lost: &[String]) -> Error {
    let shown: Vec<&str> = lost.iter().take(10).map(String::as_str).collect();
    Error::Invalid(format!(
        "{} entries cannot be rebuilt: {}{}",
        lost.len(),
        shown.join("; "),
        if lost.len() > shown.len() {
            "; …"
        } else {
            ""
        }
    ))
}

/// Builds an image whose root `populate` fills, written as `out` says: the steps every build
/// shares (disk, tuning, writers). On error nothing is left at the outputs (nor at their
/// `.partial` names) and the work directory's mounts and loop devices are released.
pub fn build_with(
    populate: &mut dyn Populate,
    out: &Output<'_>,
    progress: &dyn Progress,
) -> Result<BuildResult> {
    let target = out.target.unwrap_or(out.format.default_target());
    if out.format.is_disk() && target.is_container() {
        return Err(Error::Invalid(format!(
            "the container target needs a container format (oci, docker-archive, tar.gz), not {}",
            out.format
        )));
    }
    for (f, _) in &out.extra_outputs {
        if f.is_disk() != out.format.is_disk() {
            return Err(Error::Invalid(format!(
                "{} and {f} images need separate builds: one is a disk, the other a tree",
                out.format
            )));
        }
    }
    let partial = partial_path(out.output);
    let res = build_inner(populate, out, target, &partial, progress);
    if res.is_err() {
        let _ = std::fs::remove_file(&partial);
        for (_, o) in &out.extra_outputs {
            let _ = std::fs::remove_file(partial_path(o));
            let _ = std::fs::remove_file(o);
        }
    }
    let _ = std::fs::remove_dir_all(out.work_dir.join("root"));
    let _ = std::fs::remove_file(out.work_dir.join("disk.raw"));
    res
}

fn build_inner(
    populate: &mut dyn Populate,
    spec: &Output<'_>,
    target: Target,
    partial: &Path,
    progress: &dyn Progress,
) -> Result<BuildResult> {
    progress.phase(PHASES[0], None);
    let prepared = populate.check(progress)?;
    progress.finish();
    let header = &prepared.header;
    let content = prepared.content;

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
        let size = match prepared.disk_size {
            Some(asked) => {
                let least = disk::least_size_for(content);
                if asked < least {
                    return Err(Error::Invalid(format!(
                        "installation.disk.size_mib: {} MiB is smaller than the {} MiB the \
                         image's contents need",
                        asked >> 20,
                        least.div_ceil(1 << 20)
                    )));
                }
                asked
            }
            None => disk::size_for(content),
        };
        Some(Disk::create(&raw, size, &root)?)
    } else {
        std::fs::create_dir_all(&root).map_err(|e| Error::io("create", &root, e))?;
        None
    };

    let stats = populate.populate(&prepared, &root, spec.work_dir, progress)?;

    let sources = install::lines(&prepared.sources);
    let log = tune::tune(
        &TuneSpec {
            root: &root,
            header,
            format: spec.format,
            target,
            network: spec.network,
            sources: &sources,
            keyring: prepared.sources.keyring.as_deref(),
            work: spec.work_dir,
            kernel_params: &prepared.kernel_params,
            allow_upgrades: spec.allow_upgrades,
        },
        disk.as_mut(),
        progress,
    )?;

    if let Some(d) = disk.take() {
        d.close()?;
    }
    // The writers are external tools and archive code alike: the write is followed by the
    // bytes the image file holds on disk, against the data it is written from.
    let source_bytes = if spec.format.is_disk() {
        allocated(&raw)
    } else {
        content
    };
    progress.phase(PHASES[4], Some(source_bytes));
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
        follow_growth(&p, progress, || f.writer().write(&staged, &p))?;
        let (size, sha) = hash_file(&p)?;
        std::fs::rename(&p, out).map_err(|e| Error::io("rename", &p, e))?;
        extra.push((*f, out.clone(), size, sha));
    }
    let _ = std::fs::remove_file(partial);
    follow_growth(partial, progress, || {
        spec.format.writer().write(&staged, partial)
    })?;
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
        layout: prepared.layout.clone(),
    })
}

/// Bytes a file holds on disk (a sparse raw disk's data, not its length); 0 if it is gone.
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or(0, |m| m.blocks() * 512)
}

/// Runs `write` while a thread reports, every half second, how much `path` has grown on disk.
fn follow_growth<T>(path: &Path, progress: &dyn Progress, write: impl FnOnce() -> T) -> T {
    let done = std::sync::Mutex::new(false);
    let wake = std::sync::Condvar::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut seen = 0u64;
            let mut ended = done.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                let now = allocated(path);
                if now > seen {
                    progress.advance(0, now - seen);
                    seen = now;
                }
                if *ended {
                    return;
                }
                ended = wake
                    .wait_timeout(ended, std::time::Duration::from_millis(500))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        });
        // Set however `write` ends, a panic included: the scope waits for the thread.
        let _stop = Stop(&done, &wake);
        write()
    })
}

/// Tells a [`follow_growth`] thread to stop when dropped.
struct Stop<'a>(&'a std::sync::Mutex<bool>, &'a std::sync::Condvar);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.1.notify_all();
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct Bytes {
        total: AtomicU64,
        calls: AtomicU64,
    }

    impl Progress for Bytes {
        fn advance(&self, _files: u64, bytes: u64) {
            self.total.fetch_add(bytes, Ordering::Relaxed);
            self.calls.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_write_is_followed_as_its_file_grows() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let path = dir.path().join("image.partial");
        let seen = Bytes::default();
        let n = follow_growth(&path, &seen, || {
            let mut f = std::fs::File::create(&path).unwrap();
            for i in 0..4u8 {
                f.write_all(&vec![i + 1; 1 << 20]).unwrap();
                f.sync_all().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(600));
            }
            4
        });
        assert_eq!(n, 4);
        assert_eq!(seen.total.load(Ordering::Relaxed), allocated(&path));
        assert!(allocated(&path) >= 4 << 20);
        let calls = seen.calls.load(Ordering::Relaxed);
        assert!(calls >= 3, "{calls} reports for a write of about 2.4 s");
    }
}
