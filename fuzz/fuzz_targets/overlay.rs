//! The overlay tar reader, asked for a few entries of each kind, into a blob store in a
//! temporary directory.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use uforge_core::blobstore::LocalBlobStore;
use uforge_core::model::{FileEntry, FileKind, RawPath};
use uforge_core::overlay::{read_overlay, ReadLimits};

fn entry(path: &str, kind: FileKind, size: u64, target: Option<&str>) -> FileEntry {
    FileEntry {
        path: path.as_bytes().to_vec(),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        user: None,
        group: None,
        size,
        mtime: 0,
        mtime_nsec: 0,
        // SHA-256 of "hello\n".
        sha256: (size == 6).then_some([
            0x58, 0x91, 0xb5, 0xb5, 0x22, 0xd5, 0xdf, 0x08, 0x6d, 0x0f, 0xf0, 0xb1, 0x10, 0xfb,
            0xd9, 0xd2, 0x1b, 0xb4, 0xfc, 0x71, 0x63, 0xaf, 0x34, 0xd0, 0x82, 0x86, 0xa2, 0xe8,
            0x46, 0xf6, 0xbe, 0x03,
        ]),
        target: target.map(|t| t.as_bytes().to_vec()),
        rdev: None,
        xattrs: Default::default(),
        package: None,
        allocated: size,
    }
}

struct Fixture {
    store: LocalBlobStore,
    expected: HashMap<RawPath, FileEntry>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("uforge-fuzz-blobs-{}", std::process::id()));
        let store = LocalBlobStore::open(&dir).expect("blob store");
        let expected = [
            entry("/etc", FileKind::Dir, 0, None),
            entry("/etc/hostname", FileKind::File, 6, None),
            entry("/etc/link", FileKind::Symlink, 0, Some("hostname")),
            entry("/etc/same", FileKind::Hardlink, 6, Some("/etc/hostname")),
        ]
        .into_iter()
        .map(|e| (e.path.clone(), e))
        .collect();
        Fixture { store, expected }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let limits = ReadLimits {
        max_member_size: 1 << 20,
        max_total: 16 << 20,
        max_members: 1000,
        max_pax_header: 64 << 10,
    };
    let _ = read_overlay(data, &f.expected, &f.store, &limits);
});
