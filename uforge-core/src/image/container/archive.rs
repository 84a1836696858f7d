//! The outer archives of image files (OCI layout, docker-archive, OVA): plain ustar archives of
//! a few members, one of which may be streamed in before its size and name are known.
//!
//! A streamed member gets a placeholder header that is rewritten in place once the data is
//! written, so a layer goes straight into the image file: no temporary copy and no second pass.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

const BLOCK: u64 = 512;
/// Sizes from here on do not fit ustar's 11 octal digits.
const USTAR_MAX: u64 = 1 << 33;

/// A ustar archive written to a file.
pub(crate) struct Archive {
    w: BufWriter<File>,
    path: PathBuf,
    pos: u64,
    mtime: u64,
}

/// A member whose header is written once its data is complete ([`Archive::begin`]).
#[must_use]
pub(crate) struct Pending {
    header_at: u64,
}

impl Archive {
    /// Starts an archive in the new file `path`; members get modification time `mtime`.
    pub(crate) fn create(path: &Path, mtime: u64) -> Result<Self> {
        let file = File::create(path).map_err(|e| Error::io("create", path, e))?;
        Ok(Archive {
            w: BufWriter::with_capacity(1 << 20, file),
            path: path.to_path_buf(),
            pos: 0,
            mtime,
        })
    }

    fn put(&mut self, data: &[u8]) -> Result<()> {
        self.w
            .write_all(data)
            .map_err(|e| Error::io("write", &self.path, e))?;
        self.pos += data.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<()> {
        let rem = self.pos % BLOCK;
        if rem != 0 {
            self.put(&[0; BLOCK as usize][..(BLOCK - rem) as usize])?;
        }
        Ok(())
    }

    fn header(&self, name: &str, kind: tar::EntryType, size: u64) -> Result<tar::Header> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name)
            .map_err(|e| Error::Invalid(format!("cannot name archive member `{name}`: {e}")))?;
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        // Beyond ustar's range the tar crate writes the size in base 256, which GNU tar, bsdtar
        // and Go's archive/tar (docker, skopeo, umoci) all read.
        h.set_size(size);
        h.set_cksum();
        Ok(h)
    }

    /// Adds a directory.
    pub(crate) fn dir(&mut self, name: &str) -> Result<()> {
        let h = self.header(name, tar::EntryType::Directory, 0)?;
        self.put(h.as_bytes())
    }

    /// Adds a regular file holding `data`.
    pub(crate) fn file(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let h = self.header(name, tar::EntryType::Regular, data.len() as u64)?;
        self.put(h.as_bytes())?;
        self.put(data)?;
        self.pad()
    }

    /// Adds a regular file of `size` bytes read from `from` (`what` names it in errors).
    pub(crate) fn copy(
        &mut self,
        name: &str,
        size: u64,
        from: impl Read,
        what: &Path,
    ) -> Result<()> {
        if size >= USTAR_MAX {
            // Large members get their size in a pax record too: the POSIX way, which readers
            // that know no base-256 numbers still understand.
            let record = pax_record("size", &size.to_string());
            let h = self.header(
                "PaxHeaders/member",
                tar::EntryType::XHeader,
                record.len() as u64,
            )?;
            self.put(h.as_bytes())?;
            self.put(&record)?;
            self.pad()?;
        }
        let h = self.header(name, tar::EntryType::Regular, size)?;
        self.put(h.as_bytes())?;
        let copied = std::io::copy(&mut from.take(size), &mut self.w)
            .map_err(|e| Error::io("copy", what, e))?;
        self.pos += copied;
        if copied != size {
            return Err(Error::Invalid(format!(
                "{} shrank while being archived ({copied} of {size} bytes)",
                what.display()
            )));
        }
        self.pad()
    }

    /// Starts a member whose data the caller then writes through [`Archive::writer`]; its
    /// name and size are set by [`Archive::finish_member`].
    pub(crate) fn begin(&mut self) -> Result<Pending> {
        let header_at = self.pos;
        self.put(&[0; BLOCK as usize])?;
        Ok(Pending { header_at })
    }

    /// Where the data of a member started with [`Archive::begin`] goes. Whatever is written
    /// here must be followed by [`Archive::finish_member`].
    pub(crate) fn writer(&mut self) -> Counted<'_> {
        Counted { a: self }
    }

    /// Ends the member started by `pending`: pads its data and writes its header with `name`
    /// and the size of what was written. Returns that size.
    pub(crate) fn finish_member(&mut self, pending: Pending, name: &str) -> Result<u64> {
        let size = self.pos - pending.header_at - BLOCK;
        self.pad()?;
        let h = self.header(name, tar::EntryType::Regular, size)?;
        self.w
            .flush()
            .and_then(|()| {
                self.w
                    .get_ref()
                    .write_all_at(h.as_bytes(), pending.header_at)
            })
            .map_err(|e| Error::io("write", &self.path, e))?;
        Ok(size)
    }

    /// Writes the end-of-archive blocks and flushes everything to disk.
    pub(crate) fn finish(mut self) -> Result<()> {
        self.put(&[0; 2 * BLOCK as usize])?;
        let file = self
            .w
            .into_inner()
            .map_err(|e| Error::io("write", &self.path, e.into_error()))?;
        file.sync_all()
            .map_err(|e| Error::io("sync", &self.path, e))
    }
}

/// The data of a streamed member: counts what passes so the header can be patched.
pub(crate) struct Counted<'a> {
    a: &'a mut Archive,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.a.w.write(buf)?;
        self.a.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.a.w.flush()
    }
}

/// One pax extended header record: `LEN key=value\n`, LEN counting itself.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len = len.to_string().len() + body;
    }
    format!("{len} {key}={value}\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_counts_its_own_length() {
        for (k, v) in [
            ("size", "8589934592"),
            ("size", "1"),
            ("k", &"x".repeat(95)),
        ] {
            let r = pax_record(k, v);
            let (n, _) = std::str::from_utf8(&r).unwrap().split_once(' ').unwrap();
            assert_eq!(n.parse::<usize>().unwrap(), r.len(), "{r:?}");
        }
    }

    #[test]
    fn streamed_members_get_their_header_patched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        let mut a = Archive::create(&path, 1_700_000_000).unwrap();
        a.file("first", b"hello").unwrap();
        let p = a.begin().unwrap();
        a.writer().write_all(&[7u8; 1000]).unwrap();
        assert_eq!(a.finish_member(p, "blobs/sha256/x").unwrap(), 1000);
        a.dir("d/").unwrap();
        a.finish().unwrap();

        let mut ar = tar::Archive::new(File::open(&path).unwrap());
        let got: Vec<(String, u64, Vec<u8>)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (name, e.header().size().unwrap(), data)
            })
            .collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], ("first".into(), 5, b"hello".to_vec()));
        assert_eq!(got[1].0, "blobs/sha256/x");
        assert_eq!(got[1].2, vec![7u8; 1000]);
        assert_eq!(got[2].0, "d/");
        // GNU tar agrees, and finds no damage.
        let out = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    }
}
