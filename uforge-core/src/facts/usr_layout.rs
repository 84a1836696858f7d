//! The /usr layout of a root: whether `/bin`, `/sbin` and `/lib*` are links into `/usr`
//! (merged) or directories of their own (unmerged), and what made it so.
//!
//! Debian merges /usr in several ways: base-files ships the links (trixie), the `usrmerge`
//! package converts the system, or debootstrap and the installer create the links before any
//! package is unpacked (then only `usr-is-merged`, or nothing, is installed). Packages alone do
//! not say which, so a build must set the links up itself before the install: dpkg follows
//! them, and `usr-is-merged`'s preinst refuses a system without them.
//!
//! The layout is derived from the report's entries wherever it is needed (build check,
//! analysis, verify), so reports of every version carry it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::{FileEntry, FileKind, Package};
use crate::report::ReportReader;
use crate::{Error, Result};

/// The top-level directories a merged /usr turns into links (every architecture's).
pub const ALIASES: [&str; 7] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32", "libo32"];

/// The packages that take part in the merge.
pub const MERGE_PACKAGES: [&str; 2] = ["usrmerge", "usr-is-merged"];

/// The file that lets `usr-is-merged` and `usrmerge` leave an unmerged system as it is, and
/// the phrase their scripts look for in it.
pub const SKIP_CONVERSION: &str = "/etc/unsupported-skip-usrmerge-conversion";
const SKIP_PHRASE: &str = "this system will not be supported in the future";

/// Which way a root's /usr is laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayoutKind {
    /// None of the top-level directories exist (not a system root).
    #[default]
    None,
    /// Every one of them that exists is a link into `/usr`.
    Merged,
    /// Every one of them that exists is a directory.
    Unmerged,
    /// Some are links and some directories, or a link points outside `/usr`.
    Mixed,
}

/// A top-level link of a merged root.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UsrLink {
    /// The link (`/bin`).
    pub path: String,
    /// Its target as stored (`usr/bin`); empty when the entry is not a link at all.
    pub target: String,
}

/// The /usr layout of a scanned root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsrLayout {
    /// Merged, unmerged, mixed or none.
    pub kind: LayoutKind,
    /// The top-level links among [`ALIASES`], with their targets as stored.
    pub links: Vec<UsrLink>,
    /// The top-level directories among [`ALIASES`] (`/bin`).
    pub dirs: Vec<String>,
    /// Installed [`MERGE_PACKAGES`].
    pub packages: Vec<String>,
    /// Whether the root has [`SKIP_CONVERSION`].
    pub skip_conversion: bool,
}

impl UsrLayout {
    /// Takes note of one report entry; entries other than the top-level aliases are ignored.
    pub fn observe(&mut self, e: &FileEntry) {
        if e.path == SKIP_CONVERSION.as_bytes() {
            self.skip_conversion = true;
            return;
        }
        let Some(name) = e.path.strip_prefix(b"/") else {
            return;
        };
        if !ALIASES.iter().any(|a| a.as_bytes() == name) {
            return;
        }
        let path = String::from_utf8_lossy(&e.path).into_owned();
        match e.kind {
            FileKind::Symlink => {
                let target = e.target.as_deref().unwrap_or_default();
                self.links.push(UsrLink {
                    path,
                    target: String::from_utf8_lossy(target).into_owned(),
                });
            }
            FileKind::Dir => self.dirs.push(path),
            // A file where a directory belongs: no layout can hold it.
            _ => self.links.push(UsrLink {
                path,
                target: String::new(),
            }),
        }
    }

    /// Completes the layout with the packages of the scan.
    pub fn finish(mut self, packages: &[Package]) -> Self {
        self.packages = MERGE_PACKAGES
            .iter()
            .filter(|m| {
                packages
                    .iter()
                    .any(|p| p.name == **m && p.manager == "dpkg" && p.status == "installed")
            })
            .map(|m| m.to_string())
            .collect();
        self.links.sort();
        self.dirs.sort();
        self.kind = match (self.links.is_empty(), self.dirs.is_empty()) {
            (true, true) => LayoutKind::None,
            (false, true) if self.links.iter().all(|l| into_usr(&l.target)) => LayoutKind::Merged,
            (true, false) => LayoutKind::Unmerged,
            _ => LayoutKind::Mixed,
        };
        self
    }

    /// The layout of a root's entries and packages.
    pub fn of<'a>(files: impl IntoIterator<Item = &'a FileEntry>, packages: &[Package]) -> Self {
        let mut layout = UsrLayout::default();
        for e in files {
            layout.observe(e);
        }
        layout.finish(packages)
    }

    /// The layout of a report file.
    pub fn of_report(report: &Path) -> Result<Self> {
        let mut r = ReportReader::open(report)?;
        let packages = r.header().packages.clone();
        let mut layout = UsrLayout::default();
        while let Some(e) = r.next_file()? {
            layout.observe(&e);
        }
        Ok(layout.finish(&packages))
    }

    /// What a person reads: `merged /usr (/bin, /lib, /lib64, /sbin link into /usr; usrmerge,
    /// usr-is-merged installed)`.
    pub fn describe(&self) -> String {
        let names = |v: Vec<&str>| v.join(", ");
        let pkgs = if self.packages.is_empty() {
            "no merge package installed".to_string()
        } else {
            format!("{} installed", self.packages.join(", "))
        };
        match self.kind {
            LayoutKind::None => "no /bin, /sbin or /lib".into(),
            LayoutKind::Merged => format!(
                "merged /usr ({} link into /usr; {pkgs})",
                names(self.links.iter().map(|l| l.path.as_str()).collect())
            ),
            LayoutKind::Unmerged => format!(
                "unmerged /usr ({} are directories; {pkgs}{})",
                names(self.dirs.iter().map(String::as_str).collect()),
                if self.skip_conversion {
                    format!(", {SKIP_CONVERSION} present")
                } else {
                    String::new()
                }
            ),
            LayoutKind::Mixed => format!(
                "mixed /usr ({}; {pkgs})",
                self.links
                    .iter()
                    .map(|l| if l.target.is_empty() {
                        format!("{} is not a directory", l.path)
                    } else {
                        format!("{} -> {}", l.path, l.target)
                    })
                    .chain(self.dirs.iter().map(|d| format!("{d} is a directory")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Fails, saying why, when a build cannot give a new root this layout: a mixed one, or an
    /// unmerged one whose merge packages would merge it (`usrmerge`) or refuse it
    /// (`usr-is-merged`) in the install.
    pub fn check(&self) -> Result<()> {
        let why = match self.kind {
            LayoutKind::None | LayoutKind::Merged => return Ok(()),
            LayoutKind::Mixed => "only a root whose /bin, /sbin and /lib* are all links into /usr \
                 (merged) or all directories (unmerged) can be rebuilt"
                .to_string(),
            LayoutKind::Unmerged if !self.packages.is_empty() && !self.skip_conversion => format!(
                "{} would convert or refuse an unmerged system in the install, and the source \
                 has no {SKIP_CONVERSION} to stop it",
                self.packages.join(" and ")
            ),
            LayoutKind::Unmerged => return Ok(()),
        };
        Err(Error::Invalid(format!(
            "the source's /usr layout cannot be reproduced: {}: {why}",
            self.describe()
        )))
    }

    /// The shell command of an mmdebstrap setup hook (the root is `$1`) that gives an empty
    /// root this layout before any package is unpacked, or None when nothing needs doing.
    /// Only a [checked](Self::check) layout is set up; its targets are known safe words.
    pub fn setup_hook(&self) -> Result<Option<String>> {
        self.check()?;
        let mut steps = Vec::new();
        if self.kind == LayoutKind::Merged {
            for UsrLink { path, target } in &self.links {
                if !safe_word(target) || !safe_word(path) {
                    return Err(Error::Invalid(format!(
                        "the source's /usr link {path} -> {target} holds characters no \
                         layout uses"
                    )));
                }
                let dir = target.trim_start_matches('/');
                steps.push(format!(
                    "mkdir -p \"$1/{dir}\" && ln -s '{target}' \"$1{path}\""
                ));
            }
        }
        if self.skip_conversion {
            steps.push(format!(
                "mkdir -p \"$1/etc\" && echo '{SKIP_PHRASE}' >\"$1{SKIP_CONVERSION}\""
            ));
        }
        Ok((!steps.is_empty()).then(|| steps.join(" && ")))
    }
}

/// Whether a top-level link's target lies in `/usr`, relative (`usr/bin`) or absolute.
fn into_usr(target: &str) -> bool {
    let rel = target.strip_prefix('/').unwrap_or(target);
    rel.strip_prefix("usr/")
        .is_some_and(|rest| !rest.is_empty() && !rest.split('/').any(|c| c == ".." || c.is_empty()))
}

/// Paths made only of the characters directory names of a /usr layout use.
fn safe_word(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: FileKind, target: Option<&str>) -> FileEntry {
        FileEntry {
            path: path.as_bytes().to_vec(),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            size: 0,
            mtime: 0,
            mtime_nsec: 0,
            sha256: None,
            target: target.map(|t| t.as_bytes().to_vec()),
            rdev: None,
            xattrs: Default::default(),
            package: None,
            allocated: 0,
        }
    }

    fn pkg(name: &str) -> Package {
        Package {
            name: name.into(),
            version: "1".into(),
            arch: "all".into(),
            manager: "dpkg".into(),
            status: "installed".into(),
            ..Package::default()
        }
    }

    fn layout(entries: &[FileEntry], packages: &[Package]) -> UsrLayout {
        UsrLayout::of(entries, packages)
    }

    #[test]
    fn merged_by_links_with_usr_is_merged_is_set_up_before_the_install() {
        let l = layout(
            &[
                entry("/bin", FileKind::Symlink, Some("usr/bin")),
                entry("/etc", FileKind::Dir, None),
                entry("/lib", FileKind::Symlink, Some("usr/lib")),
                entry(
                    "/lib64",
                    FileKind::Symlink,
                    Some("/usr/lib/x86_64-linux-gnu"),
                ),
                entry("/sbin", FileKind::Symlink, Some("usr/sbin")),
                entry("/usr/bin", FileKind::Dir, None),
            ],
            &[pkg("usr-is-merged"), pkg("bash")],
        );
        assert_eq!(l.kind, LayoutKind::Merged);
        assert_eq!(l.packages, ["usr-is-merged"]);
        l.check().unwrap();
        assert_eq!(
            l.describe(),
            "merged /usr (/bin, /lib, /lib64, /sbin link into /usr; usr-is-merged installed)"
        );
        let hook = l.setup_hook().unwrap().unwrap();
        // Run as mmdebstrap runs it: the links exist, with their targets, and resolve.
        let tmp = tempfile::tempdir().unwrap();
        let st = std::process::Command::new("sh")
            .args(["-c", &hook, "hook"])
            .arg(tmp.path())
            .status()
            .unwrap();
        assert!(st.success());
        for (p, t) in [
            ("bin", "usr/bin"),
            ("lib", "usr/lib"),
            ("lib64", "/usr/lib/x86_64-linux-gnu"),
            ("sbin", "usr/sbin"),
        ] {
            assert_eq!(
                std::fs::read_link(tmp.path().join(p)).unwrap(),
                Path::new(t),
                "{p}"
            );
        }
        assert!(tmp.path().join("usr/lib/x86_64-linux-gnu").is_dir());
        assert!(tmp.path().join("usr/bin").is_dir());
    }

    #[test]
    fn unmerged_needs_no_hook_unless_the_merge_packages_would_act() {
        let dirs = [
            entry("/bin", FileKind::Dir, None),
            entry("/lib", FileKind::Dir, None),
            entry("/lib64", FileKind::Dir, None),
            entry("/sbin", FileKind::Dir, None),
        ];
        let l = layout(&dirs, &[pkg("bash")]);
        assert_eq!(l.kind, LayoutKind::Unmerged);
        assert_eq!(l.setup_hook().unwrap(), None);
        assert!(l
            .describe()
            .starts_with("unmerged /usr (/bin, /lib, /lib64, /sbin"));

        // usr-is-merged on an unmerged root: its preinst would fail in the install.
        let l = layout(&dirs, &[pkg("usr-is-merged")]);
        let e = l.check().unwrap_err().to_string();
        assert!(e.contains("cannot be reproduced"), "{e}");
        assert!(e.contains("usr-is-merged"), "{e}");
        // ...unless the source carries the file that tells it to leave the system alone.
        let mut with_skip = dirs.to_vec();
        with_skip.push(entry(SKIP_CONVERSION, FileKind::File, None));
        let l = layout(&with_skip, &[pkg("usr-is-merged")]);
        let hook = l.setup_hook().unwrap().unwrap();
        assert!(hook.contains(SKIP_PHRASE), "{hook}");
    }

    #[test]
    fn mixed_and_foreign_layouts_fail_with_what_is_wrong() {
        let l = layout(
            &[
                entry("/bin", FileKind::Symlink, Some("usr/bin")),
                entry("/sbin", FileKind::Dir, None),
            ],
            &[],
        );
        assert_eq!(l.kind, LayoutKind::Mixed);
        let e = l.setup_hook().unwrap_err().to_string();
        assert!(e.contains("/bin -> usr/bin, /sbin is a directory"), "{e}");

        for bad in ["/opt/bin", "usr/../etc", "usr/b'in"] {
            let l = layout(&[entry("/bin", FileKind::Symlink, Some(bad))], &[]);
            if l.kind == LayoutKind::Merged {
                // Lies in /usr by its words, but no layout names such a directory.
                assert!(l.setup_hook().is_err(), "{bad}");
            } else {
                assert_eq!(l.kind, LayoutKind::Mixed, "{bad}");
                assert!(l.check().is_err(), "{bad}");
            }
        }
        assert_eq!(layout(&[], &[]).kind, LayoutKind::None);
        assert_eq!(layout(&[], &[]).setup_hook().unwrap(), None);
    }
}
