//! Raw byte paths: joining them to a root and encoding them for text formats.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use base64::Engine;

use crate::model::RawPath;

/// The base64 flavour used for raw paths and xattr values in the JSON form.
pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Joins an in-root absolute path (`/etc/passwd`) to the root it lives under.
pub fn join(root: &Path, path: &[u8]) -> PathBuf {
    let rel = path.strip_prefix(b"/").unwrap_or(path);
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

/// Borrows raw bytes as a `Path`.
pub fn as_path(path: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(path))
}

/// A path for messages: lossy, for humans only, never for lookups.
pub fn display(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// How a raw path appears in the JSON form: as text when it is UTF-8, as base64 otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextPath<'a> {
    /// The bytes are valid UTF-8 (goes in `path`).
    Utf8(&'a str),
    /// The bytes are not UTF-8 (goes in `path_b64`).
    Base64(String),
}

/// Chooses the JSON encoding of a raw path.
pub fn to_text(path: &[u8]) -> TextPath<'_> {
    match std::str::from_utf8(path) {
        Ok(s) => TextPath::Utf8(s),
        Err(_) => TextPath::Base64(B64.encode(path)),
    }
}

/// The raw path of its JSON form: exactly one of `path` (text) and `path_b64` (base64 of the
/// bytes); the error says what is wrong.
pub fn from_text(path: Option<&str>, path_b64: Option<&str>) -> Result<RawPath, String> {
    match (path, path_b64) {
        (Some(p), None) => Ok(p.as_bytes().to_vec()),
        (None, Some(b)) => B64
            .decode(b)
            .map_err(|e| format!("path_b64 {b:?} is not base64: {e}")),
        _ => Err("an entry needs exactly one of path and path_b64".into()),
    }
}

/// Normalises a user-given path inside a root to the in-root absolute form: `srv//app/` and
/// `/srv/app` both become `/srv/app`. `.` components are dropped; `..` is kept out by refusing it.
pub fn normalize(path: &[u8]) -> Option<RawPath> {
    let mut out = Vec::with_capacity(path.len() + 1);
    for comp in path.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return None,
            c => {
                out.push(b'/');
                out.extend_from_slice(c);
            }
        }
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Some(out)
}

/// Whether `path` is `prefix` itself or lies below it (component-wise, not byte-wise).
pub fn is_within(path: &[u8], prefix: &[u8]) -> bool {
    if prefix == b"/" {
        return path.starts_with(b"/");
    }
    path.starts_with(prefix) && (path.len() == prefix.len() || path[prefix.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_and_within() {
        assert_eq!(normalize(b"srv//app/").unwrap(), b"/srv/app");
        assert_eq!(normalize(b"/").unwrap(), b"/");
        assert_eq!(normalize(b"./a/./b").unwrap(), b"/a/b");
        assert!(normalize(b"/a/../b").is_none());
        assert!(is_within(b"/srv/app/x", b"/srv/app"));
        assert!(is_within(b"/srv/app", b"/srv/app"));
        assert!(!is_within(b"/srv/apple", b"/srv/app"));
        assert!(is_within(b"/x", b"/"));
    }

    #[test]
    fn text_encoding() {
        assert_eq!(to_text(b"/etc"), TextPath::Utf8("/etc"));
        assert_eq!(to_text(b"/caf\xe9"), TextPath::Base64("L2NhZuk=".into()));
        assert_eq!(join(Path::new("/r"), b"/"), Path::new("/r"));
        assert_eq!(join(Path::new("/r"), b"/etc/x"), Path::new("/r/etc/x"));
    }
}

/// Parses a command-line value into a raw path, byte for byte: non-UTF-8 names are common on
/// the machines being scanned.
#[cfg(feature = "clap")]
#[derive(Debug, Clone, Copy, Default)]
pub struct RawPathParser;

#[cfg(feature = "clap")]
impl clap::builder::TypedValueParser for RawPathParser {
    type Value = RawPath;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<RawPath, clap::Error> {
        Ok(value.as_bytes().to_vec())
    }
}
