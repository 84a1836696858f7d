//! The `Packages` index of a flat repository: one paragraph per `.deb` of the directory, its
//! control file plus where it is and its digest, as dpkg-scanpackages writes it.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::TempFile;
use crate::blobstore::to_hex;
use crate::{Error, Result};

/// Fields the index sets itself: a control file holding them would contradict the index.
const INDEX_FIELDS: &[&str] = &["Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512"];

/// Regenerates the `Packages` index of the flat repository `repo_dir` from the `.deb` files it
/// holds, and returns how many it lists. Each paragraph is the package's control file as built
/// (`Package`, `Version`, `Architecture`, `Maintainer`, `Installed-Size`, the relationship
/// fields, `Description`...) followed by `Filename: ./NAME.deb`, `Size` and `SHA256`, so that
/// `deb [trusted=yes] file:REPO_DIR ./` serves them to apt. No `MD5sum` is written: apt does
/// not need it. The index is replaced atomically.
pub fn write_flat_index(repo_dir: &Path) -> Result<usize> {
    let rd = std::fs::read_dir(repo_dir).map_err(|e| Error::io("read directory", repo_dir, e))?;
    let mut debs = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("read directory", repo_dir, e))?;
        let name = ent.file_name();
        let bytes = name.as_bytes();
        // Names starting with a dot are files being written (see `recreate_packages`).
        if !bytes.ends_with(b".deb") || bytes.starts_with(b".") {
            continue;
        }
        let path = ent.path();
        let ft = ent
            .file_type()
            .map_err(|e| Error::io("stat", path.clone(), e))?;
        if !ft.is_file() {
            continue;
        }
        // A name with blanks or control characters cannot stand in a `Filename:` line.
        let name = std::str::from_utf8(bytes)
            .ok()
            .filter(|n| n.bytes().all(|b| b > b' ' && b != 0x7f))
            .ok_or_else(|| index_err(&path, "the file name cannot be listed in an index"))?;
        debs.push((name.to_string(), path));
    }
    debs.sort();

    let mut index = Vec::new();
    for (name, path) in &debs {
        if !index.is_empty() {
            index.push(b'\n');
        }
        index.extend_from_slice(&paragraph(name, path)?);
    }
    let dest = repo_dir.join("Packages");
    let tmp = TempFile::new(repo_dir, "Packages");
    let mut f = File::create_new(tmp.path()).map_err(|e| Error::io("create", tmp.path(), e))?;
    f.write_all(&index)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io("write", tmp.path(), e))?;
    tmp.persist(&dest)?;
    Ok(debs.len())
}

/// The index paragraph of one `.deb`, read in one pass: the control file comes from the
/// archive while the whole stream is hashed.
fn paragraph(name: &str, path: &Path) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut hashing = Hashing {
        inner: BufReader::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
        n: 0,
    };
    let control = crate::repo::deb::read_control(&mut hashing).map_err(|m| index_err(path, m))?;
    // Whatever follows the last member (there should be nothing) is part of the file.
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| Error::io("read", path, e))?;
    let sha: [u8; 32] = hashing.hasher.finalize().into();

    let fields = control_fields(&control);
    if !fields
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case(b"Package"))
    {
        return Err(index_err(path, "the control file has no Package field"));
    }
    let mut out = Vec::new();
    for (key, lines) in &fields {
        if !INDEX_FIELDS
            .iter()
            .any(|f| key.eq_ignore_ascii_case(f.as_bytes()))
        {
            out.extend_from_slice(lines);
        }
    }
    out.extend_from_slice(
        format!(
            "Filename: ./{name}\nSize: {}\nSHA256: {}\n",
            hashing.n,
            to_hex(&sha)
        )
        .as_bytes(),
    );
    Ok(out)
}

/// The fields of the first paragraph of a control file, each with its raw lines (continuation
/// lines included, newline-terminated), so that they are copied byte for byte.
fn control_fields(text: &[u8]) -> Vec<(&[u8], Vec<u8>)> {
    let mut fields: Vec<(&[u8], Vec<u8>)> = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            if fields.is_empty() {
                continue;
            }
            break;
        }
        if line.starts_with(b"#") {
            continue;
        }
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            if let Some((_, raw)) = fields.last_mut() {
                raw.extend_from_slice(line);
                raw.push(b'\n');
            }
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let mut raw = line.to_vec();
        raw.push(b'\n');
        fields.push((line[..colon].trim_ascii(), raw));
    }
    fields
}

fn index_err(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Repo {
        what: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Hashes and counts what is read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    n: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_fields_of_the_first_paragraph() {
        let text = b"\nPackage: a\nDescription: short\n long\n .\n more\n# comment\nVersion: 1\n\nPackage: b\n";
        let f = control_fields(text);
        let keys: Vec<&[u8]> = f.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [&b"Package"[..], b"Description", b"Version"]);
        assert_eq!(f[1].1, b"Description: short\n long\n .\n more\n");
    }
}
