//! The directory walk: depth first, children in byte order, so a report of the same tree is
//! always in the same order whatever readdir returns.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Excludes, Job};
use crate::model::{RawPath, ScanError};
use crate::rawpath;

struct Dir {
    path: RawPath,
    /// Children still to visit, in reverse order so that `pop` yields the smallest name.
    children: Vec<(Vec<u8>, bool)>,
}

/// Lists the children of a directory, sorted, with whether each is a directory (from the
/// directory entry type, so no stat is needed here).
fn list(root: &Path, dir: &[u8]) -> std::io::Result<Vec<(Vec<u8>, bool)>> {
    let mut out = Vec::new();
    for ent in std::fs::read_dir(rawpath::join(root, dir))? {
        let ent = ent?;
        let is_dir = ent.file_type().map(|t| t.is_dir()).unwrap_or(false);
        out.push((ent.file_name().as_bytes().to_vec(), is_dir));
    }
    out.sort_unstable_by(|a, b| b.0.cmp(&a.0));
    Ok(out)
}

fn child(dir: &[u8], name: &[u8]) -> RawPath {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    if dir != b"/" {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Walks `root`, handing each job to `emit` in walk order. Stops early when `emit` returns
/// false or `stop` is set.
pub(super) fn walk(
    root: &Path,
    excludes: &Excludes,
    stop: &AtomicBool,
    mut emit: impl FnMut(Job) -> bool,
) {
    let mut send = |job: Job| !stop.load(Ordering::Relaxed) && emit(job);
    let mut stack: Vec<Dir> = Vec::new();
    let mut pending_dir = Some(b"/".to_vec());
    if !send(Job::Inspect(b"/".to_vec())) {
        return;
    }
    loop {
        if let Some(path) = pending_dir.take() {
            match list(root, &path) {
                Ok(children) => stack.push(Dir { path, children }),
                Err(e) => {
                    let op = if e.kind() == std::io::ErrorKind::NotFound {
                        "vanished"
                    } else {
                        "readdir"
                    };
                    let error = ScanError {
                        path,
                        op: op.into(),
                        message: e.to_string(),
                    };
                    if !send(Job::Failed(error)) {
                        return;
                    }
                }
            }
        }
        let Some(top) = stack.last_mut() else {
            return;
        };
        let Some((name, is_dir)) = top.children.pop() else {
            stack.pop();
            continue;
        };
        let path = child(&top.path, &name);
        let descend = match excludes.check(&path) {
            Some(false) => continue,
            Some(true) => false,
            None => is_dir,
        };
        if descend {
            pending_dir = Some(path.clone());
        }
        if !send(Job::Inspect(path)) {
            return;
        }
    }
}
