//! Comparing two reports: packages added, removed or changed, files added, removed or modified.
//!
//! Both reports list files in walk order (depth first, names in byte order), so one merge pass
//! over two streams finds every difference with flat memory.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{FileEntry, FileKind, RawPath};
use crate::report::ReportReader;
use crate::Result;

/// A package difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageChange {
    /// Package name (`name:arch` for foreign architectures).
    pub name: String,
    /// Version in the first report, if there.
    pub before: Option<String>,
    /// Version in the second report, if there.
    pub after: Option<String>,
}

/// A file difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// In-root path.
    pub path: RawPath,
    /// `added`, `removed` or `modified`.
    pub status: &'static str,
    /// For `modified`: what differs (`content`, `mode`, `owner`, `mtime`, `kind`, `target`,
    /// `xattrs`, `device`).
    pub what: Vec<&'static str>,
}

/// Everything that differs between two reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Packages added, removed, or at another version.
    pub packages: Vec<PackageChange>,
    /// Files added, removed or modified, in walk order.
    pub files: Vec<FileChange>,
}

impl Comparison {
    /// The JSON form: `{"packages": [{name, before, after}], "files": [{path | path_b64,
    /// status, what}]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let files: Vec<serde_json::Value> = self
            .files
            .iter()
            .map(|f| {
                let mut v = serde_json::json!({ "status": f.status, "what": f.what });
                match crate::rawpath::to_text(&f.path) {
                    crate::rawpath::TextPath::Utf8(p) => v["path"] = p.into(),
                    crate::rawpath::TextPath::Base64(b) => v["path_b64"] = b.into(),
                }
                v
            })
            .collect();
        serde_json::json!({ "packages": self.packages, "files": files })
    }
}

/// Orders paths as the walk does: component by component, which is byte order with `/`
/// sorting before every other byte.
pub fn walk_order(a: &[u8], b: &[u8]) -> Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { c as u16 + 1 };
    a.iter().map(|&c| key(c)).cmp(b.iter().map(|&c| key(c)))
}

pub(crate) fn file_diff(a: &FileEntry, b: &FileEntry) -> Vec<&'static str> {
    let mut what = Vec::new();
    let reg = |k: FileKind| {
        if k == FileKind::Hardlink {
            FileKind::File
        } else {
            k
        }
    };
    if reg(a.kind) != reg(b.kind) {
        what.push("kind");
    }
    // A directory's size is how many blocks its filesystem gave its entries, not content.
    if a.sha256 != b.sha256 || (a.size != b.size && a.kind != FileKind::Dir) {
        what.push("content");
    }
    if a.mode != b.mode {
        what.push("mode");
    }
    if a.uid != b.uid || a.gid != b.gid {
        what.push("owner");
    }
    if a.kind != FileKind::Dir && (a.mtime, a.mtime_nsec) != (b.mtime, b.mtime_nsec) {
        what.push("mtime");
    }
    if a.kind == FileKind::Symlink && a.target != b.target {
        what.push("target");
    }
    if a.xattrs != b.xattrs {
        what.push("xattrs");
    }
    if a.rdev != b.rdev {
        what.push("device");
    }
    what
}

/// Compares report `a` (before) with report `b` (after).
pub fn compare(mut a: ReportReader, mut b: ReportReader) -> Result<Comparison> {
    let mut out = Comparison::default();
    let pk = |r: &ReportReader| -> BTreeMap<String, String> {
        let keys = crate::pkgdb::package_keys(&r.header().packages);
        keys.into_iter()
            .zip(&r.header().packages)
            .map(|(k, p)| (k, p.version.clone()))
            .collect()
    };
    let (pa, pb) = (pk(&a), pk(&b));
    for (name, v) in &pa {
        match pb.get(name) {
            None => out.packages.push(PackageChange {
                name: name.clone(),
                before: Some(v.clone()),
                after: None,
            }),
            Some(w) if w != v => out.packages.push(PackageChange {
                name: name.clone(),
                before: Some(v.clone()),
                after: Some(w.clone()),
            }),
            _ => {}
        }
    }
    for (name, w) in &pb {
        if !pa.contains_key(name) {
            out.packages.push(PackageChange {
                name: name.clone(),
                before: None,
                after: Some(w.clone()),
            });
        }
    }
    out.packages.sort_by(|x, y| x.name.cmp(&y.name));

    let (mut x, mut y) = (a.next_file()?, b.next_file()?);
    loop {
        let ord = match (&x, &y) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(p), Some(q)) => walk_order(&p.path, &q.path),
        };
        match ord {
            Ordering::Less => {
                let e = x.take().expect("present");
                out.files.push(FileChange {
                    path: e.path,
                    status: "removed",
                    what: Vec::new(),
                });
                x = a.next_file()?;
            }
            Ordering::Greater => {
                let e = y.take().expect("present");
                out.files.push(FileChange {
                    path: e.path,
                    status: "added",
                    what: Vec::new(),
                });
                y = b.next_file()?;
            }
            Ordering::Equal => {
                let (p, q) = (x.take().expect("present"), y.take().expect("present"));
                let what = file_diff(&p, &q);
                if !what.is_empty() {
                    out.files.push(FileChange {
                        path: q.path,
                        status: "modified",
                        what,
                    });
                }
                x = a.next_file()?;
                y = b.next_file()?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_order_puts_children_before_siblings_with_lower_bytes() {
        let mut v: Vec<&[u8]> = vec![b"/a-c", b"/a/b", b"/a", b"/", b"/a b"];
        v.sort_by(|a, b| walk_order(a, b));
        assert_eq!(v, [b"/".as_slice(), b"/a", b"/a/b", b"/a b", b"/a-c"]);
    }
}
