//! Member names: in-root paths without their leading `/` (the root itself is `./`), directories
//! with a trailing `/`, and the strict reverse mapping a reader applies to untrusted names.

use crate::model::RawPath;

/// Writes the member name of in-root `path` into `out`.
pub fn member_name(path: &[u8], dir: bool, out: &mut Vec<u8>) {
    out.clear();
    let rel = path.strip_prefix(b"/").unwrap_or(path);
    if rel.is_empty() {
        out.extend_from_slice(b"./");
        return;
    }
    out.extend_from_slice(rel);
    if dir {
        out.push(b'/');
    }
}

/// Whether `path` is a clean in-root path (`/`, or `/a/b` without empty, `.` or `..`
/// components): the writer reads nothing else, so a bad report cannot make it leave the root.
pub fn is_clean(path: &[u8]) -> bool {
    path == b"/"
        || path.strip_prefix(b"/").is_some_and(|rel| {
            rel.split(|&c| c == b'/')
                .all(|c| !matches!(c, b"" | b"." | b".."))
        })
}

/// Maps a member name (or hard link target) from an archive back to an in-root path. Refuses
/// absolute names, `..`, `.` and empty components, and NUL bytes: nothing in an overlay may
/// point outside the tree or name one path two ways. One trailing `/` is allowed when `dir`.
pub fn in_root_path(name: &[u8], dir: bool) -> Result<RawPath, &'static str> {
    if name == b"./" || name == b"." {
        return Ok(b"/".to_vec());
    }
    if name.starts_with(b"/") {
        return Err("absolute path");
    }
    let name = match name.strip_suffix(b"/") {
        Some(n) if dir => n,
        Some(_) => return Err("trailing '/' on something that is not a directory"),
        None => name,
    };
    if name.is_empty() || name.contains(&0) {
        return Err("empty name or NUL byte in name");
    }
    let mut out = Vec::with_capacity(name.len() + 1);
    for comp in name.split(|&c| c == b'/') {
        match comp {
            b".." => return Err("'..' component"),
            b"" | b"." => return Err("empty or '.' component"),
            _ => {
                out.push(b'/');
                out.extend_from_slice(comp);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways() {
        let mut n = Vec::new();
        member_name(b"/", true, &mut n);
        assert_eq!(n, b"./");
        assert_eq!(in_root_path(&n, true).unwrap(), b"/");
        member_name(b"/etc/nginx", true, &mut n);
        assert_eq!(n, b"etc/nginx/");
        assert_eq!(in_root_path(&n, true).unwrap(), b"/etc/nginx");
        member_name(b"/srv/caf\xe9", false, &mut n);
        assert_eq!(in_root_path(&n, false).unwrap(), b"/srv/caf\xe9");
        for bad in [
            &b"/etc/x"[..],
            b"a/../b",
            b"..",
            b"a//b",
            b"./a",
            b"a/./b",
            b"",
            b"a\0b",
        ] {
            assert!(in_root_path(bad, true).is_err(), "{bad:?}");
        }
        assert!(in_root_path(b"etc/x/", false).is_err());
        assert!(is_clean(b"/") && is_clean(b"/etc/caf\xe9") && is_clean(b"/a/.b"));
        for bad in [
            &b""[..],
            b"etc",
            b"/etc/",
            b"//etc",
            b"/a/../b",
            b"/a/./b",
            b"/..",
        ] {
            assert!(!is_clean(bad), "{bad:?}");
        }
    }
}
