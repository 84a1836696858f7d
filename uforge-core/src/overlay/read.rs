//! Reading an overlay: a strict tar parser that checks every member against the report entry
//! asked for, and streams file contents into a blob store staging area that is committed only
//! once the whole archive has been verified, or, for an upload that may resume, keeps the
//! contents that verified before it failed ([`read_overlay_resumable`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufReader, ErrorKind, Read};
use std::path::Path;

use super::names::in_root_path;
use super::pax;
use super::sparse::{self, Extent, MapParser};
use super::ustar::{self, Block, BLOCK};
use crate::analysis::Analysis;
use crate::blobstore::{BlobStaging, BlobStore};
use crate::model::{FileEntry, FileKind, RawPath};
use crate::report::ReportReader;
use crate::{rawpath, Error, Result};

/// Bounds on what an overlay may make the reader do: an archive from a machine is untrusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadLimits {
    /// Largest regular file, in bytes (sparse files counted at their full size).
    pub max_member_size: u64,
    /// Most bytes read from the stream, and most bytes of file content stored.
    pub max_total: u64,
    /// Most members (extended headers not counted).
    pub max_members: u64,
    /// Most bytes of extended header data (pax records, GNU long names, a sparse map) for one
    /// member, and for all global headers together.
    pub max_pax_header: usize,
}

impl Default for ReadLimits {
    /// Generous limits for whole servers: 64 GiB per file, 1 TiB in all, ten million members,
    /// 1 MiB of extended headers per member.
    fn default() -> Self {
        ReadLimits {
            max_member_size: 64 << 30,
            max_total: 1 << 40,
            max_members: 10_000_000,
            max_pax_header: 1 << 20,
        }
    }
}

/// What a verified overlay held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverlayReceipt {
    /// Members read (extended headers not counted).
    pub members: u64,
    /// Distinct file contents stored or verified.
    pub blobs: u64,
    /// Bytes of regular file content, sparse files counted at their full size.
    pub content_bytes: u64,
    /// Files that changed on the source after the scan, as the overlay carried them (metadata
    /// from their member, digest computed over their data), in archive order: what the report
    /// must say instead of its entries ([`super::amend_report`]).
    pub amended: Vec<FileEntry>,
    /// Wanted files that vanished from the source after the scan, in archive order.
    pub vanished: Vec<RawPath>,
    /// Wanted regular files and hard links the overlay left out because the store already
    /// held their content ([`read_overlay_resumable`]).
    pub held: u64,
    /// Bytes of content of those (what the overlay did not need to carry).
    pub held_bytes: u64,
    /// Bytes of archive read.
    pub archive_bytes: u64,
}

/// An overlay that failed after some of its contents had verified: those are committed to the
/// store (each whole and hashing to its report digest), the rest is discarded.
#[derive(Debug)]
pub struct Interrupted {
    /// Why the overlay was refused, naming the member.
    pub error: Error,
    /// The digests and sizes of the contents kept, in archive order.
    pub kept: Vec<([u8; 32], u64)>,
}

impl Interrupted {
    /// Bytes of content kept.
    pub fn kept_bytes(&self) -> u64 {
        self.kept.iter().map(|(_, n)| n).sum()
    }
}

/// The wanted entries an overlay may leave out because their content is held already.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldEntries {
    /// Their paths, sorted.
    pub paths: Vec<RawPath>,
    /// Bytes of content the overlay need not carry: the held regular files, and the held hard
    /// links whose first name is not wanted (they would travel as the file itself).
    pub bytes: u64,
    /// Digests of that content.
    pub digests: HashSet<[u8; 32]>,
}

/// The regular files and hard links of `expected` whose content `holds` says is held, and so
/// may be left out of an overlay read by [`read_overlay_resumable`] with the same digests.
/// Everything else (directories, links, devices, metadata) is small and is always sent.
pub fn held_entries(
    expected: &HashMap<RawPath, FileEntry>,
    mut holds: impl FnMut(&[u8; 32]) -> Result<bool>,
) -> Result<HeldEntries> {
    let mut out = HeldEntries::default();
    let mut known: HashMap<[u8; 32], bool> = HashMap::new();
    for (path, e) in expected {
        let Some(sha) = e.sha256.filter(|_| is_content(e)) else {
            continue;
        };
        let held = match known.get(&sha) {
            Some(&h) => h,
            None => {
                let h = holds(&sha)?;
                known.insert(sha, h);
                h
            }
        };
        if !held {
            continue;
        }
        let carries = e.kind == FileKind::File
            || !e.target.as_ref().is_some_and(|t| expected.contains_key(t));
        if carries {
            out.bytes += e.size;
        }
        out.digests.insert(sha);
        out.paths.push(path.clone());
    }
    out.paths.sort();
    Ok(out)
}

/// Whether an entry's member would carry (or link to) file content.
fn is_content(e: &FileEntry) -> bool {
    matches!(e.kind, FileKind::File | FileKind::Hardlink)
}

/// Reads and verifies the overlay made for `analysis` of the report file `report`: the
/// [`read_overlay`] of every path the analysis wants, against its report entry.
pub fn read_overlay_for<R: Read>(
    input: R,
    report: &Path,
    analysis: &Analysis,
    store: &dyn BlobStore,
    limits: &ReadLimits,
) -> Result<OverlayReceipt> {
    let expected = analysis.expected(ReportReader::open(report)?)?;
    read_overlay(input, &expected, store, limits)
}

/// Reads and verifies an overlay against what was asked for, storing file contents in `store`.
/// `expected` maps every wanted in-root path to its report entry. On any violation returns an
/// error naming the member, and nothing is committed to the store.
///
/// Every member must be expected, appear once, have the report's kind, mode, owner, mtime,
/// xattrs, link target or device number, and for a regular file the report's size and SHA-256.
/// A hard link must point to an earlier regular file member of the same content; a hard link
/// whose first name is not expected may come as the regular file itself. Every expected entry
/// but sockets must be present.
///
/// A file that changed on the source after the scan comes as an amended member (pax
/// `UFORGE.amended=1`): it must still be an expected path, a regular file standing for a file
/// or hard link of the report, and its own metadata and the digest computed over its data
/// replace the report's ([`OverlayReceipt::amended`]). A file that vanished is named by a
/// global `UFORGE.vanished` record instead of a member ([`OverlayReceipt::vanished`]).
pub fn read_overlay<R: Read>(
    input: R,
    expected: &HashMap<RawPath, FileEntry>,
    store: &dyn BlobStore,
    limits: &ReadLimits,
) -> Result<OverlayReceipt> {
    read(input, expected, store, limits, &HashSet::new(), false).map_err(|i| i.error)
}

/// Reads an overlay as [`read_overlay`] does, for an upload that can resume:
///
/// - a regular file or hard link of `expected` whose content digest is in `held` and that the
///   store has may be left out (an earlier, interrupted upload or another scan stored it);
///   when it is present it is verified as any member;
/// - when the overlay fails (a cut stream, a rejected member), the contents that arrived whole
///   and hashed to their report digest are committed all the same and listed in the error,
///   so that the next upload need not carry them. Nothing of a rejected member is kept, nor
///   any content whose digest was only computed on arrival (an amended member).
pub fn read_overlay_resumable<R: Read>(
    input: R,
    expected: &HashMap<RawPath, FileEntry>,
    store: &dyn BlobStore,
    limits: &ReadLimits,
    held: &HashSet<[u8; 32]>,
) -> std::result::Result<OverlayReceipt, Interrupted> {
    read(input, expected, store, limits, held, true)
}

fn read<R: Read>(
    input: R,
    expected: &HashMap<RawPath, FileEntry>,
    store: &dyn BlobStore,
    limits: &ReadLimits,
    held: &HashSet<[u8; 32]>,
    keep: bool,
) -> std::result::Result<OverlayReceipt, Interrupted> {
    let fail = |error| Interrupted {
        error,
        kept: Vec::new(),
    };
    // Verified contents and contents whose digest is only computed on arrival go to two
    // batches: only the first may be kept from an overlay that fails.
    let mut staging = store.stage().map_err(fail)?;
    let mut computed = store.stage().map_err(fail)?;
    let mut r = Reader {
        input: Input {
            r: BufReader::with_capacity(256 << 10, input),
            consumed: 0,
            max: limits.max_total,
        },
        expected,
        limits,
        seen: HashMap::new(),
        blobs: HashSet::new(),
        receipt: OverlayReceipt::default(),
        name: Vec::new(),
        held,
        store,
        kept: Vec::new(),
        kept_seen: HashSet::new(),
    };
    let read = r
        .run(&mut *staging, &mut *computed)
        .and_then(|()| r.check_complete());
    if let Err(error) = read {
        if !keep || r.kept.is_empty() {
            return Err(fail(error));
        }
        drop(computed);
        return match staging.commit() {
            Ok(()) => Err(Interrupted {
                error,
                kept: r.kept,
            }),
            Err(e) => Err(fail(e)),
        };
    }
    staging.commit().map_err(fail)?;
    computed.commit().map_err(fail)?;
    r.receipt.blobs = r.blobs.len() as u64;
    r.receipt.archive_bytes = r.input.consumed;
    Ok(r.receipt)
}

/// What extended headers (pax records, GNU long names) say about the next member.
#[derive(Debug, Clone, Default)]
struct Ext {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<(i64, u32)>,
    devmajor: Option<u64>,
    devminor: Option<u64>,
    xattrs: BTreeMap<String, Vec<u8>>,
    sparse_major: Option<u64>,
    sparse_minor: Option<u64>,
    sparse_name: Option<Vec<u8>>,
    sparse_realsize: Option<u64>,
    amended: bool,
}

impl Ext {
    /// Applies one pax record. An empty value unsets the field (how a local header cancels a
    /// global one). Unknown keys are ignored, as pax requires.
    fn apply(&mut self, key: &str, v: &[u8]) -> std::result::Result<(), String> {
        let num = |v: &[u8]| {
            (!v.is_empty())
                .then(|| pax::parse_u64(v).ok_or(format!("pax {key} is not a number")))
                .transpose()
        };
        let bytes = |v: &[u8]| (!v.is_empty()).then(|| v.to_vec());
        match key {
            "path" => self.path = bytes(v),
            "linkpath" => self.linkpath = bytes(v),
            "size" => self.size = num(v)?,
            "uid" => self.uid = num(v)?,
            "gid" => self.gid = num(v)?,
            "SCHILY.devmajor" => self.devmajor = num(v)?,
            "SCHILY.devminor" => self.devminor = num(v)?,
            "GNU.sparse.major" => self.sparse_major = num(v)?,
            "GNU.sparse.minor" => self.sparse_minor = num(v)?,
            "GNU.sparse.name" => self.sparse_name = bytes(v),
            "GNU.sparse.realsize" => self.sparse_realsize = num(v)?,
            pax::AMENDED => match v {
                b"1" => self.amended = true,
                b"" => self.amended = false,
                _ => return Err(format!("pax {key} is not 1")),
            },
            "mtime" => {
                self.mtime = (!v.is_empty())
                    .then(|| pax::parse_time(v).ok_or("pax mtime is not a time"))
                    .transpose()?
            }
            "hdrcharset" if !matches!(v, b"BINARY" | b"ISO-IR 10646 2000 UTF-8" | b"") => {
                return Err("unknown pax hdrcharset".into())
            }
            k if k.starts_with("GNU.sparse.") => {
                return Err(format!("unsupported sparse format record {k}"))
            }
            k => {
                if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                    if v.is_empty() {
                        self.xattrs.remove(name);
                    } else {
                        self.xattrs.insert(name.to_string(), v.to_vec());
                    }
                }
            }
        }
        Ok(())
    }
}

struct Input<R> {
    r: BufReader<R>,
    consumed: u64,
    max: u64,
}

impl<R: Read> Input<R> {
    /// Reads some bytes. The end of the stream is an `UnexpectedEof` error: every caller is in
    /// the middle of something the archive promised.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.r.read(buf) {
                Ok(0) if !buf.is_empty() => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.consumed = self.consumed.saturating_add(n as u64);
                    if self.consumed > self.max {
                        return Err(std::io::Error::new(
                            ErrorKind::InvalidData,
                            format!("the archive is larger than the limit of {} bytes", self.max),
                        ));
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn read_exact(&mut self, mut buf: &mut [u8]) -> std::io::Result<()> {
        while !buf.is_empty() {
            let n = self.read(buf)?;
            buf = &mut buf[n..];
        }
        Ok(())
    }

    /// The next block, or `None` when the stream ends cleanly before it.
    fn block(&mut self) -> std::io::Result<Option<Block>> {
        let mut b = [0; BLOCK];
        match self.read(&mut b) {
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
            Ok(n) => self.read_exact(&mut b[n..])?,
        }
        Ok(Some(b))
    }

    /// Skips the padding after `size` bytes of member data.
    fn skip_padding(&mut self, size: u64) -> std::io::Result<()> {
        let pad = (BLOCK as u64 - size % BLOCK as u64) as usize % BLOCK;
        self.read_exact(&mut [0; BLOCK][..pad])
    }

    /// Reads `size` bytes of extended header data (already checked against the limit).
    fn data(&mut self, size: usize) -> std::io::Result<Vec<u8>> {
        let mut v = vec![0; size];
        self.read_exact(&mut v)?;
        self.skip_padding(size as u64)?;
        Ok(v)
    }
}

fn bad(member: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Overlay {
        member: member.into(),
        message: message.into(),
    }
}

/// Turns a failure to read the stream into an error about the member being read.
fn input_err(member: &str, e: std::io::Error) -> Error {
    match e.kind() {
        ErrorKind::UnexpectedEof => bad(member, "truncated: the stream ends inside this member"),
        ErrorKind::InvalidData => bad(member, e.to_string()),
        _ => Error::io("read", "overlay input", e),
    }
}

struct Reader<'a, R> {
    input: Input<R>,
    expected: &'a HashMap<RawPath, FileEntry>,
    limits: &'a ReadLimits,
    /// Members read so far; regular files with their digest, for hard links to check against.
    seen: HashMap<RawPath, Option<[u8; 32]>>,
    blobs: HashSet<[u8; 32]>,
    receipt: OverlayReceipt,
    name: Vec<u8>,
    /// Digests whose entries may be left out when the store has them.
    held: &'a HashSet<[u8; 32]>,
    store: &'a dyn BlobStore,
    /// Verified contents staged, with their sizes, in archive order.
    kept: Vec<([u8; 32], u64)>,
    kept_seen: HashSet<[u8; 32]>,
}

impl<R: Read> Reader<'_, R> {
    fn run(&mut self, staging: &mut dyn BlobStaging, computed: &mut dyn BlobStaging) -> Result<()> {
        let mut globals = Ext::default();
        let mut global_bytes = 0usize;
        let mut local: Option<Ext> = None;
        let mut local_bytes = 0usize;
        let (mut long_name, mut long_link) = (None, None);
        let max_ext = self.limits.max_pax_header;
        loop {
            let at = self.input.consumed;
            let block = self.input.block().map_err(|e| input_err("(header)", e))?;
            let Some(block) = block else {
                return Err(bad(
                    "(end)",
                    "truncated: the stream ends without the end-of-archive blocks",
                ));
            };
            if ustar::is_zero(&block) {
                let next = self.input.block().map_err(|e| input_err("(end)", e))?;
                return match next {
                    None => Err(bad("(end)", "truncated: only one end-of-archive block")),
                    Some(b) if !ustar::is_zero(&b) => Err(bad(
                        "(end)",
                        format!("a lone zero block at byte {at} inside the archive"),
                    )),
                    _ if local.is_some() || long_name.is_some() || long_link.is_some() => {
                        Err(bad("(end)", "extended header without a member"))
                    }
                    _ => Ok(()),
                };
            }
            ustar::full_name(&block, &mut self.name);
            let raw = rawpath::display(&self.name);
            if !ustar::checksum_ok(&block) {
                return Err(bad(raw, format!("bad header checksum at byte {at}")));
            }
            let magic = &block[ustar::MAGIC.0..ustar::MAGIC.0 + ustar::MAGIC.1];
            if magic != ustar::MAGIC_POSIX && magic != ustar::MAGIC_GNU {
                return Err(bad(raw, "not a ustar header"));
            }
            let size = ustar::parse_octal(&block, ustar::SIZE)
                .ok_or_else(|| bad(&raw, "malformed size field"))?;
            let flag = block[ustar::TYPEFLAG];
            if matches!(flag, b'x' | b'g' | b'L' | b'K') {
                let total = if flag == b'g' {
                    &mut global_bytes
                } else {
                    &mut local_bytes
                };
                *total = total.saturating_add(usize::try_from(size).unwrap_or(usize::MAX));
                if *total > max_ext {
                    return Err(bad(
                        raw,
                        format!("extended headers over the limit of {max_ext} bytes"),
                    ));
                }
                let data = self
                    .input
                    .data(size as usize)
                    .map_err(|e| input_err(&raw, e))?;
                match flag {
                    b'x' => {
                        let ext = local.get_or_insert_with(|| globals.clone());
                        pax::parse(&data, |k, v| ext.apply(k, v)).map_err(|m| bad(&raw, m))?;
                    }
                    b'g' => {
                        let mut vanished = Vec::new();
                        pax::parse(&data, |k, v| match k {
                            pax::VANISHED => {
                                vanished.push(v.to_vec());
                                Ok(())
                            }
                            _ => globals.apply(k, v),
                        })
                        .map_err(|m| bad(&raw, m))?;
                        if !vanished.is_empty() {
                            // One per vanished file, each bounded by an expected entry: not
                            // counted against the budget of global headers.
                            global_bytes -= size as usize;
                            for p in vanished {
                                self.vanished(p)?;
                            }
                        }
                    }
                    _ => {
                        // GNU long names are NUL-terminated strings.
                        let end = data.iter().position(|&c| c == 0).unwrap_or(data.len());
                        let v = Some(data[..end].to_vec());
                        if flag == b'L' {
                            long_name = v;
                        } else {
                            long_link = v;
                        }
                    }
                }
                continue;
            }
            let mut ext = local.take().unwrap_or_else(|| globals.clone());
            local_bytes = 0;
            if let Some(n) = long_name.take() {
                ext.path.get_or_insert(n);
            }
            if let Some(l) = long_link.take() {
                ext.linkpath.get_or_insert(l);
            }
            self.member(&block, ext, size, staging, computed)?;
        }
    }

    /// Records an expected regular file that vanished from the source.
    fn vanished(&mut self, path: RawPath) -> Result<()> {
        let member = rawpath::display(&path);
        let want = self
            .expected
            .get(&path)
            .ok_or_else(|| bad(&member, "recorded as vanished but was not asked for"))?;
        if !matches!(want.kind, FileKind::File | FileKind::Hardlink) {
            return Err(bad(
                member,
                format!("a {} cannot be recorded as vanished", want.kind.as_str()),
            ));
        }
        if self.seen.contains_key(&path) {
            return Err(bad(member, "appears twice in the overlay"));
        }
        self.seen.insert(path.clone(), None);
        self.receipt.vanished.push(path);
        Ok(())
    }

    fn member(
        &mut self,
        block: &Block,
        ext: Ext,
        header_size: u64,
        staging: &mut dyn BlobStaging,
        computed: &mut dyn BlobStaging,
    ) -> Result<()> {
        self.receipt.members += 1;
        let flag = block[ustar::TYPEFLAG];
        let sparse = ext.sparse_major.is_some() || ext.sparse_minor.is_some();
        let raw_name = match (&ext.sparse_name, &ext.path) {
            (Some(n), _) if sparse => n.clone(),
            (_, _) if sparse => {
                return Err(bad(
                    rawpath::display(&self.name),
                    "sparse member without GNU.sparse.name",
                ))
            }
            (_, Some(p)) => p.clone(),
            _ => self.name.clone(),
        };
        let path = in_root_path(&raw_name, flag == b'5')
            .map_err(|why| bad(rawpath::display(&raw_name), format!("refused name: {why}")))?;
        let member = rawpath::display(&path);
        if self.receipt.members > self.limits.max_members {
            return Err(bad(
                member,
                format!("more than the limit of {} members", self.limits.max_members),
            ));
        }
        let size = ext.size.unwrap_or(header_size);
        let logical = if sparse {
            if (ext.sparse_major, ext.sparse_minor) != (Some(1), Some(0)) {
                return Err(bad(
                    member,
                    "unsupported sparse format (only PAX 1.0 is read)",
                ));
            }
            ext.sparse_realsize
                .ok_or_else(|| bad(&member, "sparse member without GNU.sparse.realsize"))?
        } else {
            size
        };
        if size.max(logical) > self.limits.max_member_size {
            return Err(bad(
                member,
                format!(
                    "{} bytes is over the limit of {} per member",
                    size.max(logical),
                    self.limits.max_member_size
                ),
            ));
        }
        if self.seen.contains_key(&path) {
            return Err(bad(member, "appears twice in the overlay"));
        }
        let want = self
            .expected
            .get(&path)
            .ok_or_else(|| bad(&member, "was not asked for"))?;
        let kind = match flag {
            b'0' | 0 => FileKind::File,
            b'1' => FileKind::Hardlink,
            b'2' => FileKind::Symlink,
            b'3' => FileKind::Char,
            b'4' => FileKind::Block,
            b'5' => FileKind::Dir,
            b'6' => FileKind::Fifo,
            other => {
                return Err(bad(
                    member,
                    format!("unsupported member type {:?}", other as char),
                ))
            }
        };
        // A hard link whose first name is not in the overlay is carried as the file itself.
        let promoted = kind == FileKind::File
            && want.kind == FileKind::Hardlink
            && !want
                .target
                .as_ref()
                .is_some_and(|t| self.expected.contains_key(t));
        let amended = ext.amended;
        if amended
            && !(kind == FileKind::File && matches!(want.kind, FileKind::File | FileKind::Hardlink))
        {
            return Err(bad(
                member,
                format!(
                    "an amended member must be a regular file standing for a file or hard link \
                     of the report, not a {} for a {}",
                    kind.as_str(),
                    want.kind.as_str()
                ),
            ));
        }
        if kind != want.kind && !promoted && !amended {
            return Err(bad(
                member,
                format!(
                    "is a {} in the overlay but a {} in the report",
                    kind.as_str(),
                    want.kind.as_str()
                ),
            ));
        }
        if sparse && kind != FileKind::File {
            return Err(bad(member, "sparse data on something that is not a file"));
        }
        let mut now = None;
        if amended {
            now = Some(amended_entry(block, &ext, want).map_err(|m| bad(&member, m))?);
        } else {
            check_meta(block, &ext, want).map_err(|m| bad(&member, m))?;
        }
        if kind != FileKind::File && size != 0 {
            return Err(bad(member, format!("a {} with data", kind.as_str())));
        }

        let link = ext
            .linkpath
            .as_deref()
            .unwrap_or_else(|| ustar::text(block, ustar::LINKNAME));
        let mut digest = None;
        match kind {
            FileKind::Symlink if want.target.as_deref() != Some(link) => {
                return Err(bad(
                    member,
                    format!(
                        "symlink target {:?} differs from the report's",
                        rawpath::display(link)
                    ),
                ));
            }
            FileKind::Hardlink => {
                let target = in_root_path(link, false)
                    .map_err(|why| bad(&member, format!("refused hard link target: {why}")))?;
                match self.seen.get(&target) {
                    Some(Some(d)) if Some(*d) == want.sha256 => {}
                    Some(Some(_)) => {
                        return Err(bad(member, "hard link to a file of other content"))
                    }
                    _ => {
                        return Err(bad(
                            member,
                            format!(
                                "hard link target {} is not an earlier regular file of the overlay",
                                rawpath::display(&target)
                            ),
                        ))
                    }
                }
            }
            FileKind::Char | FileKind::Block => {
                let dev = |f, v: Option<u64>| {
                    v.or_else(|| ustar::parse_octal(block, f))
                        .and_then(|n| u32::try_from(n).ok())
                };
                let rdev =
                    dev(ustar::DEVMAJOR, ext.devmajor).zip(dev(ustar::DEVMINOR, ext.devminor));
                if rdev != want.rdev {
                    return Err(bad(member, "device number differs from the report's"));
                }
            }
            FileKind::File => {
                let sha = match &now {
                    Some(_) => None,
                    None => Some(
                        want.sha256
                            .ok_or_else(|| bad(&member, "the report has no digest for it"))?,
                    ),
                };
                if sha.is_some() && logical != want.size {
                    return Err(bad(
                        member,
                        format!("{logical} bytes, the report says {}", want.size),
                    ));
                }
                self.receipt.content_bytes = self.receipt.content_bytes.saturating_add(logical);
                if self.receipt.content_bytes > self.limits.max_total {
                    return Err(bad(member, "file contents over the total limit"));
                }
                let (got, stored) =
                    self.content(&member, sha, (size, logical, sparse), staging, computed)?;
                if let Some(mut e) = now.take() {
                    e.size = logical;
                    e.sha256 = Some(got);
                    e.allocated = stored;
                    self.receipt.amended.push(e);
                }
                digest = Some(got);
            }
            _ => {}
        }
        self.seen.insert(path, digest);
        Ok(())
    }

    /// Streams one regular file's content (expanding a sparse one) into the staging area,
    /// checking it against `sha` or, without one, computing its digest. Returns the digest and
    /// the bytes of data the member carried (holes excluded).
    fn content(
        &mut self,
        member: &str,
        sha: Option<[u8; 32]>,
        (size, logical, sparse): (u64, u64, bool),
        staging: &mut dyn BlobStaging,
        computed: &mut dyn BlobStaging,
    ) -> Result<([u8; 32], u64)> {
        let mut map = MapParser::default();
        let mut map_bytes = 0u64;
        if sparse {
            let max = self.limits.max_pax_header;
            loop {
                if map_bytes + BLOCK as u64 > size || map_bytes + BLOCK as u64 > max as u64 {
                    return Err(bad(member, "sparse map runs past the member or the limit"));
                }
                let mut b = [0; BLOCK];
                self.input
                    .read_exact(&mut b)
                    .map_err(|e| input_err(member, e))?;
                map_bytes += BLOCK as u64;
                if map.feed(&b, max / 4).map_err(|m| bad(member, m))? {
                    break;
                }
            }
            let data = sparse::check_extents(&map.extents, logical).map_err(|m| bad(member, m))?;
            if data != size - map_bytes {
                return Err(bad(
                    member,
                    "sparse map does not account for the member's data",
                ));
            }
        } else {
            map.extents.push((0, logical));
        }
        let mut data = MemberData {
            input: &mut self.input,
            extents: &map.extents,
            next: 0,
            pos: 0,
            size: logical,
            failure: None,
        };
        let stored = match sha {
            Some(sha) => staging.put(&sha, logical, &mut data).map(|()| sha),
            None => computed.put_computed(logical, &mut data),
        };
        let sha = match stored {
            Ok(got) => {
                if sha.is_some() && self.kept_seen.insert(got) {
                    self.kept.push((got, logical));
                }
                got
            }
            Err(e) => {
                return Err(match (data.failure.take(), e) {
                    (Some(f), _) => input_err(member, f),
                    (None, Error::BlobMismatch { message, .. }) => bad(member, message),
                    (None, e) => e,
                })
            }
        };
        self.input
            .skip_padding(size)
            .map_err(|e| input_err(member, e))?;
        self.blobs.insert(sha);
        Ok((sha, size - map_bytes))
    }

    fn check_complete(&mut self) -> Result<()> {
        let mut missing = Vec::new();
        let mut present: HashMap<[u8; 32], bool> = HashMap::new();
        for (p, e) in self.expected {
            if e.kind == FileKind::Socket || self.seen.contains_key(p) {
                continue;
            }
            if let Some(sha) = e.sha256.filter(|s| is_content(e) && self.held.contains(s)) {
                // Left out as held: the store must really have it.
                let has = match present.get(&sha) {
                    Some(&h) => h,
                    None => {
                        let h = self.store.has(&sha)?;
                        present.insert(sha, h);
                        h
                    }
                };
                if has {
                    self.receipt.held += 1;
                    let carries = e.kind == FileKind::File
                        || !e
                            .target
                            .as_ref()
                            .is_some_and(|t| self.expected.contains_key(t));
                    if carries {
                        self.receipt.held_bytes += e.size;
                    }
                    continue;
                }
            }
            missing.push(p);
        }
        if missing.is_empty() {
            return Ok(());
        }
        missing.sort();
        let first: Vec<String> = missing
            .iter()
            .take(5)
            .map(|p| rawpath::display(p))
            .collect();
        Err(bad(
            first[0].clone(),
            format!(
                "missing from the overlay ({} expected members missing: {}{})",
                missing.len(),
                first.join(", "),
                if missing.len() > 5 { ", ..." } else { "" }
            ),
        ))
    }
}

/// The entry of an amended member: the report's entry for its path, as a regular file with the
/// member's mode, owner, mtime and xattrs (size and digest are set once its data is read).
/// Owner and group names are kept only where the ids are the report's: a name is never taken
/// from an archive.
fn amended_entry(b: &Block, ext: &Ext, want: &FileEntry) -> std::result::Result<FileEntry, String> {
    let field = |f, v: Option<u64>, what| {
        v.or_else(|| ustar::parse_octal(b, f))
            .ok_or_else(|| format!("malformed {what} field"))
    };
    let id =
        |f, v, what| u32::try_from(field(f, v, what)?).map_err(|_| format!("{what} out of range"));
    let mut e = want.clone();
    e.kind = FileKind::File;
    e.target = None;
    e.rdev = None;
    e.sha256 = None;
    e.mode = (field(ustar::MODE, None, "mode")? & 0o7777) as u32;
    let (uid, gid) = (
        id(ustar::UID, ext.uid, "uid")?,
        id(ustar::GID, ext.gid, "gid")?,
    );
    if uid != want.uid {
        e.user = None;
    }
    if gid != want.gid {
        e.group = None;
    }
    (e.uid, e.gid) = (uid, gid);
    (e.mtime, e.mtime_nsec) = match ext.mtime {
        Some(t) => t,
        None => (
            i64::try_from(field(ustar::MTIME, None, "mtime")?).map_err(|e| e.to_string())?,
            0,
        ),
    };
    e.xattrs = ext.xattrs.clone();
    Ok(e)
}

/// Checks mode, owner, mtime and xattrs against the report entry.
fn check_meta(b: &Block, ext: &Ext, want: &FileEntry) -> std::result::Result<(), String> {
    let field = |f, v: Option<u64>, what| {
        v.or_else(|| ustar::parse_octal(b, f))
            .ok_or_else(|| format!("malformed {what} field"))
    };
    let mode = field(ustar::MODE, None, "mode")? & 0o7777;
    if mode != u64::from(want.mode) {
        return Err(format!(
            "mode {mode:o} differs from the report's {:o}",
            want.mode
        ));
    }
    let owner = (
        field(ustar::UID, ext.uid, "uid")?,
        field(ustar::GID, ext.gid, "gid")?,
    );
    if owner != (u64::from(want.uid), u64::from(want.gid)) {
        return Err(format!(
            "owner {}:{} differs from the report's {}:{}",
            owner.0, owner.1, want.uid, want.gid
        ));
    }
    let mtime = match ext.mtime {
        Some(t) => t,
        None => (
            i64::try_from(field(ustar::MTIME, None, "mtime")?).map_err(|e| e.to_string())?,
            0,
        ),
    };
    if mtime != (want.mtime, want.mtime_nsec) {
        return Err("mtime differs from the report's".into());
    }
    if ext.xattrs != want.xattrs {
        return Err("extended attributes differ from the report's".into());
    }
    Ok(())
}

/// One member's content as the blob store sees it: the logical file, holes as zeros.
struct MemberData<'a, R> {
    input: &'a mut Input<R>,
    /// Data extents (a dense file is one extent covering it).
    extents: &'a [Extent],
    next: usize,
    pos: u64,
    size: u64,
    /// Why the archive could not be read, kept so the caller can blame the member rather than
    /// the store that saw the error.
    failure: Option<std::io::Error>,
}

impl<R: Read> Read for MemberData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(&(off, len)) = self.extents.get(self.next) {
            if self.pos < off + len {
                break;
            }
            self.next += 1;
        }
        if buf.is_empty() || self.pos >= self.size {
            return Ok(0);
        }
        let (off, end) = self
            .extents
            .get(self.next)
            .map_or((self.size, self.size), |&(o, l)| (o, o + l));
        let want = |limit: u64| buf.len().min(usize::try_from(limit).unwrap_or(usize::MAX));
        if self.pos < off {
            let n = want(off - self.pos);
            buf[..n].fill(0);
            self.pos += n as u64;
            return Ok(n);
        }
        let n = want(end - self.pos);
        match self.input.read(&mut buf[..n]) {
            Ok(got) => {
                self.pos += got as u64;
                Ok(got)
            }
            Err(e) => {
                let kind = e.kind();
                self.failure = Some(e);
                Err(std::io::Error::new(kind, "overlay input failed"))
            }
        }
    }
}
