//! Checks that a report is well formed before anything uses it.
//!
//! A report comes from a scanned machine and is hostile: its paths are joined to build roots,
//! its hard links name files to link to, its strings end up in databases and messages. Every
//! [`super::ReportReader`] runs a [`Validator`] over what it reads, so that no consumer sees an
//! entry that breaks these rules:
//!
//! - paths are absolute and normalised: no `.`, `..` or empty component, no trailing `/`, no
//!   NUL byte, at most [`MAX_PATH`] bytes;
//! - entries come in walk order ([`crate::analysis::walk_order`]), each path once;
//! - a hard link names an earlier regular file of the same report; a symlink target is
//!   non-empty, without NUL, at most [`MAX_PATH`] bytes; other kinds have no target;
//! - strings (machine facts, names, xattrs) and lists are bounded;
//! - the report as a whole stays within [`ReportLimits`] (entries, decoded bytes).
//!
//! The check streams: it keeps the previous path and a 128-bit digest of each regular file's
//! path (for hard links), never the entries themselves.

use std::cmp::Ordering;
use std::collections::HashSet;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::analysis::walk_order;
use crate::model::{FileEntry, FileKind, ReportHeader, ReportTrailer};
use crate::rawpath::display;
use crate::{Error, Result};

/// Longest path or link target accepted, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH: usize = 4096;

/// Longest string accepted in machine facts, package fields, names and messages.
pub const MAX_STRING: usize = 4096;

/// Most items of any list in the header (packages, users, mounts...) or in the trailer.
pub const MAX_ITEMS: usize = 1 << 20;

/// Longest extended attribute name (Linux `XATTR_NAME_MAX`).
pub const MAX_XATTR_NAME: usize = 255;

/// Largest extended attribute value (Linux `XATTR_SIZE_MAX`).
pub const MAX_XATTR_VALUE: usize = 64 << 10;

/// Most extended attributes on one entry.
pub const MAX_XATTRS: usize = 1024;

/// How much a report may hold as a whole: what bounds the work and memory a hostile report
/// (a decompression bomb, a list of a billion entries) can cost its reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportLimits {
    /// Most file entries.
    pub max_entries: u64,
    /// Most bytes once decompressed (native records, or the JSON text).
    pub max_bytes: u64,
}

impl ReportLimits {
    /// Default entries: sixteen times a machine of a million files.
    pub const DEFAULT_MAX_ENTRIES: u64 = 16 << 20;
    /// Default decoded bytes: a million-file report takes a few hundred MiB.
    pub const DEFAULT_MAX_BYTES: u64 = 8 << 30;
}

impl Default for ReportLimits {
    fn default() -> Self {
        ReportLimits {
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}

/// The refusal of a report past one of its limits.
pub(crate) fn too_large(what: &str, message: String) -> Error {
    Error::ReportTooLarge {
        what: what.to_string(),
        message,
    }
}

/// Checks a report's parts as they are read, in order: header, files, trailer.
pub struct Validator {
    what: String,
    limits: ReportLimits,
    previous: Option<Vec<u8>>,
    /// Truncated SHA-256 of the path of every regular file so far.
    regular: HashSet<[u8; 16]>,
    entries: u64,
}

impl Validator {
    /// A validator for the report `what` (named in errors).
    pub fn new(what: &str, limits: ReportLimits) -> Self {
        Validator {
            what: what.to_string(),
            limits,
            previous: None,
            regular: HashSet::new(),
            entries: 0,
        }
    }

    fn bad(&self, message: String) -> Error {
        Error::MalformedReport {
            what: self.what.clone(),
            message,
        }
    }

    /// Checks the header: the scan's root and excludes, and every string and list of the
    /// machine facts and packages.
    pub fn header(&mut self, h: &ReportHeader) -> Result<()> {
        let s = &h.scan;
        if s.root.len() > MAX_PATH || s.root.contains(&0) {
            return Err(self.bad(format!(
                "scan root {:?}: at most {MAX_PATH} bytes, without NUL",
                display(&s.root[..s.root.len().min(200)])
            )));
        }
        self.string("scan.tool", &s.tool)?;
        self.count("scan.excludes", s.excludes.len())?;
        for (i, e) in s.excludes.iter().enumerate() {
            check_path(&e.path)
                .map_err(|m| self.bad(format!("scan.excludes[{i}] {:?}: {m}", shown(&e.path))))?;
            self.string(&format!("scan.excludes[{i}].reason"), &e.reason)?;
        }
        let facts = serde_json::to_value(&h.machine).map_err(|e| self.bad(e.to_string()))?;
        self.facts("machine", &facts)?;
        self.count("packages", h.packages.len())?;
        let packages = serde_json::to_value(&h.packages).map_err(|e| self.bad(e.to_string()))?;
        self.facts("packages", &packages)
    }

    /// Every string and list of a JSON rendering of facts, naming the field at fault.
    fn facts(&self, at: &str, v: &Value) -> Result<()> {
        match v {
            Value::String(s) => self.string(at, s),
            Value::Array(a) => {
                self.count(at, a.len())?;
                for (i, x) in a.iter().enumerate() {
                    self.facts(&format!("{at}[{i}]"), x)?;
                }
                Ok(())
            }
            Value::Object(m) => {
                for (k, x) in m {
                    self.facts(&format!("{at}.{k}"), x)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn string(&self, at: &str, s: &str) -> Result<()> {
        if s.len() > MAX_STRING {
            return Err(self.bad(format!(
                "{at}: {} bytes, more than the {MAX_STRING} allowed",
                s.len()
            )));
        }
        if s.contains('\0') {
            return Err(self.bad(format!("{at}: contains a NUL character")));
        }
        Ok(())
    }

    fn count(&self, at: &str, n: usize) -> Result<()> {
        if n > MAX_ITEMS {
            return Err(too_large(
                &self.what,
                format!("{at}: {n} items, more than the {MAX_ITEMS} allowed"),
            ));
        }
        Ok(())
    }

    /// Checks one file entry against the rules and the entries before it.
    pub fn file(&mut self, f: &FileEntry) -> Result<()> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(too_large(
                &self.what,
                format!("more than {} entries", self.limits.max_entries),
            ));
        }
        let entry = |m: String| self.bad(format!("entry {:?}: {m}", shown(&f.path)));
        check_path(&f.path).map_err(entry)?;
        if let Some(prev) = &self.previous {
            match walk_order(prev, &f.path) {
                Ordering::Less => {}
                Ordering::Equal => return Err(entry("listed twice".into())),
                Ordering::Greater => {
                    return Err(entry(format!(
                        "out of order: it comes after {:?}",
                        shown(prev)
                    )))
                }
            }
        }
        match (f.kind, &f.target) {
            (FileKind::Hardlink, None) => return Err(entry("a hard link without a target".into())),
            (FileKind::Hardlink, Some(t)) => {
                check_path(t)
                    .map_err(|m| entry(format!("hard link target {:?}: {m}", shown(t))))?;
                if !self.regular.contains(&key(t)) {
                    return Err(entry(format!(
                        "hard link to {:?}, which is not an earlier regular file of the report",
                        shown(t)
                    )));
                }
            }
            (FileKind::Symlink, None) => return Err(entry("a symlink without a target".into())),
            (FileKind::Symlink, Some(t)) => {
                if t.is_empty() || t.len() > MAX_PATH || t.contains(&0) {
                    return Err(entry(format!(
                        "symlink target {:?}: 1 to {MAX_PATH} bytes, without NUL",
                        shown(t)
                    )));
                }
            }
            (k, Some(_)) => {
                return Err(entry(format!("a {} cannot have a link target", k.as_str())))
            }
            (_, None) => {}
        }
        for (what, s) in [
            ("user", &f.user),
            ("group", &f.group),
            ("package", &f.package),
        ] {
            if let Some(s) = s {
                if s.len() > MAX_STRING || s.contains('\0') {
                    return Err(entry(format!(
                        "{what} name of {} bytes: at most {MAX_STRING}, without NUL",
                        s.len()
                    )));
                }
            }
        }
        if f.xattrs.len() > MAX_XATTRS {
            return Err(entry(format!(
                "{} extended attributes, more than the {MAX_XATTRS} allowed",
                f.xattrs.len()
            )));
        }
        for (name, value) in &f.xattrs {
            if name.is_empty() || name.len() > MAX_XATTR_NAME || name.contains('\0') {
                return Err(entry(format!(
                    "extended attribute name {:?}: 1 to {MAX_XATTR_NAME} bytes, without NUL",
                    name.chars().take(100).collect::<String>()
                )));
            }
            if value.len() > MAX_XATTR_VALUE {
                return Err(entry(format!(
                    "extended attribute {name}: {} bytes, more than the {MAX_XATTR_VALUE} allowed",
                    value.len()
                )));
            }
        }
        if f.mode > 0o7777 {
            return Err(entry(format!("mode {:#o} has bits above 0o7777", f.mode)));
        }
        if f.kind == FileKind::File {
            self.regular.insert(key(&f.path));
        }
        match &mut self.previous {
            Some(p) => {
                p.clear();
                p.extend_from_slice(&f.path);
            }
            None => self.previous = Some(f.path.clone()),
        }
        Ok(())
    }

    /// Checks the trailer's errors.
    pub fn trailer(&mut self, t: &ReportTrailer) -> Result<()> {
        self.count("errors", t.errors.len())?;
        for (i, e) in t.errors.iter().enumerate() {
            if e.path.len() > MAX_PATH || e.path.contains(&0) {
                return Err(self.bad(format!(
                    "errors[{i}] path {:?}: at most {MAX_PATH} bytes, without NUL",
                    shown(&e.path)
                )));
            }
            self.string(&format!("errors[{i}].op"), &e.op)?;
            self.string(&format!("errors[{i}].message"), &e.message)?;
        }
        Ok(())
    }
}

/// The digest a regular file's path is remembered by.
fn key(path: &[u8]) -> [u8; 16] {
    let d = Sha256::digest(path);
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// A path for a message: lossy, and cut short when it is long.
fn shown(path: &[u8]) -> String {
    if path.len() > 200 {
        format!("{}...", display(&path[..200]))
    } else {
        display(path)
    }
}

/// Why an in-root path is not absolute and normalised, if it is not.
pub fn check_path(path: &[u8]) -> std::result::Result<(), String> {
    if path.len() > MAX_PATH {
        return Err(format!(
            "{} bytes, more than the {MAX_PATH} allowed",
            path.len()
        ));
    }
    if path.contains(&0) {
        return Err("contains a NUL byte".into());
    }
    if path.first() != Some(&b'/') {
        return Err("not absolute".into());
    }
    if path == b"/" {
        return Ok(());
    }
    for comp in path[1..].split(|&b| b == b'/') {
        match comp {
            b"" => return Err("an empty component (`//` or a trailing `/`)".into()),
            b"." | b".." => {
                return Err(format!("a `{}` component", display(comp)));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FileEntry;

    fn entry(path: &str, kind: FileKind, target: Option<&str>) -> FileEntry {
        FileEntry {
            path: path.as_bytes().to_vec(),
            kind,
            mode: 0o644,
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

    fn run(entries: &[FileEntry]) -> Result<()> {
        let mut v = Validator::new("test", ReportLimits::default());
        v.header(&ReportHeader::default())?;
        for e in entries {
            v.file(e)?;
        }
        Ok(())
    }

    fn refused(entries: &[FileEntry], needle: &str) {
        let e = run(entries).expect_err("accepted").to_string();
        assert!(e.contains(needle), "{needle:?} not in {e}");
    }

    #[test]
    fn a_walk_is_accepted() {
        run(&[
            entry("/", FileKind::Dir, None),
            entry("/etc", FileKind::Dir, None),
            entry("/etc/a", FileKind::File, None),
            entry("/etc/a/b", FileKind::File, None),
            entry("/etc/a.b", FileKind::Hardlink, Some("/etc/a")),
            entry("/etc/l", FileKind::Symlink, Some("../../x")),
        ])
        .unwrap();
    }

    #[test]
    fn each_rule_names_the_entry() {
        let d = |p| entry(p, FileKind::Dir, None);
        refused(&[d("etc")], "entry \"etc\": not absolute");
        refused(&[d("/etc/")], "entry \"/etc/\": an empty component");
        refused(&[d("/etc//x")], "an empty component");
        refused(&[d("/etc/./x")], "a `.` component");
        refused(&[d("/etc/../x")], "a `..` component");
        refused(&[d("/etc/\0x")], "NUL");
        let long = format!("/{}", "a".repeat(MAX_PATH));
        refused(&[d(&long)], "more than the 4096 allowed");
        refused(
            &[d("/b"), d("/a")],
            "entry \"/a\": out of order: it comes after \"/b\"",
        );
        refused(&[d("/a"), d("/a")], "entry \"/a\": listed twice");
        // `/` sorts before every other byte: `/a/b` comes before `/a.b`.
        refused(&[d("/a.b"), d("/a/b")], "out of order");
        refused(
            &[entry("/x", FileKind::Hardlink, Some("/../../etc/shadow"))],
            "hard link target \"/../../etc/shadow\": a `..` component",
        );
        refused(
            &[entry("/x", FileKind::Hardlink, Some("/etc/shadow"))],
            "not an earlier regular file",
        );
        refused(
            &[d("/a"), entry("/b", FileKind::Hardlink, Some("/a"))],
            "not an earlier regular file",
        );
        refused(
            &[
                entry("/a", FileKind::Hardlink, Some("/b")),
                entry("/b", FileKind::File, None),
            ],
            "not an earlier regular file",
        );
        refused(&[entry("/x", FileKind::Hardlink, None)], "without a target");
        refused(&[entry("/x", FileKind::Symlink, None)], "without a target");
        refused(
            &[entry("/x", FileKind::Symlink, Some(""))],
            "symlink target",
        );
        refused(
            &[entry(
                "/x",
                FileKind::Symlink,
                Some(&"a".repeat(MAX_PATH + 1)),
            )],
            "symlink target",
        );
        refused(
            &[entry("/x", FileKind::File, Some("/y"))],
            "a file cannot have a link target",
        );
        let mut e = d("/x");
        e.user = Some("u".repeat(MAX_STRING + 1));
        refused(&[e], "user name of 4097 bytes");
        let mut e = d("/x");
        e.xattrs
            .insert("user.big".into(), vec![0; MAX_XATTR_VALUE + 1]);
        refused(&[e], "extended attribute user.big");
    }

    #[test]
    fn facts_are_bounded() {
        let mut h = ReportHeader::default();
        h.machine.users.push(crate::model::User {
            gecos: "g".repeat(MAX_STRING + 1),
            ..Default::default()
        });
        let e = Validator::new("r", ReportLimits::default())
            .header(&h)
            .unwrap_err()
            .to_string();
        assert!(e.contains("machine.users[0].gecos: 4097 bytes"), "{e}");
        let mut h = ReportHeader::default();
        h.scan.excludes.push(crate::model::Exclude {
            path: b"/proc/../etc".to_vec(),
            contents_only: true,
            reason: String::new(),
        });
        let e = Validator::new("r", ReportLimits::default())
            .header(&h)
            .unwrap_err()
            .to_string();
        assert!(e.contains("scan.excludes[0]"), "{e}");
    }

    #[test]
    fn entries_are_counted() {
        let mut v = Validator::new(
            "r",
            ReportLimits {
                max_entries: 2,
                max_bytes: 1 << 20,
            },
        );
        v.file(&entry("/", FileKind::Dir, None)).unwrap();
        v.file(&entry("/a", FileKind::Dir, None)).unwrap();
        let e = v.file(&entry("/b", FileKind::Dir, None)).unwrap_err();
        assert!(matches!(e, Error::ReportTooLarge { .. }), "{e}");
    }
}
