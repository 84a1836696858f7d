//! Generating an image from a template (white-box migration), through the image build that
//! black-box images use, with the template filling the root:
//!
//! 1. **check**: the dependency check ([`solve::check`]); an unsatisfiable template fails
//!    with the solver's explanation before anything is written. The `.deb`s of the `ospkgs`
//!    are put in a flat repository of the work directory.
//! 2. **install**: the resolved package set, every package at its exact version (pinned ones
//!    as pinned, free ones as resolved, missing dependencies as added), `ospkgs` from the flat
//!    repository.
//! 3. **My Software** (phase `reconcile`): accounts first (so that files are owned by name as
//!    the template says), then each component in order: its `removed` paths, its files with
//!    owner, group, mode, extended attributes and time (through [`crate::fsroot`], links
//!    refused), its install scripts (run confined, as root of the image).
//! 4. the rest of the **install profile** ([`super::apply`]): time zone, keyboard, locale,
//!    host name, network, root login, SSH keys; then the **boot scripts** and the systemd unit
//!    that runs them.
//! 5. the usual tuning for the target (kernel command line with the template's parameters)
//!    and the tuning log, then the writers.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::solve::{self, CheckOptions, PackageUniverse, Resolution};
use super::{apply, Content, SoftwareFile, Template};
use crate::blobstore::{to_hex, BlobStore};
use crate::fsroot::{self, Links, RootDir};
use crate::image::build::{build_with, unrestorable, Output, Populate, Prepared};
use crate::image::install::{self, InstallSpec};
use crate::image::reconcile::{self, ReconcileStats};
use crate::image::BuildResult;
use crate::model::{FileEntry, FileKind, Machine, NetworkInterface, OsInfo, Package, ReportHeader};
use crate::progress::Progress;
use crate::repo::{RepoOptions, Sources};
use crate::{Error, Result};

/// What an image is generated from.
pub struct GenerateSpec<'a> {
    /// The template; every content stored (no `source:` entry left).
    pub template: &'a Template,
    /// The template's contents, by SHA-256.
    pub blobs: &'a dyn BlobStore,
    /// Cache of repository indexes and packages.
    pub cache_dir: PathBuf,
    /// Keyring of repositories that name none (default: the Debian archive keyring).
    pub keyring: Option<PathBuf>,
}

/// What a generation produced.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The image build's result (outputs, tuning log, counts of My Software entries).
    pub build: BuildResult,
    /// The package set installed, as the dependency check resolved it.
    pub resolution: Resolution,
}

/// Generates the image `out` asks for from `spec.template`; see the [module](self)
/// documentation for the steps. Progress phases are the image build's
/// ([`crate::image::PHASES`]).
pub fn generate(
    spec: &GenerateSpec<'_>,
    out: &Output<'_>,
    progress: &dyn Progress,
) -> Result<Generated> {
    let mut p = FromTemplate {
        spec,
        work: out.work_dir.to_path_buf(),
        resolution: None,
    };
    let build = build_with(&mut p, out, progress)?;
    Ok(Generated {
        build,
        resolution: p.resolution.unwrap_or_default(),
    })
}

/// The white-box [`Populate`].
struct FromTemplate<'a> {
    spec: &'a GenerateSpec<'a>,
    work: PathBuf,
    resolution: Option<Resolution>,
}

/// Where the `.deb`s of `ospkgs` are put, in the work directory.
const OSPKG_REPO: &str = "ospkgs";

/// Room counted per package for the disk size: Debian's median installed size is well below.
const PER_PACKAGE: u64 = 4 << 20;

impl Populate for FromTemplate<'_> {
    fn check(&mut self, progress: &dyn Progress) -> Result<Prepared> {
        let t = self.spec.template;
        t.validate()?;
        if let Some(c) = t.contents().find(|c| c.sha256().is_none()) {
            return Err(Error::Invalid(format!(
                "template {} {}: {c:?} is not stored yet; store the template's files first",
                t.name, t.version
            )));
        }
        for c in t.contents() {
            let sha = c.sha256().expect("checked above");
            if !self.spec.blobs.has(sha)? {
                return Err(Error::Invalid(format!(
                    "template {} {}: content {} is missing from its files",
                    t.name,
                    t.version,
                    to_hex(sha)
                )));
            }
        }
        let opts = RepoOptions {
            keyring: self.spec.keyring.clone(),
            ..RepoOptions::new(&self.spec.cache_dir)
        };
        let universe = PackageUniverse::open(&t.os, &opts, progress)?;
        let resolution = solve::check(t, &universe, self.spec.blobs, &CheckOptions::default())?;
        drop(universe);

        std::fs::create_dir_all(&self.work).map_err(|e| Error::io("create", &self.work, e))?;
        let mut sources = Sources {
            keyring: self.spec.keyring.clone(),
            cache_dir: Some(self.spec.cache_dir.clone()),
            ..Sources::new(t.os.repository_lines())
        };
        let ospkgs: Vec<_> = t.software.iter().flat_map(|c| &c.ospkgs).collect();
        if !ospkgs.is_empty() {
            let dir = self.work.join(OSPKG_REPO);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
            for p in ospkgs {
                let sha = p.deb.sha256().expect("stored");
                let file = dir.join(format!("{}_{}_{}.deb", p.name, p.version, p.arch));
                let mut out =
                    std::fs::File::create(&file).map_err(|e| Error::io("create", &file, e))?;
                std::io::copy(&mut self.spec.blobs.open(sha)?, &mut out)
                    .map_err(|e| Error::io("write", &file, e))?;
                out.flush().map_err(|e| Error::io("write", &file, e))?;
            }
            crate::recreate::write_flat_index(&dir)?;
            sources.local.push(dir);
        }
        let content: u64 = t
            .software
            .iter()
            .flat_map(|c| &c.files)
            .filter_map(|f| match &f.content {
                Some(Content::Blob { size, .. }) => Some(*size),
                _ => None,
            })
            .sum::<u64>()
            + resolution.packages.len() as u64 * PER_PACKAGE;
        let header = header_of(t, &resolution);
        self.resolution = Some(resolution);
        Ok(Prepared {
            header,
            content,
            sources,
            kernel_params: t.install.kernel_params.clone(),
            // A template names no layout: the install gives the root its release's own.
            layout: Default::default(),
            disk_size: t.install.disk.size_mib.map(|m| m.saturating_mul(1 << 20)),
        })
    }

    fn populate(
        &mut self,
        prepared: &Prepared,
        root: &Path,
        _work: &Path,
        progress: &dyn Progress,
    ) -> Result<ReconcileStats> {
        let t = self.spec.template;
        install::install(
            &InstallSpec {
                packages: &prepared.header.packages,
                suite: &t.os.release,
                sources: &prepared.sources,
                root,
                layout: &prepared.layout,
            },
            progress,
        )?;
        progress.phase("reconcile", None);
        apply::accounts(root, &t.install)?;
        let mut stats = ReconcileStats::default();
        for c in &t.software {
            let dir = RootDir::open(root, Links::Refuse)?;
            for p in &c.removed {
                let res = match dir.lstat(p) {
                    Ok(m) if m.is_dir() => dir.remove_dir_all(p),
                    Ok(_) => dir.remove_file(p),
                    Err(e) => Err(e),
                };
                match res {
                    Ok(()) => stats.removed += 1,
                    Err(e) if fsroot::not_found(&e) => {}
                    Err(e) => {
                        return Err(Error::Invalid(format!(
                            "bundle {}: removing {}: {e}",
                            c.name,
                            crate::rawpath::display(p)
                        )))
                    }
                }
            }
            let ids = Ids::read(&dir)?;
            let s = reconcile::place(
                root,
                c.files.iter().map(|f| entry_of(f, &ids)),
                self.spec.blobs,
            )
            .map_err(|e| Error::Invalid(format!("bundle {}: {e}", c.name)))?;
            let lost: Vec<String> = s
                .unrestorable
                .iter()
                .filter(|(_, why)| !why.starts_with("sockets"))
                .map(|(p, why)| format!("{p}: {why}"))
                .collect();
            if !lost.is_empty() {
                return Err(Error::Invalid(format!(
                    "bundle {}: {}",
                    c.name,
                    unrestorable(&lost)
                )));
            }
            stats.kept += s.kept;
            stats.restored += s.restored;
            stats.metadata += s.metadata;
            stats.removed += s.removed;
            stats.unrestorable.extend(s.unrestorable);
            for script in &c.scripts {
                apply::run_script(root, &c.name, script, self.spec.blobs)?;
            }
        }
        apply::profile(root, &t.install)?;
        apply::boot_scripts(root, &t.boot_scripts, self.spec.blobs)?;
        progress.finish();
        Ok(stats)
    }
}

/// The machine a template describes, as a scan of it would: what the tuning reads.
fn header_of(t: &Template, r: &Resolution) -> ReportHeader {
    let i = &t.install;
    let network = i
        .network
        .iter()
        .map(|n| NetworkInterface {
            name: n.name.clone(),
            source: "ifupdown".into(),
            file: apply::IFUPDOWN.into(),
            method: n.method,
            addresses: n.addresses.clone(),
            gateway: n.gateway.clone(),
            dns: n.dns.clone(),
            mac: n.mac.clone(),
        })
        .collect();
    let machine = Machine {
        os: OsInfo {
            id: Some(t.os.distribution.clone()),
            version_codename: Some(t.os.release.clone()),
            pretty_name: Some(format!("{} {} ({})", t.name, t.version, t.os.release)),
            ..OsInfo::default()
        },
        arch: kernel_arch(&t.os.arch).into(),
        package_arch: Some(t.os.arch.clone()),
        timezone: i.timezone.clone(),
        locale: i.locale.clone(),
        hostname: i.hostname.clone().or_else(|| Some(t.name.clone())),
        network,
        ..Machine::default()
    };
    let packages = r
        .packages
        .iter()
        .map(|p| Package {
            name: p.key.name.clone(),
            version: p.key.version.clone(),
            arch: p.key.arch.clone(),
            manager: "dpkg".into(),
            status: "installed".into(),
            ..Package::default()
        })
        .collect();
    ReportHeader {
        machine,
        packages,
        ..ReportHeader::default()
    }
}

/// The kernel's name of a dpkg architecture.
fn kernel_arch(dpkg: &str) -> &str {
    match dpkg {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "i386" => "i686",
        "armhf" => "armv7l",
        other => other,
    }
}

/// The image's users and groups by name, read once packages and accounts are in place.
pub(super) struct Ids {
    pub(super) users: HashMap<String, u32>,
    pub(super) groups: HashMap<String, u32>,
}

impl Ids {
    pub(super) fn read(dir: &RootDir) -> Result<Ids> {
        let table = |path: &[u8]| -> Result<HashMap<String, u32>> {
            let text = match dir.read(path, 16 << 20) {
                Ok(t) => t,
                Err(e) if fsroot::not_found(&e) => return Ok(HashMap::new()),
                Err(e) => return Err(e),
            };
            Ok(String::from_utf8_lossy(&text)
                .lines()
                .filter_map(|l| {
                    let mut f = l.split(':');
                    let name = f.next()?;
                    let id = f.nth(1)?.parse().ok()?;
                    Some((name.to_string(), id))
                })
                .collect())
        };
        Ok(Ids {
            users: table(b"/etc/passwd")?,
            groups: table(b"/etc/group")?,
        })
    }

    /// The ids a component file is owned by in the image: by name where the image has the
    /// name, else the source's numbers.
    pub(super) fn owner_of(&self, f: &SoftwareFile) -> (u32, u32) {
        let by_name = |n: &Option<String>, t: &HashMap<String, u32>| {
            n.as_ref().and_then(|n| t.get(n)).copied()
        };
        (
            by_name(&f.owner, &self.users).unwrap_or(f.uid),
            by_name(&f.group, &self.groups).unwrap_or(f.gid),
        )
    }
}

/// A component file as the entry [`reconcile::place`] writes: owned by name where the image
/// has the name, else by number.
fn entry_of(f: &SoftwareFile, ids: &Ids) -> FileEntry {
    let (sha256, size) = match &f.content {
        Some(Content::Blob { sha256, size }) => (Some(*sha256), *size),
        _ => (None, 0),
    };
    let (uid, gid) = ids.owner_of(f);
    let mtime = f.mtime.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
    FileEntry {
        path: f.path.clone(),
        kind: f.kind,
        mode: f.mode,
        uid,
        gid,
        user: f.owner.clone(),
        group: f.group.clone(),
        size: if f.kind == FileKind::File { size } else { 0 },
        mtime,
        sha256,
        target: f.target.clone(),
        rdev: f.rdev,
        xattrs: f.xattrs.clone(),
        mtime_nsec: 0,
        package: None,
        allocated: size,
    }
}
