//! Resolving the directory part of in-root paths through the root's symlinks, so that paths a
//! package lists (`/bin/ls`) match the paths a walk of the root finds (`/usr/bin/ls`) on a
//! merged-/usr system. The symlinks come from a lookup, so the same logic serves a real root
//! (dpkg database) and a report (analysis).

use std::collections::HashMap;

/// Caches resolved directories; `readlink(path)` returns the target when the in-root `path`
/// is a symlink.
pub struct Canon<F: FnMut(&[u8]) -> Option<Vec<u8>>> {
    readlink: F,
    dirs: HashMap<Vec<u8>, Vec<u8>>,
}

impl<F: FnMut(&[u8]) -> Option<Vec<u8>>> Canon<F> {
    /// A resolver over the given symlink lookup.
    pub fn new(readlink: F) -> Self {
        Canon {
            readlink,
            dirs: HashMap::new(),
        }
    }

    /// The path with its parent directory resolved; the last component is kept as is because
    /// a package may own the symlink itself.
    pub fn path(&mut self, path: &[u8]) -> Vec<u8> {
        let (parent, name) = split_last(path);
        join(&self.dir(parent, 0), name)
    }

    fn dir(&mut self, dir: &[u8], depth: u32) -> Vec<u8> {
        if dir.is_empty() || dir == b"/" {
            return b"/".to_vec();
        }
        if let Some(c) = self.dirs.get(dir) {
            return c.clone();
        }
        let (parent, name) = split_last(dir);
        let cparent = self.dir(parent, depth);
        let candidate = join(&cparent, name);
        // A loop limit, as the kernel has, so a symlink cycle cannot hang the resolver.
        let resolved = match (depth < 40).then(|| (self.readlink)(&candidate)).flatten() {
            Some(t) => {
                let target = if t.starts_with(b"/") {
                    lexical(b"/", &t)
                } else {
                    lexical(&cparent, &t)
                };
                self.dir(&target, depth + 1)
            }
            None => candidate,
        };
        self.dirs.insert(dir.to_vec(), resolved.clone());
        resolved
    }
}

fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) => (b"/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"/", path),
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = dir.to_vec();
    if out != b"/" {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// Applies a relative path to a base lexically, `..` popping a component (never above `/`).
pub fn lexical(base: &[u8], rel: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = base
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    for c in rel.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::new();
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_paths() {
        assert_eq!(lexical(b"/usr/lib", b"../bin"), b"/usr/bin");
        assert_eq!(lexical(b"/", b"../../x"), b"/x");
    }

    #[test]
    fn resolves_merged_usr_and_relative_links() {
        let links: HashMap<&[u8], &[u8]> = [
            (b"/bin".as_slice(), b"usr/bin".as_slice()),
            (b"/usr/lib64".as_slice(), b"/usr/lib".as_slice()),
            (b"/loop".as_slice(), b"/loop".as_slice()),
        ]
        .into_iter()
        .collect();
        let mut c = Canon::new(|p: &[u8]| links.get(p).map(|t| t.to_vec()));
        assert_eq!(c.path(b"/bin/ls"), b"/usr/bin/ls");
        assert_eq!(c.path(b"/bin"), b"/bin");
        assert_eq!(c.path(b"/usr/lib64/ld.so"), b"/usr/lib/ld.so");
        assert_eq!(c.path(b"/loop/x"), b"/loop/x");
    }
}
