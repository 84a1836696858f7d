//! `Release` files: the signed list of index files and their digests.

use std::collections::HashMap;

use super::parse_sha256;
use crate::deb822;

/// What a `Release` file says that matters here.
#[derive(Debug, Default)]
pub(crate) struct Release {
    /// Index file path (relative to the Release file's directory) to (size, SHA-256).
    pub sha256: HashMap<String, (u64, [u8; 32])>,
    /// `Acquire-By-Hash: yes`: indexes are also published under `by-hash/SHA256/<digest>`,
    /// which cannot change under a reader while the mirror updates.
    pub by_hash: bool,
    /// `No-Support-for-Architecture-all: Packages`: `all` packages are listed in every
    /// `binary-ARCH` index, so `binary-all` must not be read (it would only duplicate them).
    pub all_in_arch_indexes: bool,
    /// `Architectures`, if given.
    pub architectures: Option<Vec<String>>,
}

impl Release {
    /// Parses Release text; malformed `SHA256` lines are errors (they could hide a file).
    pub fn parse(text: &str) -> Result<Self, String> {
        let para = deb822::parse(text).into_iter().next().unwrap_or_default();
        let mut out = Release {
            by_hash: para
                .get("Acquire-By-Hash")
                .is_some_and(|v| v.eq_ignore_ascii_case("yes")),
            all_in_arch_indexes: para
                .get("No-Support-for-Architecture-all")
                .is_some_and(|v| v.split_whitespace().any(|w| w == "Packages")),
            architectures: para
                .get("Architectures")
                .map(|v| v.split_whitespace().map(str::to_string).collect()),
            ..Release::default()
        };
        for line in para.get("SHA256").unwrap_or("").lines() {
            let mut w = line.split_whitespace();
            let (Some(digest), Some(size), Some(path), None) =
                (w.next(), w.next(), w.next(), w.next())
            else {
                if line.trim().is_empty() {
                    continue;
                }
                return Err(format!("malformed SHA256 line {line:?}"));
            };
            let digest =
                parse_sha256(digest).ok_or_else(|| format!("malformed SHA256 line {line:?}"))?;
            let size = size
                .parse()
                .map_err(|_| format!("malformed size in SHA256 line {line:?}"))?;
            out.sha256.insert(path.to_string(), (size, digest));
        }
        Ok(out)
    }
}

/// The signed text of a clearsigned message, without checking the signature: for
/// `[trusted=yes]` repositories, whose InRelease is read but not verified.
pub(crate) fn strip_clearsign(text: &str) -> Result<String, String> {
    let mut lines = text.lines();
    if lines.next().map(str::trim_end) != Some("-----BEGIN PGP SIGNED MESSAGE-----") {
        return Err("not a clearsigned message".into());
    }
    // Armor headers (`Hash: SHA256`) end at the first empty line.
    for l in lines.by_ref() {
        if l.trim().is_empty() {
            break;
        }
    }
    let mut out = String::new();
    for l in lines {
        if l.trim_end() == "-----BEGIN PGP SIGNATURE-----" {
            return Ok(out);
        }
        // Dash-escaping (RFC 4880 7.1) protects lines that start with a dash.
        out.push_str(l.strip_prefix("- ").unwrap_or(l));
        out.push('\n');
    }
    Err("clearsigned message without signature".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5";

    #[test]
    fn sha256_section() {
        let text = format!(
            "Origin: Debian\nAcquire-By-Hash: yes\nNo-Support-for-Architecture-all: Packages\n\
             Architectures: all amd64\nMD5Sum:\n 0ed6d4c8891eb86358b94bb35d9e4da4  1484322 main/x\n\
             SHA256:\n {DIGEST}  8790396 main/binary-amd64/Packages.xz\n {DIGEST} 12 main/binary-amd64/Packages\n"
        );
        let r = Release::parse(&text).unwrap();
        assert!(r.by_hash && r.all_in_arch_indexes);
        assert_eq!(r.architectures.unwrap(), ["all", "amd64"]);
        assert_eq!(r.sha256.len(), 2);
        let (size, digest) = r.sha256["main/binary-amd64/Packages.xz"];
        assert_eq!(size, 8790396);
        assert_eq!(super::super::hex(&digest), DIGEST);
        assert!(!r.sha256.contains_key("main/x"));

        assert!(Release::parse("SHA256:\n zz 12 main/x\n").is_err());
        assert!(Release::parse(&format!("SHA256:\n {DIGEST} x main/x\n")).is_err());
        assert!(Release::parse("Origin: x\n").unwrap().sha256.is_empty());
    }

    #[test]
    fn clearsign() {
        let msg = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: X\n- -dash\n-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n";
        assert_eq!(strip_clearsign(msg).unwrap(), "Origin: X\n-dash\n");
        assert!(strip_clearsign("Origin: X\n").is_err());
    }
}
