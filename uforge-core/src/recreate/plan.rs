//! One pass over a report: for each package to recreate, the members of its `data.tar` (the
//! entries it owns and the directories above them) and the dpkg database files that hold its
//! control data.

use std::collections::{HashMap, HashSet};

use crate::model::{FileEntry, FileKind, RawPath};
use crate::rawpath::{self, is_within};
use crate::repo::PackageKey;
use crate::report::ReportReader;
use crate::Result;

/// Every file of `/var/lib/dpkg/info` that recreating a package reads. The `md5sums` and
/// `list` files are left out: the list is the data itself, and the digests are not required.
pub(super) const INFO_MEMBERS: &[&str] = &[
    "preinst",
    "postinst",
    "prerm",
    "postrm",
    "config",
    "templates",
    "triggers",
    "shlibs",
    "symbols",
    "conffiles",
];

/// The dpkg info file listing every path a package installed (`NAME.list`).
pub(super) const LIST: &str = "list";

/// Where dpkg keeps the status of every package.
pub(super) const STATUS: &[u8] = b"/var/lib/dpkg/status";

/// What a `data.tar` member is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum MemberKind {
    /// A directory.
    Dir,
    /// A regular file whose content is the blob of that digest.
    File {
        /// SHA-256 of the content.
        sha256: [u8; 32],
        /// Content size.
        size: u64,
    },
    /// A symbolic link to these bytes.
    Symlink(RawPath),
    /// A further name of the regular file member at this in-root path.
    Hardlink(RawPath),
    /// A named pipe.
    Fifo,
    /// A character device `(major, minor)`.
    Char(u32, u32),
    /// A block device `(major, minor)`.
    Block(u32, u32),
}

/// One member of a `data.tar`, with the metadata the scan recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Member {
    /// In-root absolute path (`/usr/bin/x`).
    pub path: RawPath,
    /// What it is.
    pub kind: MemberKind,
    /// Permission bits.
    pub mode: u32,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Owner name, when the scanned root has one.
    pub user: Option<String>,
    /// Group name, when the scanned root has one.
    pub group: Option<String>,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

impl Member {
    /// A directory the report does not have: what dpkg-deb would give it.
    pub(super) fn default_dir(path: RawPath, mtime: i64) -> Self {
        Member {
            path,
            kind: MemberKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            user: Some("root".into()),
            group: Some("root".into()),
            mtime,
        }
    }

    /// The root directory `./`, with the report's metadata of `/`.
    pub(super) fn root_of(e: &FileEntry) -> Self {
        let mut m = Member::with_kind(e, MemberKind::Dir);
        m.path = b"/".to_vec();
        m
    }

    fn with_kind(e: &FileEntry, kind: MemberKind) -> Self {
        Member {
            path: e.path.clone(),
            kind,
            mode: e.mode & 0o7777,
            uid: e.uid,
            gid: e.gid,
            user: e.user.clone(),
            group: e.group.clone(),
            mtime: e.mtime,
        }
    }
}

/// What one package to recreate gathered from the report.
#[derive(Debug)]
pub(super) struct Plan {
    /// The package.
    pub key: PackageKey,
    /// How the report names it in `FileEntry::package`.
    pub report_key: String,
    /// `data.tar` members in report order, parents before children; the root is not included.
    pub members: Vec<Member>,
    /// Report entries of `/var/lib/dpkg/info/NAME.MEMBER`, by control member name.
    pub info_plain: HashMap<&'static str, FileEntry>,
    /// The same for the architecture-qualified names (`NAME:ARCH.MEMBER`).
    pub info_qualified: HashMap<&'static str, FileEntry>,
    /// Paths already among `members`.
    seen: HashSet<RawPath>,
    /// First name of an inode in the report -> the member that carries its content here.
    content_of: HashMap<RawPath, RawPath>,
}

/// Everything one pass over the report yields.
#[derive(Debug)]
pub(super) struct Gathered {
    /// One plan per package, in the order asked for.
    pub plans: Vec<Plan>,
    /// The entry of the dpkg status file, if the report has it.
    pub status: Option<FileEntry>,
    /// The entry of the root directory, if the report has it.
    pub root: Option<FileEntry>,
    /// Every symlink of the report (path -> target), to see a listed path through the
    /// directory aliases of a merged-/usr root.
    pub symlinks: HashMap<RawPath, RawPath>,
}

/// Reads every remaining entry of `reader`, gathering what each of `packages` (key, report
/// key) needs. `default_mtime` dates directories the report lacks.
pub(super) fn gather(
    reader: &mut ReportReader,
    packages: Vec<(PackageKey, String)>,
    default_mtime: i64,
) -> Result<Gathered> {
    let mut plans: Vec<Plan> = packages
        .into_iter()
        .map(|(key, report_key)| Plan {
            key,
            report_key,
            members: Vec::new(),
            info_plain: HashMap::new(),
            info_qualified: HashMap::new(),
            seen: HashSet::new(),
            content_of: HashMap::new(),
        })
        .collect();
    let by_report_key: HashMap<String, usize> = plans
        .iter()
        .enumerate()
        .map(|(i, p)| (p.report_key.clone(), i))
        .collect();
    // dpkg names its files `NAME.x`, or `NAME:ARCH.x` for packages installed for several
    // architectures; which one a package uses is only known once its control data is read.
    let mut info_paths: HashMap<RawPath, (usize, &'static str, bool)> = HashMap::new();
    for (i, p) in plans.iter().enumerate() {
        for &m in INFO_MEMBERS.iter().chain(&[LIST]) {
            let plain = format!("/var/lib/dpkg/info/{}.{m}", p.key.name);
            let qualified = format!("/var/lib/dpkg/info/{}:{}.{m}", p.key.name, p.key.arch);
            info_paths.insert(plain.into_bytes(), (i, m, false));
            info_paths.insert(qualified.into_bytes(), (i, m, true));
        }
    }

    let mut status = None;
    let mut root = None;
    let mut symlinks = HashMap::new();
    // The directories above the entry at hand, outermost first.
    let mut stack: Vec<FileEntry> = Vec::new();
    while let Some(e) = reader.next_file()? {
        while stack
            .last()
            .is_some_and(|a| !(is_within(&e.path, &a.path) && e.path != a.path))
        {
            stack.pop();
        }
        if e.kind == FileKind::Symlink {
            symlinks.insert(e.path.clone(), e.target.clone().unwrap_or_default());
        }
        if e.path == STATUS && e.kind == FileKind::File {
            status = Some(e.clone());
        } else if e.path == b"/" {
            root = Some(e.clone());
        }
        if e.kind == FileKind::File {
            if let Some(&(i, m, qualified)) = info_paths.get(&e.path) {
                let info = if qualified {
                    &mut plans[i].info_qualified
                } else {
                    &mut plans[i].info_plain
                };
                info.insert(m, e.clone());
            }
        }
        if let Some(&i) = e.package.as_deref().and_then(|k| by_report_key.get(k)) {
            plans[i].add(&e, &stack, default_mtime)?;
        }
        if e.kind == FileKind::Dir {
            stack.push(e);
        }
    }
    Ok(Gathered {
        plans,
        status,
        root,
        symlinks,
    })
}

impl Plan {
    /// Adds an entry the package owns, after the directories above it that are not in yet.
    fn add(&mut self, e: &FileEntry, stack: &[FileEntry], default_mtime: i64) -> Result<()> {
        let shown = || rawpath::display(&e.path);
        if e.path == b"/" {
            // The root is written once for every package, whoever the report says owns it.
            return Ok(());
        }
        if rawpath::normalize(&e.path).as_deref() != Some(&e.path[..]) || e.path.contains(&0) {
            return Err(self.err(format!(
                "the report holds {:?}, which is not a clean in-root path",
                shown()
            )));
        }
        if self.seen.contains(&e.path) {
            return Err(self.err(format!("the report lists {:?} twice", shown())));
        }
        let kind = match e.kind {
            FileKind::Dir => MemberKind::Dir,
            FileKind::File | FileKind::Hardlink => {
                let sha256 = e.sha256.ok_or_else(|| {
                    self.err(format!(
                        "the report has no content digest for {:?} (the scan could not read it)",
                        shown()
                    ))
                })?;
                // The first name of the inode, as the report knows it.
                let first = match e.kind {
                    FileKind::Hardlink => e.target.clone().unwrap_or_default(),
                    _ => e.path.clone(),
                };
                match self.content_of.get(&first) {
                    Some(carrier) if e.kind == FileKind::Hardlink => {
                        MemberKind::Hardlink(carrier.clone())
                    }
                    _ => {
                        // The first name belongs to another package (or is this entry): this
                        // name carries the content, and later names link to it.
                        self.content_of.insert(first, e.path.clone());
                        MemberKind::File {
                            sha256,
                            size: e.size,
                        }
                    }
                }
            }
            FileKind::Symlink => MemberKind::Symlink(e.target.clone().unwrap_or_default()),
            FileKind::Fifo => MemberKind::Fifo,
            FileKind::Char | FileKind::Block => {
                let (major, minor) = e.rdev.unwrap_or_default();
                if e.kind == FileKind::Char {
                    MemberKind::Char(major, minor)
                } else {
                    MemberKind::Block(major, minor)
                }
            }
            // A socket only exists while a program listens on it: no archive carries one.
            FileKind::Socket => return Ok(()),
        };
        // Every proper ancestor, outermost first, that is not in yet.
        let mut ends: Vec<usize> = e.path[1..]
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'/')
            .map(|(i, _)| i + 1)
            .collect();
        ends.retain(|&end| !self.seen.contains(&e.path[..end]));
        for end in ends {
            let dir = &e.path[..end];
            let member = match stack.iter().find(|d| d.path == dir) {
                Some(d) => Member::with_kind(d, MemberKind::Dir),
                None => Member::default_dir(dir.to_vec(), default_mtime),
            };
            self.seen.insert(dir.to_vec());
            self.members.push(member);
        }
        self.seen.insert(e.path.clone());
        self.members.push(Member::with_kind(e, kind));
        Ok(())
    }

    /// Makes the members exactly the paths dpkg's `.list` of the package names, in its order,
    /// so that the package installs wherever the original did. A listed path with listed
    /// paths below it is a directory, even where the scanned root has a symlink (`/lib` on a
    /// merged-/usr root); a path under such an alias is taken from where the root really
    /// keeps it. Listed paths the root no longer has are left out.
    pub(super) fn follow_list(
        &mut self,
        list: &[u8],
        symlinks: &HashMap<RawPath, RawPath>,
        default_mtime: i64,
    ) {
        let listed: Vec<&[u8]> = list
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty() && *l != b"/." && *l != b"/")
            .filter(|l| rawpath::normalize(l).as_deref() == Some(*l))
            .collect();
        let parents: HashSet<&[u8]> = listed
            .iter()
            .filter_map(|p| p.iter().rposition(|&b| b == b'/').map(|i| &p[..i]))
            .collect();
        let by_path: HashMap<RawPath, Member> = std::mem::take(&mut self.members)
            .into_iter()
            .map(|m| (m.path.clone(), m))
            .collect();
        let mut listed_as: HashMap<RawPath, RawPath> = HashMap::new();
        let mut seen = HashSet::new();
        for &p in &listed {
            if !seen.insert(p.to_vec()) {
                continue;
            }
            let real = resolve(p, symlinks);
            let found = by_path.get(p).or_else(|| by_path.get(&real));
            let mut m = if parents.contains(p) {
                match [by_path.get(&real), by_path.get(p)]
                    .into_iter()
                    .flatten()
                    .find(|m| m.kind == MemberKind::Dir)
                {
                    Some(d) => d.clone(),
                    None => Member::default_dir(p.to_vec(), default_mtime),
                }
            } else {
                match found {
                    Some(m) => m.clone(),
                    None => continue,
                }
            };
            listed_as.insert(m.path.clone(), p.to_vec());
            m.path = p.to_vec();
            if let MemberKind::Hardlink(carrier) = &m.kind {
                if let Some(to) = listed_as.get(carrier) {
                    m.kind = MemberKind::Hardlink(to.clone());
                }
            }
            self.members.push(m);
        }
    }

    /// The control member `name` as dpkg stored it for this package: under the qualified name
    /// for `Multi-Arch: same` packages, else the plain one, else whichever exists.
    pub(super) fn info(&self, name: &str, multi_arch_same: bool) -> Option<&FileEntry> {
        let (first, second) = if multi_arch_same {
            (&self.info_qualified, &self.info_plain)
        } else {
            (&self.info_plain, &self.info_qualified)
        };
        first.get(name).or_else(|| second.get(name))
    }

    /// Builds the error of this package.
    pub(super) fn err(&self, message: String) -> crate::Error {
        super::recreate_err(&self.key, message)
    }
}

/// `path` with its symlinked ancestors replaced by their targets (as the kernel would see it
/// in the scanned root); the path itself is not followed.
fn resolve(path: &[u8], symlinks: &HashMap<RawPath, RawPath>) -> RawPath {
    let mut p = path.to_vec();
    // Bounded: a symlink loop in the root must not hang a build.
    'again: for _ in 0..40 {
        for (i, _) in p.iter().enumerate().skip(1).filter(|(_, &b)| b == b'/') {
            let Some(target) = symlinks.get(&p[..i]) else {
                continue;
            };
            let mut joined = if target.starts_with(b"/") {
                target.clone()
            } else {
                let parent = p[..i].iter().rposition(|&b| b == b'/').unwrap_or(0);
                [&p[..parent], b"/", &target[..]].concat()
            };
            joined.extend_from_slice(&p[i..]);
            match rawpath::normalize(&joined) {
                Some(n) => p = n,
                None => return p,
            }
            continue 'again;
        }
        break;
    }
    p
}
