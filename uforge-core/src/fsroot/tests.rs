//! Real directory trees with a canary outside the root: whatever the root's links say, the
//! canary keeps its content, mode, owner and time, and nothing appears next to it.

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;

/// A root and, beside it, a directory with a canary file that no operation may reach.
struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
    canary: PathBuf,
    was: Canary,
}

#[derive(Debug, PartialEq, Eq)]
struct Canary {
    content: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    names: Vec<std::ffi::OsString>,
    xattrs: Vec<std::ffi::OsString>,
}

fn canary_state(outside: &Path, canary: &Path) -> Canary {
    let m = std::fs::symlink_metadata(canary).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    Canary {
        content: std::fs::read(canary).unwrap(),
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        mtime: m.mtime(),
        names,
        xattrs: xattr::list(canary).unwrap().collect(),
    }
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir(&outside).unwrap();
    let canary = outside.join("canary");
    std::fs::write(&canary, b"host secret\n").unwrap();
    std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o600)).unwrap();
    let was = canary_state(&outside, &canary);
    Setup {
        _tmp: tmp,
        root,
        outside,
        canary,
        was,
    }
}

impl Setup {
    fn untouched(&self) {
        assert_eq!(canary_state(&self.outside, &self.canary), self.was);
    }

    /// `root/NAME -> outside` (absolute) and `root/up -> ../..` (relative, escaping).
    fn hostile_links(&self) {
        symlink(&self.outside, self.root.join("evil")).unwrap();
        symlink("../../../../../../..", self.root.join("up")).unwrap();
        symlink(&self.canary, self.root.join("canary-link")).unwrap();
    }

    fn roots(&self, links: Links) -> [RootDir; 2] {
        [
            RootDir::open(&self.root, links).unwrap(),
            RootDir::open(&self.root, links).unwrap().walking(),
        ]
    }
}

fn refused(r: Result<impl std::fmt::Debug>, what: &str) -> String {
    match r {
        Err(e @ Error::Refused { .. }) => {
            let m = e.to_string();
            assert!(m.contains(what), "{m} does not name {what}");
            m
        }
        other => panic!("expected a refusal naming {what}, got {other:?}"),
    }
}

#[test]
fn refuse_mode_never_goes_through_a_link() {
    let s = setup();
    s.hostile_links();
    for r in s.roots(Links::Refuse) {
        let m = refused(r.create(b"/evil/pwned", 0o644, Create::New), "/evil");
        assert!(m.contains("symbolic link"), "{m}");
        refused(r.create(b"/evil/canary", 0o644, Create::Truncate), "/evil");
        refused(r.node(b"/evil/canary"), "/evil");
        refused(r.open_file(b"/evil/canary"), "/evil");
        refused(r.open_file(b"/canary-link"), "/canary-link");
        refused(
            r.create(b"/canary-link", 0o644, Create::Truncate),
            "/canary-link",
        );
        refused(r.create(b"/up/x", 0o644, Create::New), "/up");
        refused(r.remove_dir_all(b"/evil/x"), "/evil");
        refused(r.rename(b"/etc", b"/evil/etc"), "/evil");
        // `..` and other unnormalised paths are refused before any lookup.
        refused(
            r.create(b"/../outside/x", 0o644, Create::New),
            "/../outside/x",
        );
        refused(r.create(b"/etc/../../outside/x", 0o644, Create::New), "..");
        refused(r.create(b"/etc//x", 0o644, Create::New), "/etc//x");
        refused(r.create(b"etc/x", 0o644, Create::New), "etc/x");
        refused(r.node(b"/etc/.."), "/etc/..");
        // The final symlink is acted on itself.
        let n = r.node(b"/canary-link").unwrap();
        assert!(n.lstat().unwrap().file_type().is_symlink());
        n.lchown(0, 0).unwrap();
        n.set_times(1, 0).unwrap();
        assert!(n.chmod(0o777).is_err(), "a symlink's mode cannot change");
        assert!(n.set_xattr("user.pwned", b"1").is_err());
        assert_eq!(n.read_link().unwrap(), s.canary.as_os_str().as_bytes());
        assert!(r.lstat(b"/canary-link").unwrap().file_type().is_symlink());
        // A legitimate path still works.
        let mut f = r.create(b"/etc/ok", 0o600, Create::New).unwrap();
        std::io::Write::write_all(&mut f, b"fine").unwrap();
        assert_eq!(r.read(b"/etc/ok", 100).unwrap(), b"fine");
        assert!(r.create(b"/etc/ok", 0o600, Create::New).is_err());
        r.remove_file(b"/etc/ok").unwrap();
    }
    s.untouched();
}

#[test]
fn hard_links_stay_in_the_root_and_name_regular_files() {
    let s = setup();
    s.hostile_links();
    std::fs::write(s.root.join("etc/real"), b"in root").unwrap();
    for r in s.roots(Links::Refuse) {
        refused(
            r.hard_link(b"/../outside/canary", b"/etc/a"),
            "/../outside/canary",
        );
        refused(
            r.hard_link(b"/../../../../../../../etc/shadow", b"/etc/a"),
            "shadow",
        );
        refused(r.hard_link(b"/evil/canary", b"/etc/a"), "/evil");
        refused(r.hard_link(b"/up/outside/canary", b"/etc/a"), "/up");
        let m = refused(
            r.hard_link(b"/canary-link", b"/etc/a"),
            "not a regular file",
        );
        assert!(m.contains("/canary-link"), "{m}");
        refused(r.hard_link(b"/etc", b"/etc/a"), "not a regular file");
        refused(r.hard_link(b"/etc/real", b"/evil/a"), "/evil");
        assert!(!s.root.join("etc/a").exists());
        r.hard_link(b"/etc/real", b"/etc/b").unwrap();
        let (a, b) = (
            std::fs::metadata(s.root.join("etc/real")).unwrap(),
            std::fs::metadata(s.root.join("etc/b")).unwrap(),
        );
        assert_eq!(a.ino(), b.ino());
        r.remove_file(b"/etc/b").unwrap();
    }
    s.untouched();
}

#[test]
fn in_root_mode_follows_links_inside_the_root() {
    let s = setup();
    s.hostile_links();
    // The absolute link `evil -> <outside>` means `<root>/<outside>` inside the root.
    let inside = rawpath::join(&s.root, s.outside.as_os_str().as_bytes());
    for r in s.roots(Links::InRoot) {
        assert!(not_found(
            &r.create(b"/evil/pwned", 0o644, Create::New).unwrap_err()
        ));
        assert!(not_found(&r.open_file(b"/canary-link").unwrap_err()));
        assert!(!r.exists(b"/up/outside/canary"));
        std::fs::create_dir_all(&inside).unwrap();
        let mut f = r.create(b"/evil/fstab", 0o644, Create::Truncate).unwrap();
        std::io::Write::write_all(&mut f, b"tuned").unwrap();
        assert_eq!(std::fs::read(inside.join("fstab")).unwrap(), b"tuned");
        assert_eq!(r.read(b"/up/etc/../evil/fstab", 100).unwrap(), b"tuned");
        // A link to the file is followed to the root's copy.
        symlink(s.outside.join("fstab"), s.root.join("etc/fstab")).unwrap();
        assert_eq!(r.read(b"/etc/fstab", 100).unwrap(), b"tuned");
        let created = r.create_dir_all(b"/evil/a/b", 0o755).unwrap();
        assert_eq!(created, [b"/evil/a".to_vec(), b"/evil/a/b".to_vec()]);
        assert!(inside.join("a/b").is_dir());
        std::fs::remove_dir_all(&inside).unwrap();
        std::fs::remove_file(s.root.join("etc/fstab")).unwrap();
    }
    s.untouched();
}

#[test]
fn metadata_changes_reach_the_entry_only() {
    let s = setup();
    s.hostile_links();
    std::fs::write(s.root.join("etc/f"), b"x").unwrap();
    for r in s.roots(Links::Refuse) {
        let n = r.node(b"/etc/f").unwrap();
        n.chmod(0o4711).unwrap();
        n.lchown(1, 2).unwrap();
        n.set_times(1_000_000, 5).unwrap();
        n.set_xattr("user.k", b"v").unwrap();
        let m = std::fs::metadata(s.root.join("etc/f")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o4711 & !0o4000, "chown clears set-id");
        assert_eq!(
            (m.uid(), m.gid(), m.mtime(), m.mtime_nsec()),
            (1, 2, 1_000_000, 5)
        );
        assert_eq!(
            xattr::get(s.root.join("etc/f"), "user.k").unwrap().unwrap(),
            b"v"
        );
        assert!(n.xattr_names().unwrap().iter().any(|x| x == "user.k"));
        n.remove_xattr(OsStr::new("user.k")).unwrap();
        assert!(xattr::get(s.root.join("etc/f"), "user.k")
            .unwrap()
            .is_none());
        let root = r.node(b"/").unwrap();
        root.chmod(0o750).unwrap();
        root.set_times(7, 0).unwrap();
        let m = std::fs::metadata(&s.root).unwrap();
        assert_eq!((m.mode() & 0o7777, m.mtime()), (0o750, 7));
        // Nodes of other kinds.
        r.node(b"/etc/d").unwrap().create_dir(0o700).unwrap();
        r.node(b"/etc/l").unwrap().symlink(b"/evil/canary").unwrap();
        r.node(b"/etc/p")
            .unwrap()
            .mknod(libc::S_IFIFO, 0o600, 0)
            .unwrap();
        assert!(r.lstat(b"/etc/d").unwrap().is_dir());
        assert!(r.lstat(b"/etc/l").unwrap().file_type().is_symlink());
        r.rename(b"/etc/p", b"/etc/p2").unwrap();
        let mut names: Vec<_> = r.read_dir(b"/etc").unwrap();
        names.sort();
        let want: Vec<(Vec<u8>, bool)> = vec![
            (b"d".to_vec(), true),
            (b"f".to_vec(), false),
            (b"l".to_vec(), false),
            (b"p2".to_vec(), false),
        ];
        assert_eq!(names, want);
        for p in [&b"/etc/l"[..], b"/etc/p2"] {
            r.remove_file(p).unwrap();
        }
        r.remove_dir_all(b"/etc/d").unwrap();
    }
    s.untouched();
}

#[test]
fn removing_a_tree_does_not_follow_its_links() {
    let s = setup();
    for r in s.roots(Links::Refuse) {
        std::fs::create_dir_all(s.root.join("srv/a/b")).unwrap();
        std::fs::write(s.root.join("srv/a/b/f"), b"x").unwrap();
        symlink(&s.outside, s.root.join("srv/a/out")).unwrap();
        symlink(&s.canary, s.root.join("srv/a/b/c")).unwrap();
        r.remove_dir_all(b"/srv").unwrap();
        assert!(!s.root.join("srv").exists());
        // A link is not a directory to remove.
        symlink(&s.outside, s.root.join("srv")).unwrap();
        assert!(r.remove_dir_all(b"/srv").is_err());
        r.remove_file(b"/srv").unwrap();
    }
    s.untouched();
}

#[test]
fn subdir_is_a_root_of_its_own() {
    let s = setup();
    s.hostile_links();
    std::fs::create_dir(s.root.join("run")).unwrap();
    for r in s.roots(Links::InRoot) {
        let run = r.subdir(b"/run").unwrap();
        run.create(b"/x", 0o600, Create::Truncate).unwrap();
        assert!(s.root.join("run/x").is_file());
        assert!(run.subdir(b"/").is_ok());
        assert!(r.subdir(b"/evil").is_err(), "a symlink is not a sub-root");
        assert!(run.open_file(b"/../../outside/canary").is_err());
    }
    s.untouched();
}
