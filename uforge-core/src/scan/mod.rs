//! Scanning a root: machine facts, packages, and every file with its metadata and digest.
//!
//! The walk runs on one thread and lists directories in sorted order; a pool of workers stats,
//! reads xattrs and hashes files on every core; the caller's thread puts results back in walk
//! order and streams them to a [`ReportSink`]. A window of permits bounds how far the walk may
//! run ahead of the writer, so memory stays flat however many files the root holds.

mod excludes;
mod inspect;
mod walk;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub use excludes::{Excludes, DEFAULT_CONTENTS_EXCLUDES};
pub(crate) use inspect::read_xattrs;

use crate::facts::{self, users::IdNames, FactsInput};
use crate::model::{
    Exclude, FileKind, RawPath, Report, ReportHeader, ReportTrailer, ScanError, ScanInfo, ScanStats,
};
use crate::pkgdb::{self, PackageDb};
use crate::progress::Progress;
use crate::report::ReportSink;
use crate::{rawpath, Error, Result};

/// How many entries may be in flight between the walk and the writer.
const WINDOW: usize = 8192;

/// What to scan and how. With the `clap` feature these are also the scan flags of every
/// command that scans (`uforge-scan scan`, `uforge-scan run`).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ScanOptions {
    /// Root directory to scan: `/` for this machine, or a mounted disk or chroot.
    #[cfg_attr(feature = "clap", arg(long, default_value = "/", value_name = "DIR"))]
    pub root: PathBuf,
    /// Leave out a file or directory (a path inside the root). Repeat for several.
    #[cfg_attr(
        feature = "clap",
        arg(short = 'e', long = "exclude", value_name = "PATH", value_parser = crate::rawpath::RawPathParser)
    )]
    pub excludes: Vec<RawPath>,
    /// Whether to apply [`DEFAULT_CONTENTS_EXCLUDES`] and, on a live system, skip pseudo and
    /// network filesystems.
    #[cfg_attr(
        feature = "clap",
        arg(
            long = "no-default-excludes",
            action = clap::ArgAction::SetFalse,
            help = "Scan /proc, /sys, /dev, /run, /tmp and the other default exclusions too"
        )
    )]
    pub default_excludes: bool,
    /// Threads that read and checksum files; 0, the default, is one per core.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", default_value_t = 0))]
    pub threads: usize,
    /// A file the caller writes during the scan (the report itself): left out if it lies in
    /// the root, so the scan does not record its own output.
    #[cfg_attr(feature = "clap", arg(skip))]
    pub output: Option<PathBuf>,
    /// Name and version of the program, recorded in the report.
    #[cfg_attr(feature = "clap", arg(skip = format!("uforge-core {}", env!("CARGO_PKG_VERSION"))))]
    pub tool: String,
}

impl ScanOptions {
    /// Options to scan `root` with the default excludes and all cores.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ScanOptions {
            root: root.into(),
            excludes: Vec::new(),
            default_excludes: true,
            threads: 0,
            output: None,
            tool: format!("uforge-core {}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Adds a path to leave out (in-root form; a leading `/` is optional).
    pub fn exclude(mut self, path: impl AsRef<[u8]>) -> Self {
        self.excludes.push(path.as_ref().to_vec());
        self
    }
}

/// Scans into memory. Convenient for small roots; use [`scan`] with a streaming sink for whole
/// machines.
pub fn scan_to_report(opts: &ScanOptions, progress: &dyn Progress) -> Result<Report> {
    let mut report = Report::default();
    scan(opts, &mut report, progress)?;
    Ok(report)
}

/// Scans `opts.root` and streams the report into `sink`. Problems with single paths become
/// error entries in the report; only a failure to read the root itself or to write the sink
/// fails the scan.
pub fn scan(
    opts: &ScanOptions,
    sink: &mut dyn ReportSink,
    progress: &dyn Progress,
) -> Result<ScanStats> {
    let started = Instant::now();
    let root = opts
        .root
        .canonicalize()
        .map_err(|e| Error::io("open root", &opts.root, e))?;
    if !root.is_dir() {
        return Err(Error::Invalid(format!(
            "scan root {} is not a directory",
            root.display()
        )));
    }
    let live = root == Path::new("/");
    let mut errors: Vec<ScanError> = Vec::new();

    progress.phase("packages", None);
    let db: Option<Box<dyn PackageDb + Send + Sync>> = match pkgdb::open(&root) {
        Ok(db) => db,
        Err(e) => {
            errors.push(ScanError {
                path: b"/var/lib/dpkg".to_vec(),
                op: "pkgdb".into(),
                message: e.to_string(),
            });
            None
        }
    };
    let owner_of = |p: &[u8]| db.as_ref().and_then(|d| d.owner(p)).map(str::to_string);

    progress.phase("facts", None);
    let (machine, fact_errors) = facts::gather(&FactsInput {
        root: &root,
        live,
        package_arch: db.as_ref().and_then(|d| d.native_arch()),
        owner_of: &owner_of,
    });
    errors.extend(fact_errors);

    let excludes = build_excludes(opts, &root, live, &machine.mounts)?;
    let header = ReportHeader {
        scan: ScanInfo {
            root: opts.root.as_os_str().as_bytes().to_vec(),
            live,
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            tool: opts.tool.clone(),
            excludes: excludes.list().to_vec(),
        },
        packages: db
            .as_ref()
            .map(|d| d.packages().to_vec())
            .unwrap_or_default(),
        machine,
    };
    sink.header(&header)?;

    progress.phase("files", None);
    let names = IdNames::load(&root);
    let mut writer = Writer {
        sink,
        names: &names,
        db: db.as_deref().map(|d| d as &dyn PackageDb),
        hardlinks: HashMap::new(),
        stats: ScanStats::default(),
        errors,
        progress,
    };
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        opts.threads
    };
    run_pipeline(&root, &excludes, threads, &mut writer)?;
    progress.finish();

    let mut stats = writer.stats;
    stats.errors = writer.errors.len() as u64;
    stats.duration_ms = started.elapsed().as_millis() as u64;
    let trailer = ReportTrailer {
        errors: writer.errors,
        stats: stats.clone(),
    };
    sink.trailer(&trailer)?;
    Ok(stats)
}

fn build_excludes(
    opts: &ScanOptions,
    root: &Path,
    live: bool,
    mounts: &[crate::model::Mount],
) -> Result<Excludes> {
    let mut ex = Excludes::default();
    if opts.default_excludes {
        for (p, why) in DEFAULT_CONTENTS_EXCLUDES {
            ex.add(p.as_bytes().to_vec(), true, why);
        }
        if live {
            for (p, why) in facts::mounts::live_excludes(mounts) {
                ex.add(p, true, why);
            }
        }
    }
    for p in &opts.excludes {
        let n = rawpath::normalize(p).ok_or_else(|| {
            Error::Invalid(format!(
                "exclude {:?} must not contain '..'",
                rawpath::display(p)
            ))
        })?;
        ex.add(n, false, "excluded by the user");
    }
    if let Some(out) = &opts.output {
        // The report may not exist yet: resolve its directory, which must.
        let dir = out.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.map_or_else(std::env::current_dir, Path::canonicalize);
        if let (Ok(dir), Some(name)) = (dir, out.file_name()) {
            if let Ok(rel) = dir.join(name).strip_prefix(root) {
                let mut p = b"/".to_vec();
                p.extend_from_slice(rel.as_os_str().as_bytes());
                ex.add(p, false, "the report being written");
            }
        }
    }
    Ok(ex)
}

/// A unit of work for the pool.
enum Job {
    /// Stat, hash and read the xattrs of this in-root path.
    Inspect(RawPath),
    /// The walk already failed on this path (an unreadable directory): pass the error on.
    Failed(ScanError),
}

/// Puts results back in order and writes them.
struct Writer<'a> {
    sink: &'a mut dyn ReportSink,
    names: &'a IdNames,
    db: Option<&'a dyn PackageDb>,
    hardlinks: HashMap<inspect::InodeKey, RawPath>,
    stats: ScanStats,
    errors: Vec<ScanError>,
    progress: &'a dyn Progress,
}

impl Writer<'_> {
    fn write(&mut self, done: inspect::Inspected) -> Result<()> {
        self.errors.extend(done.errors);
        let Some(mut e) = done.entry else {
            return Ok(());
        };
        if let Some(key) = done.inode {
            match self.hardlinks.get(&key) {
                Some(first) => {
                    e.kind = FileKind::Hardlink;
                    e.target = Some(first.clone());
                }
                None => {
                    self.hardlinks.insert(key, e.path.clone());
                }
            }
        }
        e.user = self.names.user(e.uid).map(str::to_string);
        e.group = self.names.group(e.gid).map(str::to_string);
        e.package = self.db.and_then(|d| d.owner(&e.path)).map(str::to_string);
        let s = &mut self.stats;
        s.entries += 1;
        let mut bytes = 0;
        match e.kind {
            FileKind::File => {
                s.files += 1;
                bytes = e.size;
                s.bytes += bytes;
            }
            FileKind::Dir => s.dirs += 1,
            _ => {}
        }
        if e.package.is_some() {
            s.packaged += 1;
        }
        self.sink.file(&e)?;
        self.progress.advance(1, bytes);
        Ok(())
    }
}

fn run_pipeline(
    root: &Path,
    excludes: &Excludes,
    threads: usize,
    writer: &mut Writer<'_>,
) -> Result<()> {
    let (job_tx, job_rx) = crossbeam_channel::bounded::<(u64, Job)>(WINDOW);
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<(u64, inspect::Inspected)>();
    let (permit_tx, permit_rx) = crossbeam_channel::bounded::<()>(WINDOW);
    for _ in 0..WINDOW {
        permit_tx.send(()).expect("fresh channel has room");
    }
    let stop = AtomicBool::new(false);

    std::thread::scope(|s| {
        let stop = &stop;
        s.spawn(move || {
            let mut seq = 0u64;
            walk::walk(root, excludes, stop, |job| {
                seq += 1;
                permit_rx.recv().is_ok() && job_tx.send((seq - 1, job)).is_ok()
            });
        });
        for _ in 0..threads {
            let job_rx = job_rx.clone();
            let done_tx = done_tx.clone();
            s.spawn(move || {
                let mut scratch = inspect::Scratch::default();
                for (seq, job) in job_rx {
                    let done = match job {
                        Job::Inspect(path) => {
                            let full = rawpath::join(root, &path);
                            inspect::inspect(&full, &path, &mut scratch)
                        }
                        Job::Failed(error) => inspect::Inspected {
                            entry: None,
                            inode: None,
                            errors: vec![error],
                        },
                    };
                    if done_tx.send((seq, done)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        drop(job_rx);

        let mut permit_tx = Some(permit_tx);
        let mut pending: BTreeMap<u64, inspect::Inspected> = BTreeMap::new();
        let mut next = 0u64;
        let mut result = Ok(());
        for (seq, done) in done_rx.iter() {
            if result.is_err() {
                continue;
            }
            pending.insert(seq, done);
            while let Some(done) = pending.remove(&next) {
                next += 1;
                if let Err(e) = writer.write(done) {
                    stop.store(true, Ordering::Relaxed);
                    result = Err(e);
                    // Dropping the permits unblocks a walk waiting for one, so the pool drains.
                    permit_tx = None;
                    break;
                }
                if let Some(tx) = &permit_tx {
                    let _ = tx.send(());
                }
            }
        }
        result
    })
}

/// The in-root path of an exclusion, for callers that print the table.
pub fn describe(e: &Exclude) -> String {
    format!(
        "{}{} ({})",
        rawpath::display(&e.path),
        if e.contents_only { "/*" } else { "" },
        e.reason
    )
}
