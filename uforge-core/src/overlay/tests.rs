//! Overlays of real roots, cross-checked by extracting them with GNU tar and bsdtar, and hostile or
//! corrupt archives the reader must refuse without storing anything.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::ustar::{self, Block, BLOCK};
use super::*;
use crate::blobstore::{BlobStore, LocalBlobStore};
use crate::model::{FileEntry, FileKind, RawPath};
use crate::progress::NoProgress;
use crate::report::ReportReader;
use crate::scan::{scan_to_report, ScanOptions};
use crate::test_fixture::debian_root;
use crate::{rawpath, Error};

/// Scans `root`, saves the report natively, and writes an overlay of the entries `pick`
/// chooses through a reopened report, as the agent does.
fn overlay_of(
    root: &Path,
    pick: impl Fn(&FileEntry) -> bool,
) -> (Vec<FileEntry>, crate::Result<(Vec<u8>, OverlayStats)>) {
    let report = scan_to_report(&ScanOptions::new(root), &NoProgress).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("scan.ufr");
    report.save(&file).unwrap();
    let entries: Vec<FileEntry> = report.files.into_iter().filter(|e| pick(e)).collect();
    let wanted: HashSet<RawPath> = entries.iter().map(|e| e.path.clone()).collect();
    let mut reader = ReportReader::open(&file).unwrap();
    let mut out = Vec::new();
    let result = write_overlay(root, &mut reader, &wanted, &mut out, &NoProgress);
    (entries, result.map(|s| (out, s)))
}

fn expected_of(entries: &[FileEntry]) -> HashMap<RawPath, FileEntry> {
    entries
        .iter()
        .map(|e| (e.path.clone(), e.clone()))
        .collect()
}

struct Fixture {
    root: PathBuf,
    entries: Vec<FileEntry>,
    overlay: Vec<u8>,
    stats: OverlayStats,
}

/// The overlay of /srv/app and nginx.conf of the Debian fixture, written once for all tests.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = debian_root();
        let ancestors: [&[u8]; 4] = [b"/", b"/srv", b"/etc", b"/etc/nginx"];
        let (entries, result) = overlay_of(&root, |e| {
            rawpath::is_within(&e.path, b"/srv/app")
                || e.path == b"/etc/nginx/nginx.conf"
                || ancestors.contains(&&e.path[..])
        });
        let (overlay, stats) = result.unwrap();
        Fixture {
            root,
            entries,
            overlay,
            stats,
        }
    })
}

fn sha_of_file(p: &Path) -> [u8; 32] {
    let mut f = std::fs::File::open(p).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return h.finalize().into();
        }
        h.update(&buf[..n]);
    }
}

fn xattrs_of(p: &Path) -> BTreeMap<String, Vec<u8>> {
    xattr::list(p)
        .unwrap()
        .map(|n| {
            let v = xattr::get(p, &n).unwrap().unwrap_or_default();
            (n.to_string_lossy().into_owned(), v)
        })
        .collect()
}

/// Extracts `overlay` as root would on the target, with GNU tar or bsdtar, returning the
/// directory (the tree is in its `x`).
fn extract(tool: &str, overlay: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("overlay.tar");
    std::fs::write(&tar, overlay).unwrap();
    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let mut cmd = Command::new(tool);
    if tool == "tar" {
        cmd.arg("--xattrs-include=*");
    }
    let out = cmd
        .args(["--xattrs", "--numeric-owner", "-xpf"])
        .arg(&tar)
        .arg("-C")
        .arg(&x)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    // GNU tar does not know the standard `hdrcharset` record (it keeps raw bytes anyway);
    // that is the only complaint allowed.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.ends_with("Ignoring unknown extended header keyword 'hdrcharset'"))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "{tool}: {stderr}"
    );
    dir
}

/// Compares every entry as extracted under `x` with the original under `root`.
fn assert_same_tree(root: &Path, x: &Path, entries: &[FileEntry]) {
    for e in entries.iter().filter(|e| e.kind != FileKind::Socket) {
        let (a, b) = (rawpath::join(root, &e.path), rawpath::join(x, &e.path));
        let what = rawpath::display(&e.path);
        let (ma, mb) = (
            std::fs::symlink_metadata(&a).unwrap(),
            std::fs::symlink_metadata(&b).unwrap_or_else(|err| panic!("{what}: {err}")),
        );
        let ft = |m: &std::fs::Metadata| {
            let t = m.file_type();
            (
                t.is_file(),
                t.is_dir(),
                t.is_symlink(),
                t.is_fifo(),
                t.is_char_device(),
            )
        };
        assert_eq!(ft(&ma), ft(&mb), "{what}: type");
        assert_eq!((ma.uid(), ma.gid()), (mb.uid(), mb.gid()), "{what}: owner");
        // A directory's size depends on how many entries it has: only some came along.
        assert!(ma.is_dir() || ma.size() == mb.size(), "{what}: size");
        assert_eq!(xattrs_of(&a), xattrs_of(&b), "{what}: xattrs");
        if e.kind == FileKind::Symlink {
            assert_eq!(
                std::fs::read_link(&a).unwrap(),
                std::fs::read_link(&b).unwrap()
            );
            continue;
        }
        assert_eq!(ma.mode(), mb.mode(), "{what}: mode");
        // bsdtar leaves the times of the extraction directory itself alone.
        assert!(
            e.path == b"/" || (ma.mtime(), ma.mtime_nsec()) == (mb.mtime(), mb.mtime_nsec()),
            "{what}: mtime"
        );
        assert_eq!(ma.rdev(), mb.rdev(), "{what}: device");
        if ma.is_file() {
            assert_eq!(sha_of_file(&b), e.sha256.unwrap(), "{what}: content");
            assert_eq!(sha_of_file(&a), e.sha256.unwrap(), "{what}: original");
        }
    }
}

#[test]
fn fixture_overlay_extracts_with_gnu_tar_and_bsdtar() {
    let f = fixture();
    assert!(f.stats.changed.is_empty(), "{:?}", f.stats.changed);
    let kinds: HashSet<FileKind> = f.entries.iter().map(|e| e.kind).collect();
    for k in [
        FileKind::File,
        FileKind::Dir,
        FileKind::Symlink,
        FileKind::Hardlink,
        FileKind::Fifo,
        FileKind::Char,
        FileKind::Block,
    ] {
        assert!(kinds.contains(&k), "fixture has no {k:?}");
    }
    assert_eq!(f.stats.members, f.entries.len() as u64);
    assert_eq!(f.stats.bytes, f.overlay.len() as u64);
    let content: u64 = f
        .entries
        .iter()
        .filter(|e| e.kind == FileKind::File)
        .map(|e| e.size)
        .sum();
    assert_eq!(f.stats.content_bytes, content);
    // The 200 MiB sparse image travels as its 16 KiB of data.
    assert!(f.overlay.len() < 2 << 20, "{} bytes", f.overlay.len());

    for tool in ["tar", "bsdtar"] {
        let dir = extract(tool, &f.overlay);
        let x = dir.path().join("x");
        assert_same_tree(&f.root, &x, &f.entries);
        let ino = |p: &str| std::fs::metadata(x.join(p)).unwrap().ino();
        assert_eq!(ino("srv/app/hard-a"), ino("srv/app/hard-b"), "{tool}");
        assert_eq!(
            ino("srv/app/hard-a"),
            ino("srv/app/static/hard-c"),
            "{tool}"
        );
        let sparse = std::fs::metadata(x.join("srv/app/sparse.img")).unwrap();
        assert_eq!(sparse.len(), 200 << 20);
        assert!(sparse.blocks() * 512 < 1 << 20, "{tool}: extracted sparse");
        // The odd names made it through as raw bytes.
        assert!(x
            .join(std::ffi::OsStr::from_bytes(b"srv/app/caf\xe9"))
            .is_file());
        assert!(x.join("srv/app/line\nbreak").is_file());
    }
    // An independent reader agrees on the member list.
    let names: Vec<Vec<u8>> = tar::Archive::new(&f.overlay[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path_bytes().into_owned())
        .collect();
    assert_eq!(names.len(), f.entries.len());
    assert!(names.iter().any(|n| n.len() > 100));
}

#[test]
fn fixture_overlay_reads_into_the_store() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(tmp.path()).unwrap();
    let receipt = read_overlay(
        &f.overlay[..],
        &expected_of(&f.entries),
        &store,
        &ReadLimits::default(),
    )
    .unwrap();
    let shas: HashSet<[u8; 32]> = f
        .entries
        .iter()
        .filter(|e| e.kind == FileKind::File)
        .map(|e| e.sha256.unwrap())
        .collect();
    assert_eq!(
        receipt,
        OverlayReceipt {
            members: f.entries.len() as u64,
            blobs: shas.len() as u64,
            content_bytes: f.stats.content_bytes,
            archive_bytes: f.overlay.len() as u64,
            ..Default::default()
        }
    );
    for sha in &shas {
        assert!(store.has(sha).unwrap());
    }
    let img = f
        .entries
        .iter()
        .find(|e| e.path == b"/srv/app/sparse.img")
        .unwrap();
    let mut blob = store.open(&img.sha256.unwrap()).unwrap();
    let mut h = Sha256::new();
    let n = std::io::copy(&mut blob, &mut h).unwrap();
    assert_eq!(n, 200 << 20);
    assert_eq!(<[u8; 32]>::from(h.finalize()), img.sha256.unwrap());
    assert_store_empty_staging(tmp.path());
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                1 + count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

fn assert_store_empty_staging(store: &Path) {
    assert_eq!(count_files(&store.join("staging")), 0, "staging leftovers");
}

/// Reads `tar` into a fresh store, expecting a refusal that mentions `needle`, and checks that
/// nothing was stored or left staged.
fn refused(tar: &[u8], expected: &HashMap<RawPath, FileEntry>, limits: &ReadLimits, needle: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(tmp.path()).unwrap();
    let err = read_overlay(tar, expected, &store, limits).expect_err(needle);
    assert!(matches!(err, Error::Overlay { .. }), "{err}");
    assert!(
        err.to_string().contains(needle),
        "{err} (wanted {needle:?})"
    );
    assert_eq!(
        count_files(&tmp.path().join("sha256")),
        0,
        "{needle}: blobs kept"
    );
    assert_store_empty_staging(tmp.path());
}

/// Where a member's data starts in an archive, by an independent reader.
fn data_offset(tar: &[u8], name: &[u8]) -> usize {
    tar::Archive::new(tar)
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| &*e.path_bytes() == name)
        .unwrap()
        .raw_file_position() as usize
}

#[test]
fn corrupt_fixture_overlays_are_refused() {
    let f = fixture();
    let expected = expected_of(&f.entries);
    let limits = ReadLimits::default();

    let mut flipped = f.overlay.clone();
    flipped[data_offset(&f.overlay, b"srv/app/data.bin") + 1000] ^= 0x40;
    refused(&flipped, &expected, &limits, "content hashes to");

    refused(
        &f.overlay[..f.overlay.len() / 2],
        &expected,
        &limits,
        "truncated",
    );
    let without_end = &f.overlay[..f.overlay.len() - 2 * BLOCK];
    refused(without_end, &expected, &limits, "truncated");

    let mut bad_sum = f.overlay.clone();
    bad_sum[0] ^= 1;
    refused(&bad_sum, &expected, &limits, "bad header checksum");

    let small = ReadLimits {
        max_member_size: 100_000,
        ..ReadLimits::default()
    };
    refused(&f.overlay, &expected, &small, "over the limit");
    let few = ReadLimits {
        max_members: 3,
        ..ReadLimits::default()
    };
    refused(&f.overlay, &expected, &few, "limit of 3 members");

    let mut more = expected.clone();
    let mut ghost = more[&b"/srv/app/data.bin"[..]].clone();
    ghost.path = b"/srv/app/ghost".to_vec();
    more.insert(ghost.path.clone(), ghost);
    refused(&f.overlay, &more, &limits, "missing from the overlay");

    let mut fewer = expected.clone();
    fewer.remove(&b"/srv/app/config.ini"[..]);
    refused(&f.overlay, &fewer, &limits, "was not asked for");

    let mut other = expected.clone();
    other
        .get_mut(&b"/srv/app/dangling-link"[..])
        .unwrap()
        .target = Some(b"/elsewhere".to_vec());
    refused(&f.overlay, &other, &limits, "symlink target");
}

/// A report entry for hand-built archives.
fn entry(path: &[u8], kind: FileKind, content: &[u8], target: Option<&[u8]>) -> FileEntry {
    FileEntry {
        path: path.to_vec(),
        kind,
        mode: if kind == FileKind::Dir { 0o755 } else { 0o644 },
        uid: 0,
        gid: 0,
        user: None,
        group: None,
        size: content.len() as u64,
        mtime: 1_700_000_000,
        mtime_nsec: 0,
        sha256: matches!(kind, FileKind::File | FileKind::Hardlink)
            .then(|| Sha256::digest(content).into()),
        target: target.map(<[u8]>::to_vec),
        rdev: None,
        xattrs: BTreeMap::new(),
        package: None,
        allocated: 0,
    }
}

/// One hand-built member: raw name, type flag, link name, data, and the entry whose metadata
/// the header carries.
#[derive(Clone, Copy)]
struct Raw<'a>(&'a [u8], u8, &'a [u8], &'a [u8], &'a FileEntry);

fn raw_tar(members: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for Raw(name, flag, link, data, e) in members {
        let mut b: Block = [0; BLOCK];
        ustar::put_bytes(&mut b, ustar::NAME, name);
        ustar::put_bytes(&mut b, ustar::LINKNAME, link);
        ustar::put_octal(&mut b, ustar::MODE, u64::from(e.mode));
        ustar::put_octal(&mut b, ustar::UID, 0);
        ustar::put_octal(&mut b, ustar::GID, 0);
        ustar::put_octal(&mut b, ustar::SIZE, data.len() as u64);
        ustar::put_octal(&mut b, ustar::MTIME, e.mtime as u64);
        b[ustar::TYPEFLAG] = *flag;
        ustar::put_bytes(&mut b, ustar::MAGIC, ustar::MAGIC_POSIX);
        ustar::set_checksum(&mut b);
        out.extend_from_slice(&b);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    }
    out.resize(out.len() + 2 * BLOCK, 0);
    out
}

#[test]
fn hostile_archives_are_refused() {
    let root = entry(b"/", FileKind::Dir, b"", None);
    let a = entry(b"/a", FileKind::File, b"hello\n", None);
    let d = entry(b"/d", FileKind::Dir, b"", None);
    let l = entry(b"/d/l", FileKind::Symlink, b"", Some(b"../a"));
    let h = entry(b"/h", FileKind::Hardlink, b"hello\n", Some(b"/a"));
    let expected = expected_of(&[root.clone(), a.clone(), d.clone(), l.clone(), h.clone()]);
    let limits = ReadLimits::default();
    let good = [
        Raw(b"./", b'5', b"", b"", &root),
        Raw(b"a", b'0', b"", b"hello\n", &a),
        Raw(b"d/", b'5', b"", b"", &d),
        Raw(b"d/l", b'2', b"../a", b"", &l),
        Raw(b"h", b'1', b"a", b"", &h),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(tmp.path()).unwrap();
    let receipt = read_overlay(&raw_tar(&good)[..], &expected, &store, &limits).unwrap();
    assert_eq!(
        (receipt.members, receipt.blobs, receipt.content_bytes),
        (5, 1, 6)
    );

    let with = |i: usize, m| {
        let mut v: Vec<Raw> = good.iter().map(|r| Raw(r.0, r.1, r.2, r.3, r.4)).collect();
        v[i] = m;
        raw_tar(&v)
    };
    let mut loose = a.clone();
    loose.mode = 0o4755;
    let (a2, h2, l2, d2) = (&a, &h, &l, &d);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            with(1, Raw(b"/a", b'0', b"", b"hello\n", a2)),
            "absolute path",
        ),
        (with(1, Raw(b"d/../a", b'0', b"", b"hello\n", a2)), "'..'"),
        (
            with(1, Raw(b"b", b'0', b"", b"hello\n", a2)),
            "was not asked for",
        ),
        (with(1, Raw(b"a", b'0', b"", b"hellO\n", a2)), "hashes to"),
        (
            with(1, Raw(b"a", b'0', b"", b"hello\n\n", a2)),
            "the report says 6",
        ),
        (
            with(2, Raw(b"a", b'0', b"", b"hello\n", a2)),
            "appears twice",
        ),
        (
            with(2, Raw(b"d", b'0', b"", b"", d2)),
            "is a file in the overlay but a dir",
        ),
        (
            with(3, Raw(b"d/l", b'2', b"../b", b"", l2)),
            "symlink target",
        ),
        (
            with(4, Raw(b"h", b'1', b"d", b"", h2)),
            "not an earlier regular file",
        ),
        (
            with(4, Raw(b"h", b'1', b"zz", b"", h2)),
            "not an earlier regular file",
        ),
        (
            with(4, Raw(b"h", b'1', b"d/../a", b"", h2)),
            "refused hard link target",
        ),
        (
            with(4, Raw(b"h", b'1', b"/a", b"", h2)),
            "refused hard link target",
        ),
        (
            with(4, Raw(b"h", b'0', b"", b"hello\n", h2)),
            "is a file in the overlay",
        ),
        (
            with(4, Raw(b"h", b'7', b"", b"", h2)),
            "unsupported member type",
        ),
    ];
    for (tar, needle) in &cases {
        refused(tar, &expected, &limits, needle);
    }
    // A hard link ahead of its target.
    let early = raw_tar(&[
        Raw(b"./", b'5', b"", b"", &root),
        Raw(b"h", b'1', b"a", b"", &h),
        Raw(b"a", b'0', b"", b"hello\n", &a),
    ]);
    refused(&early, &expected, &limits, "not an earlier regular file");
    // Wrong metadata, and a header the checksum does not cover.
    let tar = with(1, Raw(b"a", b'0', b"", b"hello\n", &loose));
    refused(&tar, &expected, &limits, "mode 4755 differs");
    let mut tar = raw_tar(&good);
    tar[BLOCK + ustar::MODE.0 + 4] = b'7';
    refused(&tar, &expected, &limits, "bad header checksum");
    // pax headers: malformed records, and more of them than allowed.
    let pax_member = |records: &[u8]| {
        let mut x = raw_tar(&[Raw(b"PaxHeader", b'x', b"", records, &a)]);
        x.truncate(x.len() - 2 * BLOCK);
        x.extend_from_slice(&raw_tar(&good));
        x
    };
    refused(
        &pax_member(b"8 path=a\n"),
        &expected,
        &limits,
        "pax record length",
    );
    let tight = ReadLimits {
        max_pax_header: 16,
        ..ReadLimits::default()
    };
    refused(
        &pax_member(b"14 path=./abc\n14 path=./abc\n"),
        &expected,
        &tight,
        "extended headers over the limit",
    );
    refused(
        &pax_member(b"11 path=/a\n"),
        &expected,
        &limits,
        "absolute path",
    );
    // A file content bigger than the total allowed.
    let total = ReadLimits {
        max_total: 3 * BLOCK as u64,
        ..ReadLimits::default()
    };
    refused(&raw_tar(&good), &expected, &total, "limit");
}

/// A temporary root holding what the Debian fixture lacks: names and link targets only pax can
/// carry, ids beyond ustar, a sparse file with a raw name, nanosecond times.
#[test]
fn pax_extensions_extract_with_gnu_tar_and_bsdtar() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let deep = root.join("d".repeat(200));
    std::fs::create_dir_all(&deep).unwrap();
    let raw_name = std::ffi::OsStr::from_bytes(b"sparse-\xff\xfe-file");
    let sparse = deep.join(raw_name);
    let f = std::fs::File::create(&sparse).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"tail data", (64 << 20) - 9).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[3; 5000], 1 << 20).unwrap();
    drop(f);
    let long = deep.join(format!("{}.txt", "n".repeat(120)));
    std::fs::write(&long, b"long name\n").unwrap();
    std::os::unix::fs::chown(&long, Some(3_000_000), Some(4_000_000)).unwrap();
    std::os::unix::fs::symlink("t".repeat(150), root.join("long-link")).unwrap();
    std::os::unix::fs::symlink(
        std::ffi::OsStr::from_bytes(b"\xe9t\xe9"),
        root.join("raw-link"),
    )
    .unwrap();
    let hole_only = root.join("holes");
    std::fs::File::create(&hole_only)
        .unwrap()
        .set_len(10 << 20)
        .unwrap();
    // A socket tar cannot carry, and an inode whose first name is not wanted.
    let _listener = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    std::fs::write(root.join("hl-first"), b"shared\n").unwrap();
    std::fs::hard_link(root.join("hl-first"), root.join("hl-second")).unwrap();
    std::fs::hard_link(root.join("hl-first"), root.join("hl-third")).unwrap();
    let (entries, result) = overlay_of(&root, |e| e.path != b"/hl-first");
    let (overlay, stats) = result.unwrap();
    assert!(stats.changed.is_empty());
    assert_eq!(stats.skipped, 1);
    assert_eq!(stats.members, entries.len() as u64 - 1);
    let kind = |p: &[u8]| entries.iter().find(|e| e.path == p).unwrap().kind;
    assert_eq!(kind(b"/sock"), FileKind::Socket);
    assert_eq!(kind(b"/hl-second"), FileKind::Hardlink);
    assert!(overlay.len() < 1 << 20, "{} bytes", overlay.len());
    for tool in ["tar", "bsdtar"] {
        let dir = extract(tool, &overlay);
        let x = dir.path().join("x");
        assert_same_tree(&root, &x, &entries);
        let ino = |p: &str| std::fs::metadata(x.join(p)).unwrap().ino();
        assert_eq!(ino("hl-second"), ino("hl-third"), "{tool}");
        assert!(!x.join("hl-first").exists() && !x.join("sock").exists());
    }

    let store_dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(store_dir.path()).unwrap();
    let receipt = read_overlay(
        &overlay[..],
        &expected_of(&entries),
        &store,
        &ReadLimits::default(),
    )
    .unwrap();
    assert_eq!(receipt.content_bytes, (64 << 20) + (10 << 20) + 10 + 7);
}

/// Whether an extraction complaint is about a record that only uforge reads (GNU tar names
/// the unknown keywords it ignores).
fn uforge_keyword(line: &str) -> bool {
    line.contains("Ignoring unknown extended header keyword 'UFORGE.")
}

#[test]
fn files_changed_since_the_scan_are_sent_as_they_are_now() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    for (name, body) in [
        ("keep", "kept\n"),
        ("grow", "grows\n"),
        ("rewrite", "old cache\n"),
        ("gone", "short-lived\n"),
        ("chmod", "same bytes\n"),
        ("same", "original\n"),
    ] {
        std::fs::write(root.join(name), body).unwrap();
    }
    std::fs::hard_link(root.join("grow"), root.join("grow-too")).unwrap();
    let report = scan_to_report(&ScanOptions::new(&root), &NoProgress).unwrap();
    let file = tmp.path().join("scan.ufr");
    report.save(&file).unwrap();

    // The machine lives on: a log appended to, a cache replaced, a file deleted, a mode changed.
    use std::io::Write as _;
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(root.join("grow"))
        .unwrap();
    log.write_all(b"and grew\n").unwrap();
    drop(log);
    std::fs::write(root.join("rewrite.new"), "new cache, longer\n").unwrap();
    std::fs::rename(root.join("rewrite.new"), root.join("rewrite")).unwrap();
    std::fs::remove_file(root.join("gone")).unwrap();
    std::fs::set_permissions(
        root.join("chmod"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();

    let write = |file: &Path, paths: &[&[u8]]| {
        let wanted: HashSet<RawPath> = paths.iter().map(|p| p.to_vec()).collect();
        let mut out = Vec::new();
        let r = write_overlay(
            &root,
            &mut ReportReader::open(file).unwrap(),
            &wanted,
            &mut out,
            &NoProgress,
        );
        r.map(|s| (s, out))
    };
    let all: Vec<&[u8]> = report
        .files
        .iter()
        .filter(|e| e.path != b"/same")
        .map(|e| &e.path[..])
        .collect();
    let (stats, out) = write(&file, &all).unwrap();
    let mut changed: Vec<(&[u8], &str)> = stats
        .changed
        .iter()
        .map(|e| (&e.path[..], e.op.as_str()))
        .collect();
    changed.sort();
    assert_eq!(
        changed,
        [
            (&b"/chmod"[..], "amended"),
            (b"/gone", "vanished"),
            (b"/grow", "amended"),
            (b"/grow-too", "amended"),
            (b"/rewrite", "amended"),
        ]
    );

    // Standard tools extract the files as they are now.
    for tool in ["tar", "bsdtar"] {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("overlay.tar");
        std::fs::write(&tar, &out).unwrap();
        let run = Command::new(tool)
            .args(["-xpf"])
            .arg(&tar)
            .arg("-C")
            .arg(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            run.status.success() && stderr.lines().all(uforge_keyword),
            "{tool}: {stderr}"
        );
        let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap();
        assert_eq!(read("grow"), "grows\nand grew\n", "{tool}");
        assert_eq!(read("grow-too"), "grows\nand grew\n", "{tool}");
        assert_eq!(read("rewrite"), "new cache, longer\n", "{tool}");
        assert!(!dir.path().join("gone").exists(), "{tool}");
        let mode = std::fs::metadata(dir.path().join("chmod")).unwrap().mode();
        assert_eq!(mode & 0o7777, 0o600, "{tool}");
    }

    // The receiver checks every member against the report, takes the amended ones as they
    // came (digest computed over their data) and notes the vanished one.
    let store_dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(store_dir.path()).unwrap();
    let expected: HashMap<RawPath, FileEntry> = expected_of(&report.files)
        .into_iter()
        .filter(|(p, _)| p != b"/same")
        .collect();
    let receipt = read_overlay(&out[..], &expected, &store, &ReadLimits::default()).unwrap();
    assert_eq!(receipt.vanished, [b"/gone".to_vec()]);
    let mut amended: Vec<&FileEntry> = receipt.amended.iter().collect();
    amended.sort_by(|a, b| a.path.cmp(&b.path));
    let paths: Vec<&[u8]> = amended.iter().map(|e| &e.path[..]).collect();
    assert_eq!(paths, [&b"/chmod"[..], b"/grow", b"/grow-too", b"/rewrite"]);
    for e in &amended {
        let disk = rawpath::join(&root, &e.path);
        let meta = std::fs::metadata(&disk).unwrap();
        assert_eq!(e.kind, FileKind::File, "{e:?}");
        assert_eq!(e.sha256, Some(sha_of_file(&disk)), "{e:?}");
        assert_eq!(
            (e.size, e.mode),
            (meta.len(), meta.mode() & 0o7777),
            "{e:?}"
        );
        assert_eq!(
            (e.mtime, e.mtime_nsec),
            (meta.mtime(), meta.mtime_nsec() as u32)
        );
        assert!(store.has(&e.sha256.unwrap()).unwrap());
    }

    // The stored report and analysis are amended to match what was shipped ...
    let mut analysis = crate::analysis::Analysis {
        wanted: all.iter().map(|p| p.to_vec()).collect(),
        unknown_files: all.iter().map(|p| p.to_vec()).collect(),
        ..Default::default()
    };
    assert!(amend_report(&file, &mut analysis, &receipt).unwrap());
    assert!(!analysis.wanted.contains(&b"/gone".to_vec()));
    assert!(!analysis.unknown_files.contains(&b"/gone".to_vec()));
    let after = crate::model::Report::load(&file).unwrap();
    assert!(after.files.iter().all(|e| e.path != b"/gone"));
    for e in &amended {
        assert!(after.files.contains(e), "{e:?}");
    }
    let notes: Vec<(&[u8], &str)> = after
        .trailer
        .errors
        .iter()
        .map(|e| (&e.path[..], e.op.as_str()))
        .collect();
    assert!(notes.contains(&(&b"/gone"[..], "vanished")), "{notes:?}");
    assert!(notes.contains(&(&b"/grow"[..], "amended")), "{notes:?}");
    assert_eq!(
        after.trailer.stats.entries,
        report.trailer.stats.entries - 1
    );

    // ... so that the machine as it is now matches the amended report exactly.
    let wanted: Vec<&[u8]> = analysis.wanted.iter().map(|p| &p[..]).collect();
    let (stats, out) = write(&file, &wanted).unwrap();
    assert!(stats.changed.is_empty(), "{:?}", stats.changed);
    let expected = analysis
        .expected(ReportReader::open(&file).unwrap())
        .unwrap();
    let receipt = read_overlay(&out[..], &expected, &store, &ReadLimits::default()).unwrap();
    assert!(receipt.amended.is_empty() && receipt.vanished.is_empty());

    // Same size, mtime put back: only the digest can tell.
    let same = report.files.iter().find(|e| e.path == b"/same").unwrap();
    std::fs::write(root.join("same"), "ORIGINAL\n").unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::new(same.mtime as u64, same.mtime_nsec);
    std::fs::File::options()
        .write(true)
        .open(root.join("same"))
        .unwrap()
        .set_modified(when)
        .unwrap();
    let err = write(&file, &[b"/same"]).unwrap_err();
    assert!(
        matches!(&err, Error::Overlay { member, .. } if member == "/same"),
        "{err}"
    );
    assert!(err.to_string().contains("SHA-256"), "{err}");
}

#[test]
fn a_directory_replaced_by_a_link_since_the_scan_is_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(root.join("srv/dir")).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(root.join("srv/dir/f"), b"image data\n").unwrap();
    let report = scan_to_report(&ScanOptions::new(&root), &NoProgress).unwrap();
    let file = tmp.path().join("scan.ufr");
    report.save(&file).unwrap();
    // The same name, size and time outside the root, behind a link where the directory was.
    std::fs::write(outside.join("f"), b"HOST SECRET").unwrap();
    let f = report
        .files
        .iter()
        .find(|e| e.path == b"/srv/dir/f")
        .unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::new(f.mtime as u64, f.mtime_nsec);
    std::fs::File::options()
        .write(true)
        .open(outside.join("f"))
        .unwrap()
        .set_modified(when)
        .unwrap();
    std::fs::remove_dir_all(root.join("srv/dir")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("srv/dir")).unwrap();

    let mut out = Vec::new();
    let stats = write_tree(
        &root,
        &mut ReportReader::open(&file).unwrap(),
        &mut out,
        &NoProgress,
    )
    .unwrap();
    let left: Vec<_> = stats.changed.iter().map(|e| &e.path[..]).collect();
    assert_eq!(left, [&b"/srv/dir/f"[..]]);
    assert!(
        stats.changed[0]
            .message
            .contains("/srv/dir is a symbolic link"),
        "{:?}",
        stats.changed
    );
    assert!(
        !out.windows(11).any(|w| w == b"HOST SECRET"),
        "the host file went into the archive"
    );
}

/// An extended header (`x` for the next member, `g` for the archive) holding `records`.
fn pax_header(flag: u8, records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut data = Vec::new();
    for (k, v) in records {
        super::pax::push(&mut data, k.as_bytes(), v);
    }
    let mut b: Block = [0; BLOCK];
    ustar::put_bytes(&mut b, ustar::NAME, b"././@PaxHeader");
    ustar::put_octal(&mut b, ustar::MODE, 0o644);
    ustar::put_octal(&mut b, ustar::SIZE, data.len() as u64);
    b[ustar::TYPEFLAG] = flag;
    ustar::put_bytes(&mut b, ustar::MAGIC, ustar::MAGIC_POSIX);
    ustar::set_checksum(&mut b);
    let mut out = b.to_vec();
    out.extend_from_slice(&data);
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    out
}

/// Amended members and vanished records may change the content and metadata of a wanted file,
/// nothing else.
#[test]
fn amendments_are_checked_like_members() {
    let root = entry(b"/", FileKind::Dir, b"", None);
    let a = entry(b"/a", FileKind::File, b"hello\n", None);
    let d = entry(b"/d", FileKind::Dir, b"", None);
    let l = entry(b"/d/l", FileKind::Symlink, b"", Some(b"../a"));
    let expected = expected_of(&[root.clone(), a.clone(), d.clone(), l.clone()]);
    let limits = ReadLimits::default();
    let mut now = entry(b"/a", FileKind::File, b"changed since\n", None);
    now.mode = 0o600;
    now.mtime += 60;
    let amended = pax_header(b'x', &[("UFORGE.amended", b"1")]);
    let body = |mid: &[u8], rest: &[Raw]| {
        let mut t = raw_tar(&[Raw(b"./", b'5', b"", b"", &root)]);
        t.truncate(t.len() - 2 * BLOCK);
        t.extend_from_slice(mid);
        t.extend_from_slice(&raw_tar(rest));
        t
    };
    let tail = [
        Raw(b"d/", b'5', b"", b"", &d),
        Raw(b"d/l", b'2', b"../a", b"", &l),
    ];
    let member = |r: Raw| {
        let mut t = raw_tar(&[r]);
        t.truncate(t.len() - 2 * BLOCK);
        t
    };

    // Accepted: the content and metadata of /a as they are now, digest computed on arrival.
    let good = body(
        &[
            amended.clone(),
            member(Raw(b"a", b'0', b"", b"changed since\n", &now)),
        ]
        .concat(),
        &tail,
    );
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(tmp.path()).unwrap();
    let receipt = read_overlay(&good[..], &expected, &store, &limits).unwrap();
    assert_eq!(receipt.amended.len(), 1);
    let got = &receipt.amended[0];
    assert_eq!(got.sha256, now.sha256);
    assert_eq!((got.size, got.mode, got.mtime), (14, 0o600, now.mtime));
    assert!(store.has(&now.sha256.unwrap()).unwrap());

    // Accepted: /a recorded as vanished.
    let gone = pax_header(b'g', &[("UFORGE.vanished", b"/a")]);
    let receipt = read_overlay(&body(&gone, &tail)[..], &expected, &store, &limits).unwrap();
    assert_eq!(receipt.vanished, [b"/a".to_vec()]);

    let not_wanted = entry(b"/b", FileKind::File, b"x\n", None);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            body(
                &[
                    amended.clone(),
                    member(Raw(b"b", b'0', b"", b"x\n", &not_wanted)),
                ]
                .concat(),
                &[&[Raw(b"a", b'0', b"", b"hello\n", &a)][..], &tail].concat(),
            ),
            "was not asked for",
        ),
        (
            body(
                &[
                    member(Raw(b"a", b'0', b"", b"hello\n", &a)),
                    member(Raw(b"d/", b'5', b"", b"", &d)),
                    amended.clone(),
                    member(Raw(b"d/l", b'2', b"/etc/shadow", b"", &l)),
                ]
                .concat(),
                &[],
            ),
            "an amended member must be a regular file",
        ),
        (
            body(
                &[
                    member(Raw(b"a", b'0', b"", b"hello\n", &a)),
                    amended.clone(),
                    member(Raw(b"d", b'0', b"", b"x\n", &d)),
                ]
                .concat(),
                &tail[1..],
            ),
            "standing for a file or hard link",
        ),
        (
            body(
                &[
                    member(Raw(b"a", b'0', b"", b"hello\n", &a)),
                    pax_header(b'g', &[("UFORGE.vanished", b"/d")]),
                ]
                .concat(),
                &tail[1..],
            ),
            "a dir cannot be recorded as vanished",
        ),
        (
            body(
                &[
                    pax_header(b'g', &[("UFORGE.vanished", b"/zz")]),
                    member(Raw(b"a", b'0', b"", b"hello\n", &a)),
                ]
                .concat(),
                &tail,
            ),
            "recorded as vanished but was not asked for",
        ),
        (
            body(
                &[gone.clone(), member(Raw(b"a", b'0', b"", b"hello\n", &a))].concat(),
                &tail,
            ),
            "appears twice",
        ),
        // Without the record, a changed file is refused as before.
        (
            body(
                &member(Raw(b"a", b'0', b"", b"changed since\n", &now)),
                &tail,
            ),
            "differs from the report",
        ),
        (body(&[], &tail), "missing from the overlay"),
    ];
    for (tar, needle) in cases {
        refused(&tar, &expected, &limits, needle);
    }
}

#[test]
fn an_interrupted_overlay_keeps_what_verified_and_the_rest_completes_it() {
    let f = fixture();
    let expected = expected_of(&f.entries);
    let limits = ReadLimits::default();
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(tmp.path()).unwrap();
    let none = HashSet::new();

    // Cut at 60% of its bytes: the contents that arrived whole stay, the one cut does not.
    let cut = &f.overlay[..f.overlay.len() * 6 / 10];
    let i = read_overlay_resumable(cut, &expected, &store, &limits, &none).unwrap_err();
    assert!(i.error.to_string().contains("truncated"), "{}", i.error);
    assert!(!i.kept.is_empty());
    // By an independent reader: the regular members whose data lies before the cut, and the
    // one the cut falls in.
    let entry_of = |name: &[u8]| {
        let p = format!("/{}", String::from_utf8_lossy(name));
        expected.get(p.trim_end_matches('/').as_bytes()).cloned()
    };
    let (mut arrived, mut torn) = (HashSet::new(), None);
    for e in tar::Archive::new(cut)
        .entries()
        .unwrap()
        .map_while(|e| e.ok())
    {
        let end = e.raw_file_position() + e.size();
        let Some(r) = entry_of(&e.path_bytes()).filter(|r| r.kind == FileKind::File) else {
            continue;
        };
        if end <= cut.len() as u64 {
            arrived.insert(r.sha256.unwrap());
        } else if e.raw_file_position() < cut.len() as u64 {
            torn = r.sha256;
        }
    }
    let kept: HashSet<[u8; 32]> = i.kept.iter().map(|k| k.0).collect();
    assert!(kept.is_superset(&arrived), "a whole content was not kept");
    let files: HashSet<[u8; 32]> = f
        .entries
        .iter()
        .filter(|e| e.kind == FileKind::File)
        .filter_map(|e| e.sha256)
        .collect();
    assert!(kept.is_subset(&files));
    if let Some(t) = torn.filter(|t| !arrived.contains(t)) {
        assert!(!store.has(&t).unwrap(), "the member cut in two was stored");
    }
    for (sha, _) in &i.kept {
        assert!(store.has(sha).unwrap());
    }
    let all: HashSet<[u8; 32]> = f.entries.iter().filter_map(|e| e.sha256).collect();
    let stored = all.iter().filter(|s| store.has(s).unwrap()).count();
    assert_eq!(stored, kept.len(), "only what was kept is stored");
    assert_store_empty_staging(tmp.path());

    // The second overlay carries only what the store lacks.
    let held = held_entries(&expected, |s| store.has(s)).unwrap();
    assert_eq!(held.digests, kept);
    assert!(held.bytes >= i.kept_bytes() && i.kept_bytes() > 0);
    let skip: HashSet<&RawPath> = held.paths.iter().collect();
    let (rest, result) = overlay_of(&f.root, |e| {
        expected.contains_key(&e.path) && !skip.contains(&e.path)
    });
    let (overlay, stats) = result.unwrap();
    assert_eq!(rest.len() + held.paths.len(), f.entries.len());
    assert_eq!(
        stats.content_bytes + held.bytes,
        f.stats.content_bytes,
        "the rest carries exactly the content not held"
    );
    // Without the held digests it is incomplete; with them it completes the scan.
    let err = read_overlay(&overlay[..], &expected, &store, &limits).unwrap_err();
    assert!(
        err.to_string().contains("missing from the overlay"),
        "{err}"
    );
    let receipt =
        read_overlay_resumable(&overlay[..], &expected, &store, &limits, &held.digests).unwrap();
    assert_eq!(receipt.held, held.paths.len() as u64);
    assert_eq!(receipt.held_bytes, held.bytes);
    assert_eq!(receipt.archive_bytes, overlay.len() as u64);
    for sha in &all {
        let mut blob = store.open(sha).unwrap();
        let mut h = Sha256::new();
        std::io::copy(&mut blob, &mut h).unwrap();
        assert_eq!(<[u8; 32]>::from(h.finalize()), *sha);
    }
    assert_store_empty_staging(tmp.path());
}

#[test]
fn a_rejected_member_is_not_kept_but_the_good_ones_before_it_are() {
    let f = fixture();
    let expected = expected_of(&f.entries);
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(tmp.path()).unwrap();
    let mut flipped = f.overlay.clone();
    let at = data_offset(&f.overlay, b"srv/app/data.bin");
    flipped[at + 1000] ^= 0x40;
    let bad = expected[&b"/srv/app/data.bin"[..]].sha256.unwrap();
    let i = read_overlay_resumable(
        &flipped[..],
        &expected,
        &store,
        &ReadLimits::default(),
        &HashSet::new(),
    )
    .unwrap_err();
    let text = i.error.to_string();
    assert!(
        text.contains("srv/app/data.bin") && text.contains("content hashes to"),
        "{text}"
    );
    assert!(!i.kept.is_empty(), "members before it verified");
    assert!(i.kept.iter().all(|(s, _)| *s != bad));
    assert!(!store.has(&bad).unwrap(), "the rejected member was stored");
    for (sha, _) in &i.kept {
        assert!(store.has(sha).unwrap());
    }
    assert_store_empty_staging(tmp.path());

    // A digest said to be held that the store does not have satisfies nothing.
    let other = tempfile::tempdir().unwrap();
    let empty = LocalBlobStore::open(other.path()).unwrap();
    let mut fewer = HashMap::new();
    let e = expected[&b"/srv/app/config.ini"[..]].clone();
    fewer.insert(e.path.clone(), e.clone());
    let held: HashSet<[u8; 32]> = [e.sha256.unwrap()].into();
    let end = [0u8; 2 * BLOCK];
    let err = read_overlay_resumable(&end[..], &fewer, &empty, &ReadLimits::default(), &held)
        .unwrap_err();
    assert!(
        err.error.to_string().contains("missing from the overlay"),
        "{}",
        err.error
    );
}
