//! The analysis proper: two streaming passes over a report.
//!
//! Pass 1 collects what later decisions need from anywhere in the report: symlinks (to map the
//! paths packages ship onto the paths a merged-/usr root has) and hard-link groups. Between the
//! passes the manifests of the packages the repositories have are fetched. Pass 2 classifies
//! every entry and builds `wanted`; a stack of the current directory's ancestors lets a wanted
//! entry pull in the directories above it without a second lookup structure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Analysis, Change, DeletedFile, ModifiedFile, PreviousScan};
use crate::canon::Canon;
use crate::facts::UsrLayout;
use crate::model::{Exclude, FileEntry, FileKind, RawPath};
use crate::pkgdb::package_keys;
use crate::progress::Progress;
use crate::rawpath::is_within;
use crate::repo::{DebFile, DebManifest, PackageKey, RepoIndex, Sources};
use crate::report::ReportReader;
use crate::{Error, Result};

/// Where an installed package can come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A repository has it (index into the repository list).
    Repo(usize),
    /// Only an earlier scan of the machine holds it.
    Previous,
    /// Nobody has it: it must be recreated from the overlay.
    Missing,
    /// Known to the package manager but not installed (configuration files left behind).
    NotInstalled,
}

/// How pass 2 sees one entry.
enum Class {
    /// A package file identical to what its package ships.
    Pristine,
    /// Owned by no package.
    Unknown,
    /// Owned by a package nobody has.
    OfMissing,
    /// A package file that differs from its package.
    Modified(Change),
}

struct Ancestor {
    path: RawPath,
    index: u64,
    /// Already handled: wanted, or found held by an earlier scan.
    marked: bool,
    held: bool,
}

/// Analyses the report file `report` (native or JSON) against the repositories of `sources`
/// and the earlier reports `previous` of the same machine: what every frontend does with a
/// report it is given.
pub fn analyze_report(
    report: &Path,
    sources: &Sources,
    previous: &[PathBuf],
    progress: &dyn Progress,
) -> Result<Analysis> {
    let header = ReportReader::open(report)?.header().clone();
    let (chosen, repos) = sources.for_release(&header, progress)?;
    let refs: Vec<&dyn RepoIndex> = repos.iter().map(|r| r.as_ref()).collect();
    let previous = previous
        .iter()
        .map(|p| PreviousScan::load(ReportReader::open(p)?))
        .collect::<Result<Vec<_>>>()?;
    let mut a = analyze(&|| ReportReader::open(report), &refs, &previous, progress)?;
    // The local repositories come after the lines' ones.
    let (public, local) = refs.split_at(chosen.lines.len().min(refs.len()));
    a.stats.from_local = header
        .packages
        .iter()
        .filter(|p| installed(&p.status))
        .map(PackageKey::of)
        .filter(|k| !public.iter().any(|r| r.has(k)) && local.iter().any(|r| r.has(k)))
        .count() as u64;
    Ok(a)
}

/// Analyses the report that `open` yields (it is read twice, so `open` must give a fresh reader
/// each time) against `repos` and the earlier scans of the same machine.
pub fn analyze(
    open: &dyn Fn() -> Result<ReportReader>,
    repos: &[&dyn RepoIndex],
    previous: &[PreviousScan],
    progress: &dyn Progress,
) -> Result<Analysis> {
    let mut reader = open()?;
    let header = reader.header().clone();
    let mut out = Analysis::default();

    progress.phase("packages", None);
    let keys = package_keys(&header.packages);
    let key_index: HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let pkeys: Vec<PackageKey> = header.packages.iter().map(PackageKey::of).collect();
    let sources: Vec<Source> = header
        .packages
        .iter()
        .zip(&pkeys)
        .map(|(p, k)| {
            if !installed(&p.status) {
                Source::NotInstalled
            } else if let Some(r) = repos.iter().position(|r| r.has(k)) {
                Source::Repo(r)
            } else if previous.iter().any(|s| s.has_package(k)) {
                Source::Previous
            } else {
                Source::Missing
            }
        })
        .collect();
    for (k, s) in pkeys.iter().zip(&sources) {
        match s {
            Source::Repo(_) => out.stats.from_repositories += 1,
            Source::Previous => out.stats.from_previous += 1,
            Source::Missing => out.missing_packages.push(k.clone()),
            Source::NotInstalled => continue,
        }
        out.stats.packages += 1;
    }

    progress.phase("links", None);
    let mut symlinks: HashMap<RawPath, RawPath> = HashMap::new();
    let mut later_links: HashMap<RawPath, Vec<(RawPath, Option<String>)>> = HashMap::new();
    let mut layout = UsrLayout::default();
    while let Some(e) = reader.next_file()? {
        layout.observe(&e);
        match e.kind {
            FileKind::Symlink => {
                symlinks.insert(e.path, e.target.unwrap_or_default());
            }
            FileKind::Hardlink => {
                let first = e.target.unwrap_or_default();
                later_links
                    .entry(first)
                    .or_default()
                    .push((e.path, e.package));
            }
            _ => {}
        }
    }

    out.usr_layout = layout.finish(&header.packages);

    progress.phase("manifests", None);
    let manifests = fetch_manifests(repos, &pkeys, &sources)?;
    let mut canon = Canon::new(|p: &[u8]| symlinks.get(p).cloned());
    // Paths each package ships, resolved onto the scanned root's layout.
    let mut shipped: Vec<Vec<RawPath>> = vec![Vec::new(); pkeys.len()];
    let mut expected: HashMap<RawPath, Vec<(u32, u32)>> = HashMap::new();
    for (i, m) in manifests.iter().enumerate() {
        let Some(m) = m else { continue };
        shipped[i] = m.files.iter().map(|f| canon.path(&f.path)).collect();
        for (j, p) in shipped[i].iter().enumerate() {
            expected
                .entry(p.clone())
                .or_default()
                .push((i as u32, j as u32));
        }
    }
    let mut seen: Vec<Vec<bool>> = shipped.iter().map(|s| vec![false; s.len()]).collect();

    progress.phase("analyze", None);
    let ctx = Ctx {
        key_index: &key_index,
        sources: &sources,
        manifests: &manifests,
        expected: &expected,
        previous,
    };
    let mut reader = open()?;
    let mut wanted: Vec<(u64, RawPath)> = Vec::new();
    let mut stack: Vec<Ancestor> = Vec::new();
    let mut index = 0u64;
    while let Some(e) = reader.next_file()? {
        index += 1;
        progress.advance(1, 0);
        while stack
            .last()
            .is_some_and(|a| !(is_within(&e.path, &a.path) && e.path != a.path))
        {
            stack.pop();
        }
        if let Some(hits) = expected.get(&e.path) {
            for &(i, j) in hits {
                seen[i as usize][j as usize] = true;
            }
        }
        let held = previous.iter().any(|p| p.holds(&e));
        if held {
            out.stats.held += 1;
        }
        let mut class = ctx.classify(&e);
        if e.path == b"/" && matches!(class, Class::Unknown) {
            // No package owns the root directory, yet every machine has one.
            class = Class::Pristine;
        }
        // Stock bytes with the mode or owner a maintainer script gave them: the report
        // carries the metadata and the build restores it, the bytes come from the package.
        let metadata_only =
            e.kind == FileKind::File && matches!(class, Class::Modified(Change::Metadata));
        let pkg = || e.package.clone().unwrap_or_default();
        match class {
            Class::Unknown if !held => out.unknown_files.push(e.path.clone()),
            _ if metadata_only => out.metadata_files.push(ModifiedFile {
                path: e.path.clone(),
                package: pkg(),
                change: Change::Metadata,
            }),
            Class::Modified(change) => out.modified_files.push(ModifiedFile {
                path: e.path.clone(),
                package: pkg(),
                change,
            }),
            _ => {}
        }
        let mut want = !held && !metadata_only && !matches!(class, Class::Pristine);
        // A later name of this inode that must be shipped needs this first name in the
        // overlay too: tar carries later names as links to the first.
        if !want {
            if let Some(later) = later_links.get(&e.path) {
                want = later.iter().any(|(path, package)| {
                    let mut l = e.clone();
                    l.path = path.clone();
                    l.package = package.clone();
                    l.kind = FileKind::Hardlink;
                    !previous.iter().any(|p| p.holds(&l))
                        && !matches!(ctx.classify(&l), Class::Pristine)
                });
            }
        }
        if want {
            if e.kind == FileKind::File {
                // Holes of sparse files are not shipped.
                out.stats.wanted_bytes += e.size.min(e.allocated);
            }
            for a in stack.iter_mut().rev() {
                if a.marked {
                    break;
                }
                a.marked = true;
                if !a.held {
                    wanted.push((a.index, a.path.clone()));
                }
            }
            wanted.push((index, e.path.clone()));
        }
        if e.kind == FileKind::Dir {
            stack.push(Ancestor {
                path: e.path,
                index,
                marked: want,
                held,
            });
        }
    }
    out.stats.entries = index;
    wanted.sort_unstable_by_key(|(i, _)| *i);
    wanted.dedup_by_key(|(i, _)| *i);
    out.wanted = wanted.into_iter().map(|(_, p)| p).collect();

    for (i, paths) in shipped.iter().enumerate() {
        for (j, p) in paths.iter().enumerate() {
            if !seen[i][j] && !excluded(p, &header.scan.excludes) {
                out.deleted_files.push(DeletedFile {
                    path: p.clone(),
                    package: keys[i].clone(),
                });
            }
        }
    }
    progress.finish();
    Ok(out)
}

fn installed(status: &str) -> bool {
    !matches!(status, "config-files" | "not-installed")
}

/// Whether the scan left this path out, so its absence says nothing.
fn excluded(path: &[u8], excludes: &[Exclude]) -> bool {
    excludes
        .iter()
        .any(|x| is_within(path, &x.path) && (!x.contents_only || path.len() > x.path.len()))
}

struct Ctx<'a> {
    key_index: &'a HashMap<&'a str, usize>,
    sources: &'a [Source],
    manifests: &'a [Option<Arc<DebManifest>>],
    expected: &'a HashMap<RawPath, Vec<(u32, u32)>>,
    previous: &'a [PreviousScan],
}

impl Ctx<'_> {
    fn classify(&self, e: &FileEntry) -> Class {
        let Some(&i) = e.package.as_deref().and_then(|k| self.key_index.get(k)) else {
            return Class::Unknown;
        };
        match self.sources[i] {
            Source::NotInstalled => Class::Unknown,
            Source::Missing => Class::OfMissing,
            Source::Previous => {
                if self.previous.iter().any(|p| p.holds(e)) {
                    Class::Pristine
                } else {
                    Class::Modified(Change::Content)
                }
            }
            Source::Repo(_) => {
                let m = self.manifests[i].as_ref();
                let shipped = self.expected.get(&e.path).and_then(|hits| {
                    hits.iter()
                        .find(|(p, _)| *p as usize == i)
                        .and_then(|&(_, j)| m.map(|m| &m.files[j as usize]))
                });
                match shipped {
                    None => Class::Modified(Change::Unshipped),
                    Some(f) => match differs(e, f) {
                        Some(c) => Class::Modified(c),
                        None => Class::Pristine,
                    },
                }
            }
        }
    }
}

/// How an installed package file differs from what the package ships. Directories are not
/// compared (merged /usr turns shipped directories into symlinks), and neither are xattrs:
/// maintainer scripts set file capabilities, and rebuilding the package runs them again.
fn differs(e: &FileEntry, f: &DebFile) -> Option<Change> {
    let regular = |k: FileKind| matches!(k, FileKind::File | FileKind::Hardlink);
    match (e.kind, f.kind) {
        (_, FileKind::Dir) => None,
        (a, b) if regular(a) && regular(b) => {
            if e.sha256.is_none() || e.sha256 != f.sha256 {
                Some(Change::Content)
            } else if e.mode != f.mode || e.uid != f.uid || e.gid != f.gid {
                Some(Change::Metadata)
            } else {
                None
            }
        }
        (FileKind::Symlink, FileKind::Symlink) => {
            (e.target.as_deref() != f.target.as_deref()).then_some(Change::Target)
        }
        (a, b) if a == b => {
            (e.mode != f.mode || e.uid != f.uid || e.gid != f.gid).then_some(Change::Metadata)
        }
        _ => Some(Change::Kind),
    }
}

/// Fetches the manifests of every package a repository has, a few at a time: fetching is
/// network-bound, parsing is CPU-bound, so overlapping them pays on any machine.
fn fetch_manifests(
    repos: &[&dyn RepoIndex],
    keys: &[PackageKey],
    sources: &[Source],
) -> Result<Vec<Option<Arc<DebManifest>>>> {
    let jobs: Vec<usize> = (0..keys.len())
        .filter(|&i| matches!(sources[i], Source::Repo(_)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Arc<DebManifest>>>> =
        std::sync::Mutex::new(vec![None; keys.len()]);
    let first_error: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&i) = jobs.get(n) else { break };
                let Source::Repo(r) = sources[i] else {
                    continue;
                };
                match repos[r].manifest(&keys[i]) {
                    Ok(m) => results.lock().expect("not poisoned")[i] = m,
                    Err(e) => {
                        first_error.lock().expect("not poisoned").get_or_insert(e);
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("not poisoned") {
        return Err(e);
    }
    Ok(results.into_inner().expect("not poisoned"))
}
