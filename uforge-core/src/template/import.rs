//! Importing a scan as a template: the scanned machine described as an OS profile, one My
//! Software component, and an install profile.
//!
//! - **OS profile**: the scanned distribution, release and architecture; the repositories
//!   the scan was analysed against, with the release written as [`RELEASE_PLACEHOLDER`]; every
//!   installed package pinned at its scanned version (free with [`ImportOptions::unpin`]),
//!   those installed as dependencies marked `auto`.
//! - **My Software**: one component, `overlay`, with the files no package owns and the
//!   package files the machine changed, with all their metadata (directories, symlinks, hard
//!   links, special files, extended attributes), the package files the machine deleted as
//!   `removed`, and one `ospkg` per package no repository has, recreated from the scan as a
//!   `.deb` and stored with the other blobs.
//! - **Install profile**: disk, time zone, keyboard, locale, host name, kernel parameters,
//!   network, accounts and root login from the scanned facts. Password hashes come from the
//!   overlay's `/etc/shadow` (the report itself never holds them), SSH keys from the users'
//!   `authorized_keys`, kernel parameters from `/etc/default/grub`'s `GRUB_CMDLINE_LINUX`,
//!   the root login policy from `/etc/ssh/sshd_config`, each when the overlay carries it.
//!
//! What the install profile states is not also carried as a file (account databases, host
//! name, time zone, keyboard, locale, fstab, network configuration, `authorized_keys`, apt's
//! sources), nor is what the package install regenerates (dpkg's and apt's state and caches,
//! the linker cache) or logs: editing the template then changes the image, and a changed
//! package set starts from its own package state. Accounts are root, people's accounts
//! (uid 1000 to 59999) and service accounts (100 to 999) that own a component file; other
//! system accounts come from the packages that create them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use super::{
    Component, Content, Disk, DiskPartition, GroupSpec, InstallProfile, Keyboard, NetInterface,
    OsPkg, OsProfile, PackageSpec, RootLogin, SoftwareFile, SshRootLogin, Template, UserSpec,
    RELEASE_PLACEHOLDER,
};
use crate::analysis::Analysis;
use crate::blobstore::BlobStore;
use crate::facts::shellvars::ShellVars;
use crate::model::{FileEntry, FileKind, Machine, NetMethod, RawPath, ReportHeader};
use crate::pkgdb::package_keys;
use crate::rawpath::{self, is_within};
use crate::recreate::recreate_packages;
use crate::repo::{PackageKey, SourceLine};
use crate::report::ReportReader;
use crate::{Error, Result};

/// How a scan is imported.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ImportOptions {
    /// Template name (default: the scanned host name).
    #[cfg_attr(feature = "clap", arg(long))]
    pub name: Option<String>,
    /// Template version (default: 1).
    #[cfg_attr(feature = "clap", arg(long = "template-version"))]
    pub version: Option<String>,
    /// Leave every package free (the newest version at generation) instead of pinning the
    /// scanned versions.
    #[cfg_attr(feature = "clap", arg(long))]
    pub unpin: bool,
    /// The repositories the scan was analysed against, in sources.list syntax.
    #[cfg_attr(feature = "clap", arg(skip))]
    pub repositories: Vec<String>,
}

/// The name of the component an import makes.
pub const COMPONENT: &str = "overlay";

/// Paths the install profile states, so no component carries them.
const PROFILE_PATHS: &[&str] = &[
    "/etc/passwd",
    "/etc/passwd-",
    "/etc/group",
    "/etc/group-",
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/subuid",
    "/etc/subgid",
    "/etc/hostname",
    "/etc/timezone",
    "/etc/localtime",
    "/etc/default/keyboard",
    "/etc/default/locale",
    "/etc/fstab",
    "/etc/apt/sources.list",
];

/// Trees whose contents the package install regenerates, or that the profile states.
const REGENERATED: &[&str] = &[
    "/var/lib/dpkg",
    "/var/lib/apt",
    "/var/cache/apt",
    "/var/cache/debconf",
    "/var/cache/ldconfig",
    "/var/cache/man",
    "/var/lib/ucf",
    "/var/lib/systemd/deb-systemd-helper-enabled",
    "/var/lib/systemd/deb-systemd-user-helper-enabled",
    "/etc/alternatives",
    "/etc/apt/sources.list.d",
    "/etc/ld.so.cache",
];

/// Largest account database or configuration file read from the blobs.
const MAX_SMALL: u64 = 16 << 20;

/// dpkg's database of the scanned machine: the relations of its packages.
const DPKG_STATUS: &[u8] = b"/var/lib/dpkg/status";

/// Imports the scan whose report is `report` (native or JSON), analysed as `analysis`, with
/// the overlay's contents in `blobs`. The `.deb`s of the packages no repository has are
/// recreated and stored in `blobs`; everything the template refers to is then in `blobs`.
///
/// Fails, naming the files, when `blobs` lacks a content the component needs (the overlay
/// was not received).
pub fn import_scan(
    report: &Path,
    analysis: &Analysis,
    blobs: &dyn BlobStore,
    opts: &ImportOptions,
) -> Result<Template> {
    let mut reader = ReportReader::open(report)?;
    let header = reader.header().clone();
    let m = &header.machine;
    let release = m.os.version_codename.clone().ok_or_else(|| {
        Error::Invalid(format!(
            "report {}: the scanned machine names no release codename (VERSION_CODENAME)",
            report.display()
        ))
    })?;
    let arch = m.package_arch.clone().ok_or_else(|| {
        Error::Invalid(format!(
            "report {}: the scan found no dpkg architecture",
            report.display()
        ))
    })?;
    let name = opts
        .name
        .clone()
        .or_else(|| m.hostname.clone())
        .unwrap_or_else(|| "imported".into());
    let version = opts.version.clone().unwrap_or_else(|| "1".into());

    let missing: HashSet<&PackageKey> = analysis.missing_packages.iter().collect();
    let os = OsProfile {
        distribution: m.os.id.clone().unwrap_or_else(|| "debian".into()),
        release: release.clone(),
        arch: arch.clone(),
        repositories: opts
            .repositories
            .iter()
            .map(|l| generic_line(l, &release))
            .collect::<Result<_>>()?,
        pkgs: Vec::new(),
    };

    let picked = pick_files(&mut reader, &header, analysis, blobs)?;
    let status = read_small(&picked, blobs, DPKG_STATUS)?.unwrap_or_default();
    let depended_on = depended_on(&status);
    let mut os = os;
    os.pkgs = crate::image::install::wanted(&header.packages)
        .into_iter()
        .filter(|p| !missing.contains(&PackageKey::of(p)))
        .map(|p| {
            let spec = PackageSpec {
                auto: p.auto || depended_on.contains(p.name.as_str()),
                ..PackageSpec::pinned(&PackageKey::of(p))
            };
            if opts.unpin {
                spec.unpinned(&arch)
            } else {
                spec
            }
        })
        .collect();
    let mut install = install_profile(m, &picked, blobs)?;
    let owners: HashSet<u32> = picked.files.iter().map(|f| f.uid).collect();
    let group_owners: HashSet<u32> = picked.files.iter().map(|f| f.gid).collect();
    install.users.retain(|u| keep_account(u.uid, &owners));
    install
        .groups
        .retain(|g| keep_account(g.gid, &group_owners));

    let ospkgs = store_recreated(report, &analysis.missing_packages, blobs)?;
    let component = Component {
        name: COMPONENT.into(),
        version: version.clone(),
        files: picked.files,
        ospkgs,
        scripts: Vec::new(),
        removed: analysis
            .deleted_files
            .iter()
            .filter(|d| !picked.missing_keys.contains(&d.package))
            .map(|d| d.path.clone())
            .collect(),
    };
    let mut t = Template {
        description: format!(
            "imported from the scan of {} ({})",
            m.hostname.as_deref().unwrap_or("a machine"),
            m.os.pretty_name.as_deref().unwrap_or(&release)
        ),
        name,
        version,
        os,
        install,
        software: vec![component],
        boot_scripts: Vec::new(),
    };
    t.normalize();
    t.validate()?;
    Ok(t)
}

/// The names other installed packages of a dpkg status file depend on (Depends and
/// Pre-Depends, any alternative): packages that are there because something needs them,
/// whether or not apt recorded them as automatically installed (debootstrap and dpkg -i do
/// not).
fn depended_on(status: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    for p in crate::deb822::parse(status) {
        if !p.get("Status").is_some_and(|s| s.ends_with(" installed")) {
            continue;
        }
        let own = p.get("Package").unwrap_or("");
        for field in ["Depends", "Pre-Depends"] {
            let Some(text) = p.get(field) else { continue };
            let Ok(rels) = text.parse::<debian_control::lossy::Relations>() else {
                continue;
            };
            for r in rels.0.into_iter().flatten() {
                if r.name != own {
                    out.insert(r.name);
                }
            }
        }
    }
    out
}

/// A sources line with the release codename (`bookworm`, `bookworm-security`,
/// `bookworm/updates`) written as the placeholder.
fn generic_line(line: &str, release: &str) -> Result<String> {
    let mut l = SourceLine::parse(line)?;
    if let Some(rest) = l.suite.strip_prefix(release) {
        if rest.is_empty() || rest.starts_with(['-', '/']) {
            l.suite = format!("{RELEASE_PLACEHOLDER}{rest}");
        }
    }
    Ok(l.to_string())
}

/// Root, people's accounts, and service accounts that own a file of the component.
fn keep_account(id: u32, owners: &HashSet<u32>) -> bool {
    id == 0 || (1000..60000).contains(&id) || ((100..1000).contains(&id) && owners.contains(&id))
}

/// The files of the component, and what the install profile reads from the blobs.
struct Picked {
    files: Vec<SoftwareFile>,
    /// Report keys of the packages no repository has: their files come with their `.deb`.
    missing_keys: HashSet<String>,
    /// Digests of the files the install profile reads, by path.
    profile: HashMap<RawPath, [u8; 32]>,
}

fn pick_files(
    reader: &mut ReportReader,
    header: &ReportHeader,
    analysis: &Analysis,
    blobs: &dyn BlobStore,
) -> Result<Picked> {
    let keys = package_keys(&header.packages);
    let missing: HashSet<PackageKey> = analysis.missing_packages.iter().cloned().collect();
    let missing_keys: HashSet<String> = header
        .packages
        .iter()
        .zip(&keys)
        .filter(|(p, _)| missing.contains(&PackageKey::of(p)))
        .map(|(_, k)| k.clone())
        .collect();
    let modified: HashSet<&RawPath> = analysis
        .modified_files
        .iter()
        .filter(|f| !missing_keys.contains(&f.package))
        .map(|f| &f.path)
        .collect();
    let m = &header.machine;
    let mut stated: HashSet<Vec<u8>> = PROFILE_PATHS
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    stated.extend(m.network.iter().map(|n| n.file.as_bytes().to_vec()));
    let keys_files: HashSet<Vec<u8>> = m.users.iter().map(|u| authorized_keys(&u.home)).collect();
    let read_paths: HashSet<Vec<u8>> = [
        DPKG_STATUS.to_vec(),
        b"/etc/shadow".to_vec(),
        b"/etc/default/grub".to_vec(),
        b"/etc/ssh/sshd_config".to_vec(),
    ]
    .into_iter()
    .chain(keys_files.iter().cloned())
    .collect();

    let mut files = Vec::new();
    let mut profile = HashMap::new();
    let mut absent: Vec<String> = Vec::new();
    while let Some(e) = reader.next_file()? {
        if read_paths.contains(&e.path) {
            if let Some(d) = e.sha256.filter(|_| e.kind == FileKind::File) {
                profile.insert(e.path.clone(), d);
            }
        }
        let owned_by_missing = e.package.as_ref().is_some_and(|p| missing_keys.contains(p));
        let wanted = e.package.is_none() || modified.contains(&e.path);
        if owned_by_missing
            || !wanted
            || e.path == b"/"
            || e.kind == FileKind::Socket
            || stated.contains(&e.path)
            || keys_files.contains(&e.path)
            || REGENERATED.iter().any(|d| is_within(&e.path, d.as_bytes()))
            || (is_within(&e.path, b"/var/log") && e.kind != FileKind::Dir)
        {
            continue;
        }
        files.push(software_file(e));
    }
    // A hard link whose first name stays with the packages is a plain copy here.
    let paths: HashSet<RawPath> = files.iter().map(|f| f.path.clone()).collect();
    for f in &mut files {
        if f.kind != FileKind::Hardlink {
            continue;
        }
        if f.target.as_ref().is_some_and(|t| paths.contains(t)) {
            f.content = None;
        } else {
            f.kind = FileKind::File;
            f.target = None;
        }
    }
    files.retain(|f| f.kind != FileKind::File || f.content.is_some());
    for f in &files {
        if let Some(Content::Blob { sha256, .. }) = &f.content {
            if !blobs.has(sha256)? {
                absent.push(rawpath::display(&f.path));
            }
        }
    }
    if !absent.is_empty() {
        let shown: Vec<&str> = absent.iter().take(10).map(String::as_str).collect();
        return Err(Error::Invalid(format!(
            "the blob store lacks the contents of {} files of the scan ({}{}): receive the scan's overlay first",
            absent.len(),
            shown.join(", "),
            if absent.len() > shown.len() { ", …" } else { "" }
        )));
    }
    Ok(Picked {
        files,
        missing_keys,
        profile,
    })
}

/// The component entry of a report entry. A hard link keeps its digest until it is known
/// whether its first name is in the component too.
fn software_file(e: FileEntry) -> SoftwareFile {
    let content = match (e.kind, e.sha256) {
        (FileKind::File | FileKind::Hardlink, Some(sha256)) => Some(Content::Blob {
            sha256,
            size: e.size,
        }),
        _ => None,
    };
    SoftwareFile {
        content,
        path: e.path,
        kind: e.kind,
        mode: e.mode,
        owner: e.user,
        uid: e.uid,
        group: e.group,
        gid: e.gid,
        mtime: Some(e.mtime),
        target: e.target,
        rdev: e.rdev,
        xattrs: e.xattrs,
    }
}

fn authorized_keys(home: &str) -> Vec<u8> {
    format!("{}/.ssh/authorized_keys", home.trim_end_matches('/')).into_bytes()
}

/// Reads a small file of the profile from the blobs, if the overlay carried it.
fn read_small(picked: &Picked, blobs: &dyn BlobStore, path: &[u8]) -> Result<Option<String>> {
    let Some(d) = picked.profile.get(path) else {
        return Ok(None);
    };
    if !blobs.has(d)? {
        return Ok(None);
    }
    let mut text = Vec::new();
    blobs
        .open(d)?
        .take(MAX_SMALL)
        .read_to_end(&mut text)
        .map_err(|e| Error::io("read", rawpath::as_path(path), e))?;
    Ok(Some(String::from_utf8_lossy(&text).into_owned()))
}

fn install_profile(m: &Machine, picked: &Picked, blobs: &dyn BlobStore) -> Result<InstallProfile> {
    let hashes: HashMap<String, String> = read_small(picked, blobs, b"/etc/shadow")?
        .map(|t| {
            t.lines()
                .filter_map(|l| {
                    let mut f = l.split(':');
                    Some((f.next()?.to_string(), f.next()?.to_string()))
                })
                .filter(|(n, _)| !n.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut users = Vec::new();
    for u in &m.users {
        let keys = read_small(picked, blobs, &authorized_keys(&u.home))?
            .map(|t| {
                t.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        users.push(UserSpec {
            name: u.name.clone(),
            uid: u.uid,
            gid: u.gid,
            gecos: u.gecos.clone(),
            home: u.home.clone(),
            shell: u.shell.clone(),
            groups: m
                .groups
                .iter()
                .filter(|g| g.members.contains(&u.name))
                .map(|g| g.name.clone())
                .collect(),
            password: hashes.get(&u.name).cloned(),
            ssh_keys: keys,
        });
    }
    let root_hash = hashes.get("root");
    let ssh = read_small(picked, blobs, b"/etc/ssh/sshd_config")?
        .and_then(|t| {
            t.lines()
                .map(str::trim)
                .take_while(|l| !l.to_ascii_lowercase().starts_with("match "))
                .find_map(|l| {
                    let (k, v) = l.split_once(char::is_whitespace)?;
                    k.eq_ignore_ascii_case("PermitRootLogin")
                        .then(|| SshRootLogin::parse(v.trim()))
                        .flatten()
                })
        })
        .unwrap_or_default();
    let kernel_params = read_small(picked, blobs, b"/etc/default/grub")?
        .and_then(|t| ShellVars::parse(t.as_bytes()).string("GRUB_CMDLINE_LINUX"))
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    Ok(InstallProfile {
        disk: disk_of(m),
        timezone: m.timezone.clone(),
        keyboard: m.keyboard.as_ref().map(|k| Keyboard {
            layout: k.layout.clone(),
            variant: k.variant.clone(),
            model: k.model.clone(),
            options: k.options.clone(),
        }),
        locale: m.locale.clone(),
        hostname: m.hostname.clone(),
        kernel_params,
        network: m
            .network
            .iter()
            .filter(|n| n.method != NetMethod::Loopback)
            .map(|n| NetInterface {
                name: n.name.clone(),
                method: n.method,
                addresses: n.addresses.clone(),
                gateway: n.gateway.clone(),
                dns: n.dns.clone(),
                mac: n.mac.clone(),
            })
            .collect(),
        users,
        groups: m
            .groups
            .iter()
            .map(|g| GroupSpec {
                name: g.name.clone(),
                gid: g.gid,
            })
            .collect(),
        root_login: RootLogin {
            password: root_hash.is_some_and(|h| !h.is_empty() && !h.starts_with(['!', '*'])),
            ssh,
        },
    })
}

/// Filesystems that live on a disk, as opposed to memory, kernel or network ones.
fn on_disk(fstype: &str) -> bool {
    matches!(
        fstype,
        "ext2" | "ext3" | "ext4" | "xfs" | "btrfs" | "vfat" | "f2fs" | "jfs" | "reiserfs" | "swap"
    )
}

fn disk_of(m: &Machine) -> Disk {
    let mib = |b: u64| b.div_ceil(1 << 20);
    let by_uuid: BTreeMap<&str, &crate::model::Partition> = m
        .partitions
        .iter()
        .filter_map(|p| Some((p.uuid.as_deref()?, p)))
        .collect();
    let partitions: Vec<DiskPartition> = m
        .mounts
        .iter()
        .filter(|x| on_disk(&x.fstype))
        .map(|x| DiskPartition {
            mount: if x.fstype == "swap" {
                "swap".into()
            } else {
                x.target.clone()
            },
            fstype: x.fstype.clone(),
            size_mib: x
                .uuid
                .as_deref()
                .and_then(|u| by_uuid.get(u))
                .map(|p| mib(p.size)),
            options: Some(x.options.clone()).filter(|o| !o.is_empty() && o != "defaults"),
        })
        .collect();
    // The disk that holds the root filesystem, when the scan saw the block devices.
    let size_mib = m
        .mounts
        .iter()
        .find(|x| x.target == "/")
        .and_then(|x| by_uuid.get(x.uuid.as_deref()?))
        .and_then(|p| p.parent.as_deref())
        .and_then(|d| m.partitions.iter().find(|p| p.name == d))
        .map(|d| mib(d.size));
    let mut seen = HashSet::new();
    Disk {
        size_mib,
        partitions: partitions
            .into_iter()
            .filter(|p| seen.insert(p.mount.clone()))
            .collect(),
    }
}

/// Recreates the packages no repository has and stores their `.deb`s as blobs.
fn store_recreated(
    report: &Path,
    missing: &[PackageKey],
    blobs: &dyn BlobStore,
) -> Result<Vec<OsPkg>> {
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let dir = tempfile_dir()?;
    let result = (|| {
        let built = recreate_packages(report, missing, blobs, dir.path())?;
        let mut st = blobs.stage()?;
        let mut out = Vec::new();
        for p in built {
            let path = dir.path().join(&p.file_name);
            let mut f = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
            st.put(&p.sha256, p.size, &mut f)?;
            out.push(OsPkg {
                name: p.key.name,
                version: p.key.version,
                arch: p.key.arch,
                deb: Content::Blob {
                    sha256: p.sha256,
                    size: p.size,
                },
            });
        }
        st.commit()?;
        Ok(out)
    })();
    drop(dir);
    result
}

/// A scratch directory removed when dropped.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir() -> Result<ScratchDir> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let base = std::env::temp_dir();
    loop {
        let p = base.join(format!(
            "uforge-import-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(ScratchDir(p)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("create", p, e)),
        }
    }
}
