//! Writing a `.deb`: an `ar` archive of `debian-binary`, `control.tar.xz` and `data.tar.xz`, laid
//! out as dpkg-deb lays it out (member names `./usr/bin/x`, directories ending in `/`, GNU long
//! names past 100 bytes).
//!
//! `data.tar.xz` is streamed into the file as it is compressed, so a package of any size needs
//! no more memory than its largest buffer; the size in its `ar` header is filled in afterwards.

use std::fs::File;
use std::io::{self, BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::control::ControlFile;
use super::plan::{Member, MemberKind, Plan};
use crate::blobstore::{to_hex, BlobStore};
use crate::{rawpath, Error, Result};

/// A fast xz level rather than dpkg-deb's 6: recreation runs while the agent waits for the
/// overlay's answer, and level 1 compresses several times faster for ~10% larger packages.
const XZ_PRESET: u32 = 1;

const AR_MAGIC: &[u8] = b"!<arch>\n";
const AR_HEADER: u64 = 60;

/// Longest name a tar header holds; longer ones go in a GNU long-name member first.
const NAME_FIELD: usize = 100;

/// Writes tar members under the exact names given. The tar crate's own path setters would turn
/// `./usr/bin/x` into `usr/bin/x` and rewrite symlink targets component by component.
pub(super) struct TarOut<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> TarOut<W> {
    /// Starts an archive on `out`.
    pub(super) fn new(out: W) -> Self {
        TarOut {
            builder: tar::Builder::new(out),
        }
    }

    /// Appends one member: `header` with `name` (and `link` for links) set, then `data`.
    fn append(
        &mut self,
        mut header: tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        if name.len() > NAME_FIELD {
            self.long_name(b'L', name)?;
        }
        if let Some(link) = link.filter(|l| l.len() > NAME_FIELD) {
            self.long_name(b'K', link)?;
        }
        let old = header.as_old_mut();
        fill(&mut old.name, name);
        fill(&mut old.linkname, link.unwrap_or_default());
        header.set_cksum();
        self.builder.append(&header, data)
    }

    /// The GNU extension member that carries the full name (`L`) or link target (`K`) of the
    /// member that follows.
    fn long_name(&mut self, kind: u8, name: &[u8]) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        fill(&mut h.as_old_mut().name, b"././@LongLink");
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        // GNU tar counts the terminating NUL.
        h.set_size(name.len() as u64 + 1);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_cksum();
        self.builder.append(&h, &mut name.chain(&[0u8][..]))
    }

    /// Appends a member with a report entry's metadata; `data` is the content of a file (exactly
    /// its size) and empty for anything else.
    pub(super) fn member(&mut self, m: &Member, data: &mut dyn Read) -> io::Result<()> {
        let mut size = 0;
        let (kind, link) = match &m.kind {
            MemberKind::Dir => (tar::EntryType::Directory, None),
            MemberKind::File { size: n, .. } => {
                size = *n;
                (tar::EntryType::Regular, None)
            }
            MemberKind::Symlink(t) => (tar::EntryType::Symlink, Some(t.clone())),
            MemberKind::Hardlink(t) => (tar::EntryType::Link, Some(member_name(t, false))),
            MemberKind::Fifo => (tar::EntryType::Fifo, None),
            MemberKind::Char(..) => (tar::EntryType::Char, None),
            MemberKind::Block(..) => (tar::EntryType::Block, None),
        };
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(m.mode & 0o7777);
        h.set_uid(u64::from(m.uid));
        h.set_gid(u64::from(m.gid));
        h.set_mtime(u64::try_from(m.mtime).unwrap_or(0));
        h.set_size(size);
        // A name too long for the header field is left out: dpkg then uses the number.
        if let Some(u) = &m.user {
            let _ = h.set_username(u);
        }
        if let Some(g) = &m.group {
            let _ = h.set_groupname(g);
        }
        if let MemberKind::Char(major, minor) | MemberKind::Block(major, minor) = m.kind {
            h.set_device_major(major)?;
            h.set_device_minor(minor)?;
        }
        let name = member_name(&m.path, m.kind == MemberKind::Dir);
        self.append(h, &name, link.as_deref(), data)
    }

    /// Appends a control file owned by root.
    pub(super) fn control_file(&mut self, f: &ControlFile, mtime: i64) -> io::Result<()> {
        let m = Member {
            path: format!("/{}", f.name).into_bytes(),
            // Written from memory: the digest is never looked up.
            kind: MemberKind::File {
                sha256: [0; 32],
                size: f.data.len() as u64,
            },
            mode: f.mode,
            uid: 0,
            gid: 0,
            user: Some("root".into()),
            group: Some("root".into()),
            mtime,
        };
        self.member(&m, &mut &f.data[..])
    }

    /// Ends the archive and returns its output.
    pub(super) fn finish(self) -> io::Result<W> {
        self.builder.into_inner()
    }
}

/// Copies `bytes` into a NUL-padded header field, cut to its size (long names travel in a GNU
/// long-name member; the field then holds their start, as GNU tar writes it).
fn fill(field: &mut [u8], bytes: &[u8]) {
    field.fill(0);
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
}

/// The tar name of an in-root path as dpkg-deb writes it: `./usr/bin/x`, `./usr/` for a
/// directory, `./` for the root.
pub(super) fn member_name(path: &[u8], dir: bool) -> Vec<u8> {
    let rel = path.strip_prefix(b"/").unwrap_or(path);
    let mut name = Vec::with_capacity(rel.len() + 3);
    name.extend_from_slice(b"./");
    name.extend_from_slice(rel);
    if dir && !rel.is_empty() {
        name.push(b'/');
    }
    name
}

/// `control.tar.xz`: the root directory, then each control file.
pub(super) fn control_tar(files: &[ControlFile], mtime: i64) -> io::Result<Vec<u8>> {
    let mut tar = TarOut::new(xz2::write::XzEncoder::new(Vec::new(), XZ_PRESET));
    let root = Member::default_dir(b"/".to_vec(), mtime);
    tar.member(&root, &mut io::empty())?;
    for f in files {
        tar.control_file(f, mtime)?;
    }
    tar.finish()?.finish()
}

/// Writes the `.deb` of `plan` to `out` (a new file), `root` being the metadata of `./`.
/// Returns the SHA-256 and size of the file. On error the file may be left half-written: the
/// caller removes it.
pub(super) fn write_deb(
    out: &Path,
    plan: &Plan,
    control_tar_xz: &[u8],
    root: &Member,
    blobs: &dyn BlobStore,
    mtime: i64,
) -> Result<([u8; 32], u64)> {
    let io_err = |op: &'static str| move |e: io::Error| Error::io(op, out, e);
    let file = File::create_new(out).map_err(io_err("create"))?;
    let mut w = BufWriter::with_capacity(1 << 20, &file);
    w.write_all(AR_MAGIC).map_err(io_err("write"))?;
    ar_member(&mut w, "debian-binary", b"2.0\n", mtime).map_err(io_err("write"))?;
    ar_member(&mut w, "control.tar.xz", control_tar_xz, mtime).map_err(io_err("write"))?;
    let data_header_at = AR_MAGIC.len() as u64
        + (AR_HEADER + 4)
        + (AR_HEADER + control_tar_xz.len() as u64).next_multiple_of(2);
    // The size is not known yet: written as 0 now, patched below.
    w.write_all(&ar_header("data.tar.xz", 0, mtime))
        .map_err(io_err("write"))?;

    let counted = Counting { inner: w, n: 0 };
    let mut tar = TarOut::new(xz2::write::XzEncoder::new(counted, XZ_PRESET));
    tar.member(root, &mut io::empty())
        .map_err(io_err("write"))?;
    for m in &plan.members {
        let shown = rawpath::display(&m.path);
        match m.kind {
            MemberKind::File { sha256, size } => {
                let blob = blobs
                    .open(&sha256)
                    .map_err(|e| plan.err(format!("opening the content of {shown:?}: {e}")))?;
                let mut content = Verified::new(blob, size, sha256);
                tar.member(m, &mut content)
                    .map_err(|e| match content.fault.take() {
                        Some(why) => plan.err(format!("content of {shown:?}: {why}")),
                        None => Error::io("write", out, e),
                    })?;
            }
            _ => tar.member(m, &mut io::empty()).map_err(io_err("write"))?,
        }
    }
    let counted = tar
        .finish()
        .and_then(|xz| xz.finish())
        .map_err(io_err("write"))?;
    let data_size = counted.n;
    let mut w = counted.inner;
    if data_size % 2 == 1 {
        w.write_all(b"\n").map_err(io_err("write"))?;
    }
    w.flush().map_err(io_err("write"))?;
    drop(w);

    let size_field = format!("{data_size:<10}");
    if size_field.len() != 10 {
        return Err(plan.err(format!(
            "data.tar.xz is {data_size} bytes, more than an ar archive can hold"
        )));
    }
    let mut f = &file;
    f.seek(SeekFrom::Start(data_header_at + 48))
        .and_then(|_| f.write_all(size_field.as_bytes()))
        .map_err(io_err("write"))?;
    file.sync_all().map_err(io_err("sync"))?;

    // Hashed from the file, after the patch: what a client downloading it will check.
    f.seek(SeekFrom::Start(0)).map_err(io_err("read"))?;
    let mut hasher = Sha256::new();
    let size = io::copy(&mut f, &mut hasher).map_err(io_err("read"))?;
    Ok((hasher.finalize().into(), size))
}

/// An `ar` member header as dpkg-deb writes it: owner 0, mode 100644, name padded with spaces.
fn ar_header(name: &str, size: u64, mtime: i64) -> Vec<u8> {
    format!(
        "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
        name,
        mtime.max(0),
        0,
        0,
        "100644",
        size
    )
    .into_bytes()
}

/// Writes a whole `ar` member, padded to an even offset.
fn ar_member(w: &mut impl Write, name: &str, data: &[u8], mtime: i64) -> io::Result<()> {
    w.write_all(&ar_header(name, data.len() as u64, mtime))?;
    w.write_all(data)?;
    if data.len() % 2 == 1 {
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// Counts what goes through it: the size of the compressed data member.
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A blob read as exactly `left` bytes that must hash to `want`: the tar header already
/// announced the size, so a short or altered blob has to fail the archive, not corrupt it.
struct Verified<R> {
    inner: R,
    left: u64,
    hasher: Sha256,
    want: [u8; 32],
    /// Set once the end was reached and the digest checked.
    done: bool,
    /// What was wrong with the blob, when reading it failed.
    fault: Option<String>,
}

impl<R> Verified<R> {
    fn new(inner: R, size: u64, want: [u8; 32]) -> Self {
        Verified {
            inner,
            left: size,
            hasher: Sha256::new(),
            want,
            done: false,
            fault: None,
        }
    }

    /// Fails the read, remembering that the blob (not the output) was at fault.
    fn fail(&mut self, kind: ErrorKind, why: String) -> io::Error {
        let e = io::Error::new(kind, why.clone());
        self.fault = Some(why);
        e
    }
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            if !self.done {
                self.done = true;
                let got: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
                if got != self.want {
                    let why = format!("the stored blob does not hash to {}", to_hex(&self.want));
                    return Err(self.fail(ErrorKind::InvalidData, why));
                }
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(0) => {
                let why = format!("the stored blob ends {} bytes early", self.left);
                return Err(self.fail(ErrorKind::UnexpectedEof, why));
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => return Err(e),
            Err(e) => return Err(self.fail(e.kind(), format!("reading the stored blob: {e}"))),
        };
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}
