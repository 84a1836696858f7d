//! Reconciling real directory trees: a faithful copy from a real scan, and hostile reports
//! (their entries written by hand, as an attacker's agent would send them) against a canary
//! outside the root, which must keep its content, mode, owner and time, with nothing created
//! next to it.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::*;
use crate::analysis::compare;
use crate::blobstore::LocalBlobStore;
use crate::model::Report;
use crate::progress::NoProgress;
use crate::scan::scan_to_report;

struct World {
    tmp: tempfile::TempDir,
    outside: PathBuf,
    canary: PathBuf,
    blobs: LocalBlobStore,
    /// A scan of a small real tree, whose entries serve as templates.
    base: Report,
}

#[derive(Debug, PartialEq, Eq)]
struct Host {
    content: Vec<u8>,
    mode: u32,
    owner: (u32, u32),
    mtime: (i64, i64),
    names: Vec<std::ffi::OsString>,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("etc")).unwrap();
        std::fs::create_dir_all(src.join("srv")).unwrap();
        std::fs::write(src.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let canary = outside.join("canary");
        std::fs::write(&canary, b"host secret\n").unwrap();
        std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&canary, Some(4242), Some(4242)).unwrap();
        let base = scan_to_report(&ScanOptions::new(&src), &NoProgress).unwrap();
        let blobs = LocalBlobStore::open(tmp.path().join("blobs")).unwrap();
        World {
            tmp,
            outside,
            canary,
            blobs,
            base,
        }
    }

    fn host(&self) -> Host {
        let m = std::fs::symlink_metadata(&self.canary).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        Host {
            content: std::fs::read(&self.canary).unwrap(),
            mode: m.mode(),
            owner: (m.uid(), m.gid()),
            mtime: (m.mtime(), m.mtime_nsec()),
            names,
        }
    }

    fn entry(&self, path: &str) -> FileEntry {
        self.base
            .files
            .iter()
            .find(|e| e.path == path.as_bytes())
            .unwrap_or_else(|| panic!("{path} in the base scan"))
            .clone()
    }

    /// A regular file entry with `content`, stored in the blob store as an overlay would.
    fn file(&self, path: &[u8], content: &[u8], mode: u32) -> FileEntry {
        let sha: [u8; 32] = Sha256::digest(content).into();
        let mut st = self.blobs.stage().unwrap();
        st.put(&sha, content.len() as u64, &mut &content[..])
            .unwrap();
        st.commit().unwrap();
        FileEntry {
            path: path.to_vec(),
            mode,
            uid: 0,
            gid: 0,
            size: content.len() as u64,
            sha256: Some(sha),
            allocated: 4096,
            ..self.entry("/etc/hosts")
        }
    }

    fn symlink(&self, path: &[u8], target: &[u8]) -> FileEntry {
        FileEntry {
            path: path.to_vec(),
            kind: FileKind::Symlink,
            mode: 0o777,
            size: target.len() as u64,
            sha256: None,
            target: Some(target.to_vec()),
            ..self.entry("/etc/hosts")
        }
    }

    fn hardlink(&self, path: &[u8], first: &[u8]) -> FileEntry {
        FileEntry {
            path: path.to_vec(),
            kind: FileKind::Hardlink,
            mode: 0o666,
            uid: 0,
            gid: 0,
            target: Some(first.to_vec()),
            ..self.entry("/etc/hosts")
        }
    }

    fn dir(&self, path: &[u8]) -> FileEntry {
        FileEntry {
            path: path.to_vec(),
            ..self.entry("/srv")
        }
    }

    /// Reconciles a fresh root with the base scan plus `extra`; `prepare` makes the root
    /// as the install left it.
    fn reconcile(
        &self,
        name: &str,
        extra: Vec<FileEntry>,
        prepare: impl Fn(&Path),
    ) -> Result<ReconcileStats> {
        let mut report = self.base.clone();
        report.files.extend(extra);
        report.files.sort_by(|a, b| walk_order(&a.path, &b.path));
        let dir = self.tmp.path().join(name);
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        prepare(&root);
        let file = dir.join("report.ufr");
        report.save(&file).unwrap();
        reconcile(&root, &file, &self.blobs, &dir, &NoProgress)
    }
}

/// The error names `entry`, and the host is as it was.
fn refused(world: &World, before: &Host, r: Result<ReconcileStats>, entry: &str) -> String {
    let msg = match r {
        Err(e) => crate::error::chain(&e),
        Ok(stats) => panic!("reconciled a hostile report: {stats:?}"),
    };
    assert!(msg.contains(entry), "{msg} does not name {entry}");
    assert_eq!(&world.host(), before, "the canary outside the root changed");
    msg
}

#[test]
fn a_scan_is_reproduced_exactly() {
    let w = World::new();
    let mut setuid = w.file(b"/srv/d/setuid", b"#!/bin/true\n", 0o4755);
    setuid.xattrs.insert("user.k".into(), b"v".to_vec());
    setuid.uid = 1001;
    let second = FileEntry {
        path: b"/srv/d/twin".to_vec(),
        kind: FileKind::Hardlink,
        target: Some(setuid.path.clone()),
        ..setuid.clone()
    };
    let extra = vec![
        w.dir(b"/srv/d"),
        setuid,
        second,
        w.symlink(b"/srv/d/abs", w.canary.as_os_str().as_bytes()),
        w.file(b"/srv/empty", b"", 0o640),
    ];
    let before = w.host();
    let stats = w
        .reconcile("faithful", extra, |root| {
            // The install left a file the machine did not have, and a wrong mode.
            std::fs::create_dir_all(root.join("etc")).unwrap();
            std::fs::write(root.join("etc/leftover"), b"x").unwrap();
            std::fs::write(root.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
            std::fs::set_permissions(
                root.join("etc/hosts"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        })
        .unwrap();
    assert!(stats.unrestorable.is_empty(), "{:?}", stats.unrestorable);
    assert_eq!(stats.removed, 1);
    let dir = w.tmp.path().join("faithful");
    let again = dir.join("again.ufr");
    scan_like(&dir.join("root"), &w.base.header, &again).unwrap();
    let cmp = compare(
        ReportReader::open(&dir.join("report.ufr")).unwrap(),
        ReportReader::open(&again).unwrap(),
    )
    .unwrap();
    let diffs: Vec<_> = cmp
        .files
        .iter()
        .map(|c| {
            (
                String::from_utf8_lossy(&c.path).into_owned(),
                c.status,
                c.what.clone(),
            )
        })
        .collect();
    assert!(diffs.is_empty(), "{diffs:?}");
    assert_eq!(w.host(), before);
}

#[test]
fn a_file_below_a_symlink_out_of_the_root_is_refused() {
    let w = World::new();
    let before = w.host();
    let out = w.outside.as_os_str().as_bytes();
    let extra = vec![
        w.symlink(b"/srv/evil", out),
        w.file(b"/srv/evil/pwned.txt", b"owned\n", 0o4777),
    ];
    let r = w.reconcile("symlink-parent", extra, |_| {});
    let msg = refused(&w, &before, r, "/srv/evil/pwned.txt");
    assert!(msg.contains("/srv/evil is a symbolic link"), "{msg}");
    // A relative link climbing out of the root.
    let extra = vec![
        w.symlink(b"/srv/up", b"../../../../../../../.."),
        w.file(b"/srv/up/tmp/pwned.txt", b"owned\n", 0o644),
    ];
    refused(
        &w,
        &before,
        w.reconcile("climbing", extra, |_| {}),
        "/srv/up/tmp/pwned.txt",
    );
}

#[test]
fn an_entry_below_a_symlink_the_install_made_is_refused() {
    let w = World::new();
    let before = w.host();
    let out = w.outside.clone();
    // The link is already in the installed root (a package made it) and in the report; the
    // report then names the canary through it, with other metadata and content.
    let extra = vec![
        w.symlink(b"/srv/pkg", out.as_os_str().as_bytes()),
        w.file(b"/srv/pkg/canary", b"overwritten\n", 0o666),
        w.dir(b"/srv/pkg/newdir"),
    ];
    let r = w.reconcile("installed-link", extra, |root| {
        std::fs::create_dir_all(root.join("srv")).unwrap();
        symlink(&out, root.join("srv/pkg")).unwrap();
    });
    refused(&w, &before, r, "/srv/pkg/canary");
}

#[test]
fn hard_links_out_of_the_root_are_refused() {
    let w = World::new();
    let before = w.host();
    let out = w.outside.as_os_str().as_bytes().to_vec();
    // `..` out of the root, to the canary: root is TMP/NAME/root, the canary TMP/outside.
    let extra = vec![w.hardlink(b"/etc/shadow-copy", b"/../../outside/canary")];
    refused(
        &w,
        &before,
        w.reconcile("dotdot", extra, |_| {}),
        "/etc/shadow-copy",
    );
    // Deep enough to reach the host's own root from anywhere.
    let mut up = b"/..".repeat(64);
    up.extend_from_slice(w.canary.as_os_str().as_bytes());
    let extra = vec![w.hardlink(b"/etc/shadow-copy", &up)];
    refused(
        &w,
        &before,
        w.reconcile("dotdot-deep", extra, |_| {}),
        "/etc/shadow-copy",
    );
    // Through a symlink of the root.
    let extra = vec![
        w.symlink(b"/srv/evil", &out),
        w.hardlink(b"/srv/link", b"/srv/evil/canary"),
    ];
    let r = w.reconcile("via-symlink", extra, |_| {});
    let msg = refused(&w, &before, r, "/srv/link");
    // The report check refuses it first; the root's descriptor would refuse it too (the
    // fsroot tests show that on their own).
    assert!(
        msg.contains("/srv/evil is a symbolic link") || msg.contains("not an earlier regular file"),
        "{msg}"
    );
    // To a symlink of the root that points at the canary.
    let extra = vec![
        w.symlink(b"/srv/evil", w.canary.as_os_str().as_bytes()),
        w.hardlink(b"/srv/link", b"/srv/evil"),
    ];
    let r = w.reconcile("to-symlink", extra, |_| {});
    let msg = refused(&w, &before, r, "/srv/link");
    assert!(
        msg.contains("not a regular file") || msg.contains("not an earlier regular file"),
        "{msg}"
    );
    for name in ["dotdot", "dotdot-deep", "via-symlink", "to-symlink"] {
        let root = w.tmp.path().join(name).join("root");
        assert!(!root.join("etc/shadow-copy").exists() && !root.join("srv/link").exists());
    }
}
