//! `Packages` indexes: one paragraph per binary package, reduced to what locating and checking
//! a `.deb` needs.

use std::io::BufRead;

use super::{err, parse_sha256, PackageKey, PackageRecord, PackageRelations};
use crate::{deb822, Result};

/// Reads a decompressed `Packages` index named `what`, keeping the packages whose architecture
/// `keep` accepts. Paragraphs are parsed one at a time: the Debian main index is ~50 MB of text,
/// most of it descriptions that are never needed.
pub(crate) fn parse(
    mut input: impl BufRead,
    keep: impl Fn(&str) -> bool,
    what: &str,
) -> Result<Vec<PackageRecord>> {
    let mut out = Vec::new();
    let mut para = String::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| err(what, format!("reading: {e}")))?;
        let blank = line.iter().all(u8::is_ascii_whitespace);
        if n > 0 && !blank {
            // Old indexes may hold Latin-1 descriptions; the fields kept here are ASCII.
            para.push_str(&String::from_utf8_lossy(&line));
            continue;
        }
        if !para.is_empty() {
            for p in deb822::parse(&para) {
                if let Some(rec) = record(&p, what)? {
                    if keep(&rec.key.arch) {
                        out.push(rec);
                    }
                }
            }
            para.clear();
        }
        if n == 0 {
            return Ok(out);
        }
    }
}

fn record(p: &deb822::Paragraph, what: &str) -> Result<Option<PackageRecord>> {
    let Some(name) = p.get("Package") else {
        return Ok(None);
    };
    let field = |f: &str| {
        p.get(f)
            .ok_or_else(|| err(what, format!("package {name} has no {f} field")))
    };
    let key = PackageKey::new(name, field("Version")?, field("Architecture")?);
    let filename = field("Filename")?;
    let filename = filename.strip_prefix("./").unwrap_or(filename).to_string();
    let size = field("Size")?
        .parse()
        .map_err(|_| err(what, format!("package {key}: malformed Size")))?;
    let sha256 = parse_sha256(field("SHA256")?)
        .ok_or_else(|| err(what, format!("package {key}: malformed SHA256")))?;
    let source = p
        .get("Source")
        .and_then(|s| s.split_whitespace().next())
        .map(str::to_string);
    Ok(Some(PackageRecord {
        key,
        filename,
        size,
        sha256,
        source,
        relations: PackageRelations::of(p),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records() {
        let d = "9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5";
        let text = format!(
            "Package: a\nSource: asrc (1.0)\nVersion: 1:1.0-1\nArchitecture: amd64\n\
             Filename: ./pool/a.deb\nSize: 12\nSHA256: {d}\nDescription: x\n long\n\n  \n\
             Package: b\nVersion: 2\nArchitecture: arm64\nFilename: pool/b.deb\nSize: 3\nSHA256: {d}\n"
        );
        let r = parse(text.as_bytes(), |a| a == "amd64", "t").unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].key, PackageKey::new("a", "1:1.0-1", "amd64"));
        assert_eq!(r[0].filename, "pool/a.deb");
        assert_eq!(r[0].source.as_deref(), Some("asrc"));
        assert_eq!(r[0].size, 12);
        let e = parse(&b"Package: c\nVersion: 1\n"[..], |_| true, "idx").unwrap_err();
        assert!(
            e.to_string().contains("idx") && e.to_string().contains("package c"),
            "{e}"
        );
    }
}
