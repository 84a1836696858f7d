//! Recreated packages checked with the real dpkg tools: the in-house package of the Debian
//! fixture rebuilt from a scan and an overlay, inspected with dpkg-deb, indexed, and installed
//! in a copy of the root; and a synthetic package with every awkward member kind.

use crate::test_fixture::debian_root;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::*;
use crate::blobstore::{BlobStore, LocalBlobStore};
use crate::deb822;
use crate::model::{FileEntry, FileKind, Package, RawPath, Report};
use crate::overlay::{read_overlay, write_overlay, ReadLimits};
use crate::progress::NoProgress;
use crate::scan::{scan_to_report, ScanOptions};

const ACME: &str = "acme-agent";

fn acme() -> PackageKey {
    PackageKey::new(ACME, "2.4.1-1", "amd64")
}

/// Runs a bash script, failing the test with its stderr unless it succeeds; returns stdout.
fn sh(script: &str) -> String {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha_of(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn sha_of_file(p: &Path) -> [u8; 32] {
    sha_of(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

struct Fixture {
    root: PathBuf,
    /// Holds the report and the blob store.
    _dir: tempfile::TempDir,
    report: PathBuf,
    store: LocalBlobStore,
    /// The entries the overlay carried (acme-agent's files and dpkg's records of it).
    shipped: Vec<FileEntry>,
    /// The entries the report says acme-agent owns.
    owned: Vec<FileEntry>,
}

/// The fixture scanned, the report saved natively, and an overlay of what recreating
/// acme-agent needs written and read into a blob store, as the agent and the server do.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = debian_root();
        let report = scan_to_report(&ScanOptions::new(&root), &NoProgress).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("scan.ufr");
        report.save(&file).unwrap();
        let info = b"/var/lib/dpkg/info/acme-agent.";
        let shipped: Vec<FileEntry> = report
            .files
            .iter()
            .filter(|e| {
                e.package.as_deref() == Some(ACME)
                    || e.path == b"/var/lib/dpkg/status"
                    || e.path.starts_with(info)
            })
            .cloned()
            .collect();
        let owned: Vec<FileEntry> = shipped
            .iter()
            .filter(|e| e.package.as_deref() == Some(ACME))
            .cloned()
            .collect();
        let wanted: HashSet<RawPath> = shipped.iter().map(|e| e.path.clone()).collect();
        let mut overlay = Vec::new();
        let mut reader = crate::report::ReportReader::open(&file).unwrap();
        let stats = write_overlay(&root, &mut reader, &wanted, &mut overlay, &NoProgress).unwrap();
        assert!(stats.changed.is_empty(), "{:?}", stats.changed);
        let store = LocalBlobStore::open(dir.path().join("blobs")).unwrap();
        let expected: HashMap<RawPath, FileEntry> = shipped
            .iter()
            .map(|e| (e.path.clone(), e.clone()))
            .collect();
        read_overlay(&overlay[..], &expected, &store, &ReadLimits::default()).unwrap();
        Fixture {
            root,
            _dir: dir,
            report: file,
            store,
            shipped,
            owned,
        }
    })
}

/// A blob store holding the contents of `entries` read from `root`, but those `skip` names.
fn store_of(
    root: &Path,
    entries: &[FileEntry],
    skip: &[u8],
) -> (tempfile::TempDir, LocalBlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(dir.path()).unwrap();
    let mut st = store.stage().unwrap();
    for e in entries {
        if e.kind == FileKind::File && e.path != skip {
            let data = std::fs::read(rawpath::join(root, &e.path)).unwrap();
            st.put(&e.sha256.unwrap(), e.size, &mut &data[..]).unwrap();
        }
    }
    st.commit().unwrap();
    (dir, store)
}

/// `ls -l` style permissions, as `dpkg-deb --contents` prints them.
fn ls_mode(kind: FileKind, mode: u32) -> String {
    let mut s = String::new();
    s.push(match kind {
        FileKind::Dir => 'd',
        FileKind::Symlink => 'l',
        FileKind::Hardlink => 'h',
        FileKind::Fifo => 'p',
        FileKind::Char => 'c',
        FileKind::Block => 'b',
        _ => '-',
    });
    let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (i, (bit, on, off)) in special.iter().enumerate() {
        let shift = 6 - 3 * i;
        let r = mode >> shift & 4 != 0;
        let w = mode >> shift & 2 != 0;
        let x = mode >> shift & 1 != 0;
        s.push(if r { 'r' } else { '-' });
        s.push(if w { 'w' } else { '-' });
        s.push(match (mode & bit != 0, x) {
            (true, true) => *on,
            (true, false) => *off,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// `dpkg-deb --contents` of a package: member name -> (permissions, owner/group).
fn contents(deb: &Path) -> BTreeMap<Vec<u8>, (String, String)> {
    let out = Command::new("dpkg-deb")
        .arg("--contents")
        .arg(deb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            // PERMS OWNER/GROUP SIZE DATE TIME NAME[ -> TARGET | link to TARGET]
            let mut rest = line;
            let mut words = Vec::new();
            for _ in 0..5 {
                let start = rest.iter().position(|&b| b != b' ').unwrap();
                rest = &rest[start..];
                let end = rest.iter().position(|&b| b == b' ').unwrap();
                words.push(String::from_utf8(rest[..end].to_vec()).unwrap());
                rest = &rest[end + 1..];
            }
            let mut name = rest.to_vec();
            for sep in [&b" -> "[..], b" link to "] {
                if let Some(i) = name.windows(sep.len()).position(|w| w == sep) {
                    name.truncate(i);
                }
            }
            let (perms, owner) = (words[0].clone(), words[1].clone());
            (name, (perms, owner))
        })
        .collect()
}

fn dpkg_field(deb: &Path, field: &str) -> String {
    sh(&format!("dpkg-deb --field '{}' {field}", deb.display()))
        .trim_end()
        .to_string()
}

#[test]
fn acme_agent_is_rebuilt_from_the_scan() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let made = recreate_packages(&f.report, &[acme()], &f.store, &repo).unwrap();
    assert_eq!(made.len(), 1);
    let p = &made[0];
    assert_eq!(p.key, acme());
    assert_eq!(p.file_name, "acme-agent_2.4.1-1_amd64.deb");
    let deb = repo.join(&p.file_name);
    assert_eq!(sha_of_file(&deb), p.sha256);
    assert_eq!(std::fs::metadata(&deb).unwrap().len(), p.size);
    // Nothing but the package and its index is left behind.
    let mut names: Vec<String> = std::fs::read_dir(&repo)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["Packages", p.file_name.as_str()]);
    // The same scan gives the same bytes: the archive holds no time of its own making.
    let again = recreate_packages(&f.report, &[acme()], &f.store, &tmp.path().join("again"));
    assert_eq!(again.unwrap()[0].sha256, p.sha256);

    // The control data is what the package built on the machine declared.
    let original = f.root.join("root/acme-agent_2.4.1-1_amd64.deb");
    for field in [
        "Package",
        "Version",
        "Architecture",
        "Maintainer",
        "Section",
        "Priority",
        "Installed-Size",
        "Description",
    ] {
        assert_eq!(
            dpkg_field(&deb, field),
            dpkg_field(&original, field),
            "{field}"
        );
    }
    assert_eq!(dpkg_field(&deb, "Status"), "");
    let info = sh(&format!("dpkg-deb --info '{}'", deb.display()));
    for needle in [
        "Package: acme-agent",
        "Version: 2.4.1-1",
        "Architecture: amd64",
        "postinst",
        "conffiles",
    ] {
        assert!(info.contains(needle), "{needle} not in\n{info}");
    }
    let postinst = sh(&format!("dpkg-deb --info '{}' postinst", deb.display()));
    let scanned = std::fs::read_to_string(f.root.join("var/lib/dpkg/info/acme-agent.postinst"));
    assert_eq!(postinst, scanned.unwrap());
    let conffiles = sh(&format!("dpkg-deb --info '{}' conffiles", deb.display()));
    assert_eq!(conffiles, "/etc/acme-agent/agent.conf\n");
    let control_perms = contents_of_control(&deb);
    assert_eq!(control_perms["./postinst"], "-rwxr-xr-x");

    // Every file the package owns, with the scanned metadata and, once extracted, the bytes.
    let listed = contents(&deb);
    assert_eq!(listed[&b"./"[..]].0, "drwxr-xr-x");
    for e in &f.owned {
        let dir = e.kind == FileKind::Dir;
        let name = debfile::member_name(&e.path, dir);
        let (perms, owner) = listed
            .get(&name)
            .unwrap_or_else(|| panic!("{} not in the package", rawpath::display(&name)));
        assert_eq!(
            *perms,
            ls_mode(e.kind, e.mode),
            "{}",
            rawpath::display(&name)
        );
        let names = format!(
            "{}/{}",
            e.user.as_deref().unwrap(),
            e.group.as_deref().unwrap()
        );
        assert_eq!(*owner, names, "{}", rawpath::display(&name));
    }
    for path in [
        "./opt/acme-agent/bin/acme-agent",
        "./etc/acme-agent/agent.conf",
        "./usr/share/doc/acme-agent/README",
    ] {
        assert!(listed.contains_key(path.as_bytes()), "{path}");
    }
    let x = tmp.path().join("x");
    sh(&format!(
        "dpkg-deb -x '{}' '{}'",
        deb.display(),
        x.display()
    ));
    for e in f.owned.iter().filter(|e| e.kind == FileKind::File) {
        let got = rawpath::join(&x, &e.path);
        assert_eq!(sha_of_file(&got), e.sha256.unwrap(), "{}", got.display());
        assert_eq!(
            sha_of_file(&rawpath::join(&f.root, &e.path)),
            e.sha256.unwrap()
        );
        let m = std::fs::metadata(&got).unwrap();
        assert_eq!(m.mtime(), e.mtime, "{}", got.display());
        assert_eq!(m.mode() & 0o7777, e.mode, "{}", got.display());
    }

    // The index lists the package with the digest and size of the file.
    let index = std::fs::read_to_string(repo.join("Packages")).unwrap();
    let paras = deb822::parse(&index);
    assert_eq!(paras.len(), 1);
    let para = &paras[0];
    assert_eq!(para.get("Package"), Some(ACME));
    assert_eq!(para.get("Version"), Some("2.4.1-1"));
    assert_eq!(para.get("Architecture"), Some("amd64"));
    assert_eq!(
        para.get("Maintainer"),
        Some("Ops Team <ops@example.invalid>")
    );
    assert_eq!(
        para.get("Description"),
        Some("in-house monitoring agent\nBuilt on the server by the operations team; no repository carries it.")
    );
    assert_eq!(para.get("Filename"), Some("./acme-agent_2.4.1-1_amd64.deb"));
    assert_eq!(para.get("Size"), Some(p.size.to_string().as_str()));
    assert_eq!(para.get("SHA256"), Some(to_hex(&p.sha256).as_str()));
    assert_eq!(write_flat_index(&repo).unwrap(), 1);
    assert_eq!(
        std::fs::read_to_string(repo.join("Packages")).unwrap(),
        index
    );
}

/// The permissions of the members of a package's `control.tar`.
fn contents_of_control(deb: &Path) -> HashMap<String, String> {
    sh(&format!(
        "dpkg-deb --ctrl-tarfile '{}' | tar -tvf -",
        deb.display()
    ))
    .lines()
    .map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w[w.len() - 1].to_string(), w[0].to_string())
    })
    .collect()
}

#[test]
fn acme_agent_installs_again_in_a_copy_of_the_root() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let made = recreate_packages(&f.report, &[acme()], &f.store, &repo).unwrap();
    let deb = repo.join(&made[0].file_name);
    let copy = tmp.path().join("root");
    sh(&format!(
        "cp -a --sparse=always '{}' '{}'",
        f.root.display(),
        copy.display()
    ));
    let c = copy.display();
    let conffiles_before = sh(&format!(
        "chroot '{c}' dpkg-query -W -f='${{Conffiles}}' acme-agent"
    ));
    sh(&format!("chroot '{c}' dpkg --purge acme-agent"));
    // The postinst's own output is not the package's: gone too, so that it must run again.
    sh(&format!("rm -rf '{c}/var/lib/acme-agent'"));
    for gone in ["opt/acme-agent/bin/acme-agent", "etc/acme-agent/agent.conf"] {
        assert!(!copy.join(gone).exists(), "{gone} survived the purge");
    }

    std::fs::copy(&deb, copy.join("x.deb")).unwrap();
    sh(&format!("chroot '{c}' dpkg -i /x.deb"));
    let status = sh(&format!(
        "chroot '{c}' dpkg-query -W -f='${{Status}} ${{Version}} ${{Architecture}}' acme-agent"
    ));
    assert_eq!(status, "install ok installed 2.4.1-1 amd64");
    for e in f.owned.iter().filter(|e| e.kind == FileKind::File) {
        let back = rawpath::join(&copy, &e.path);
        assert_eq!(sha_of_file(&back), e.sha256.unwrap(), "{}", back.display());
        let m = std::fs::metadata(&back).unwrap();
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (e.mode, e.uid, e.gid),
            "{}",
            back.display()
        );
    }
    let conffiles = sh(&format!(
        "chroot '{c}' dpkg-query -W -f='${{Conffiles}}' acme-agent"
    ));
    assert!(
        conffiles.contains("/etc/acme-agent/agent.conf "),
        "{conffiles}"
    );
    assert_eq!(conffiles, conffiles_before);
    let state = std::fs::read_to_string(copy.join("var/lib/acme-agent/state")).unwrap();
    assert_eq!(state, "installed\n");
    let listed = sh(&format!("chroot '{c}' dpkg -L acme-agent"));
    assert!(listed
        .lines()
        .any(|l| l == "/opt/acme-agent/bin/acme-agent"));

    // As the rebuilt machine gets it: from the flat repository, through apt, offline.
    sh(&format!(
        "chroot '{c}' dpkg --purge acme-agent && rm -rf '{c}/var/lib/acme-agent'"
    ));
    sh(&format!("cp -a '{}' '{c}/recreated'", repo.display()));
    std::fs::create_dir(copy.join("etc/apt/no-parts.d")).unwrap();
    std::fs::write(
        copy.join("etc/apt/recreated.list"),
        "deb [trusted=yes] file:/recreated ./\n",
    )
    .unwrap();
    let apt = "apt-get -q -y -o Dir::Etc::SourceList=/etc/apt/recreated.list \
               -o Dir::Etc::SourceParts=/etc/apt/no-parts.d";
    sh(&format!(
        "chroot '{c}' {apt} update && chroot '{c}' {apt} install acme-agent"
    ));
    let status = sh(&format!(
        "chroot '{c}' dpkg-query -W -f='${{Status}} ${{Version}}' acme-agent"
    ));
    assert_eq!(status, "install ok installed 2.4.1-1");
    let state = std::fs::read_to_string(copy.join("var/lib/acme-agent/state")).unwrap();
    assert_eq!(state, "installed\n");
}

#[test]
fn a_missing_blob_fails_naming_the_file_and_leaves_nothing() {
    let f = fixture();
    let binary = b"/opt/acme-agent/bin/acme-agent";
    let (_blobs, store) = store_of(&f.root, &f.shipped, binary);
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    std::fs::write(repo.join("unrelated"), "kept").unwrap();
    let err = recreate_packages(&f.report, &[acme()], &store, &repo).unwrap_err();
    match &err {
        Error::Recreate { package, message } => {
            assert_eq!(package, "acme-agent_2.4.1-1_amd64");
            assert!(
                message.contains("/opt/acme-agent/bin/acme-agent"),
                "{message}"
            );
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains("acme-agent"), "{err}");
    let names: Vec<_> = std::fs::read_dir(&repo)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["unrelated"]);

    // A stored blob that is not what its name says is caught while the archive is written.
    let (_blobs, store) = store_of(&f.root, &f.shipped, b"");
    let e = f.owned.iter().find(|e| e.path == binary).unwrap();
    let blob = store.blob_path(&e.sha256.unwrap());
    let mut data = std::fs::read(&blob).unwrap();
    data[0] ^= 1;
    std::fs::write(&blob, data).unwrap();
    let err = recreate_packages(&f.report, &[acme()], &store, &repo).unwrap_err();
    assert!(
        err.to_string().contains("/opt/acme-agent/bin/acme-agent")
            && err.to_string().contains("does not hash"),
        "{err}"
    );
    let names: Vec<_> = std::fs::read_dir(&repo)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["unrelated"]);

    // Without the dpkg status, the control data is unknown.
    let (_blobs, store) = store_of(&f.root, &f.shipped, b"/var/lib/dpkg/status");
    let err = recreate_packages(&f.report, &[acme()], &store, &repo).unwrap_err();
    assert!(err.to_string().contains("/var/lib/dpkg/status"), "{err}");
}

#[test]
fn packages_the_report_does_not_hold_are_refused() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let other = PackageKey::new(ACME, "2.4.2-1", "amd64");
    let err = recreate_packages(&f.report, &[other], &f.store, &repo).unwrap_err();
    assert!(err.to_string().contains("no such package"), "{err}");
    for bad in [
        PackageKey::new("../etc/passwd", "1", "amd64"),
        PackageKey::new("x y", "1", "amd64"),
        PackageKey::new("ok", "1/2", "amd64"),
        PackageKey::new("ok", "1", "amd 64"),
    ] {
        let err =
            recreate_packages(&f.report, std::slice::from_ref(&bad), &f.store, &repo).unwrap_err();
        assert!(matches!(err, Error::Recreate { .. }), "{bad}: {err}");
    }
    // Nothing to recreate: an empty, valid index.
    assert!(recreate_packages(&f.report, &[], &f.store, &repo)
        .unwrap()
        .is_empty());
    assert_eq!(std::fs::read(repo.join("Packages")).unwrap(), b"");
}

#[test]
fn epochs_links_long_and_raw_names() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(tmp.path().join("blobs")).unwrap();
    let mut st = store.stage().unwrap();
    let mut put = |data: &[u8]| {
        st.put(&sha_of(data), data.len() as u64, &mut &data[..])
            .unwrap();
        (sha_of(data), data.len() as u64)
    };
    let status = "Package: odd-tool\nStatus: install ok installed\nPriority: optional\n\
Section: misc\nInstalled-Size: 4\nMaintainer: Someone <someone@example.invalid>\n\
Architecture: all\nVersion: 1:0.5+git3-2\nPre-Depends: dpkg (>= 1.15)\n\
Description: odd\n with an odd layout\n";
    let status_blob = put(status.as_bytes());
    let tool = put(b"#!/bin/sh\necho odd\n");
    let shared = put(b"shared content\n");
    let empty = put(b"");
    let postrm = put(b"#!/bin/sh\nexit 0\n");
    st.commit().unwrap();

    let long_dir = format!("/usr/lib/odd/{}", "d".repeat(90));
    let long_file = format!("{long_dir}/{}.txt", "f".repeat(120));
    let long_target = format!("../../{}", "t".repeat(150));
    let entry = |path: &[u8], kind: FileKind, mode: u32| FileEntry {
        path: path.to_vec(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        user: Some("root".into()),
        group: Some("root".into()),
        size: 0,
        mtime: 1_700_000_000,
        mtime_nsec: 0,
        sha256: None,
        target: None,
        rdev: None,
        xattrs: Default::default(),
        package: Some("odd-tool".into()),
        allocated: 0,
    };
    let file = |path: &[u8], mode: u32, (sha, size): ([u8; 32], u64)| FileEntry {
        sha256: Some(sha),
        size,
        ..entry(path, FileKind::File, mode)
    };
    let mut root = entry(b"/", FileKind::Dir, 0o755);
    root.package = None;
    let mut usr = entry(b"/usr", FileKind::Dir, 0o755);
    usr.package = Some("base-files".into());
    let mut first_name = file(b"/usr/lib/another-first", 0o644, shared);
    first_name.package = Some("base-files".into());
    let mut by_alice = file(b"/usr/lib/odd/by-alice", 0o4750, tool);
    (by_alice.uid, by_alice.gid, by_alice.user, by_alice.group) =
        (1001, 4343, Some("alice".into()), None);
    let mut link_out = entry(b"/usr/lib/odd/linked-elsewhere", FileKind::Hardlink, 0o644);
    (link_out.sha256, link_out.size, link_out.target) = (
        Some(shared.0),
        shared.1,
        Some(b"/usr/lib/another-first".to_vec()),
    );
    let mut link_in = entry(b"/usr/lib/odd/linked-inside", FileKind::Hardlink, 0o755);
    (link_in.sha256, link_in.size, link_in.target) = (
        Some(tool.0),
        tool.1,
        Some(b"/usr/lib/odd/by-alice".to_vec()),
    );
    let mut link_out2 = entry(
        b"/usr/lib/odd/linked-elsewhere-2",
        FileKind::Hardlink,
        0o644,
    );
    (link_out2.sha256, link_out2.size, link_out2.target) = (
        Some(shared.0),
        shared.1,
        Some(b"/usr/lib/another-first".to_vec()),
    );
    let mut symlink = entry(b"/usr/lib/odd/far", FileKind::Symlink, 0o777);
    symlink.target = Some(long_target.clone().into_bytes());
    let mut dotted = entry(b"/usr/lib/odd/dotted", FileKind::Symlink, 0o777);
    dotted.target = Some(b"./a//b/".to_vec());
    let mut postrm_entry = file(b"/var/lib/dpkg/info/odd-tool.postrm", 0o755, postrm);
    postrm_entry.package = None;
    let mut status_entry = file(b"/var/lib/dpkg/status", 0o644, status_blob);
    status_entry.package = None;
    // In walk order, as a scan writes them: readers refuse anything else.
    let files = vec![
        root,
        usr,
        // /usr/lib is not in the report (as if excluded): it gets default metadata.
        first_name,
        entry(b"/usr/lib/odd", FileKind::Dir, 0o2775),
        by_alice,
        file(b"/usr/lib/odd/caf\xe9", 0o644, empty),
        entry(long_dir.as_bytes(), FileKind::Dir, 0o755),
        file(long_file.as_bytes(), 0o600, tool),
        dotted,
        symlink,
        link_out,
        link_out2,
        link_in,
        postrm_entry,
        status_entry,
    ];
    let mut report = Report::default();
    report.header.scan.started = 1_700_000_100;
    report.header.packages = vec![Package {
        name: "odd-tool".into(),
        version: "1:0.5+git3-2".into(),
        arch: "all".into(),
        manager: "dpkg".into(),
        status: "installed".into(),
        source: None,
        auto: false,
    }];
    report.files = files;
    let report_file = tmp.path().join("scan.ufr");
    report.save(&report_file).unwrap();

    let repo = tmp.path().join("repo");
    let key = PackageKey::new("odd-tool", "1:0.5+git3-2", "all");
    let made = recreate_packages(&report_file, &[key.clone(), key.clone()], &store, &repo).unwrap();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].file_name, "odd-tool_0.5+git3-2_all.deb");
    let deb = repo.join(&made[0].file_name);
    assert_eq!(dpkg_field(&deb, "Version"), "1:0.5+git3-2");
    assert_eq!(dpkg_field(&deb, "Pre-Depends"), "dpkg (>= 1.15)");
    let postrm_text = sh(&format!("dpkg-deb --info '{}' postrm", deb.display()));
    assert_eq!(postrm_text, "#!/bin/sh\nexit 0\n");

    let listed = contents(&deb);
    let names: Vec<&[u8]> = listed.keys().map(Vec::as_slice).collect();
    let long_dir_name = format!(".{long_dir}/");
    let long_file_name = format!(".{long_file}");
    let mut want: Vec<&[u8]> = vec![
        b"./",
        b"./usr/",
        b"./usr/lib/",
        b"./usr/lib/odd/",
        b"./usr/lib/odd/by-alice",
        // tar lists bytes that are not UTF-8 in octal.
        b"./usr/lib/odd/caf\\351",
        long_dir_name.as_bytes(),
        long_file_name.as_bytes(),
        b"./usr/lib/odd/linked-elsewhere",
        b"./usr/lib/odd/linked-inside",
        b"./usr/lib/odd/linked-elsewhere-2",
        b"./usr/lib/odd/far",
        b"./usr/lib/odd/dotted",
    ];
    want.sort();
    assert_eq!(names, want);
    let get = |n: &[u8]| listed[n].clone();
    assert_eq!(
        get(b"./usr/lib/odd/by-alice"),
        ("-rwsr-x---".into(), "alice/4343".into())
    );
    assert_eq!(get(b"./usr/lib/odd/").0, "drwxrwsr-x");
    assert_eq!(get(b"./usr/lib/").0, "drwxr-xr-x");
    // The first hard link whose first name is not in the package carries the content.
    assert_eq!(get(b"./usr/lib/odd/linked-elsewhere").0, "-rw-r--r--");
    assert_eq!(get(b"./usr/lib/odd/linked-elsewhere-2").0, "hrw-r--r--");
    assert_eq!(get(b"./usr/lib/odd/linked-inside").0, "hrwxr-xr-x");
    let verbose = sh(&format!("dpkg-deb --contents '{}'", deb.display()));
    assert!(verbose.contains(&format!("./usr/lib/odd/far -> {long_target}")));
    assert!(verbose.contains("./usr/lib/odd/dotted -> ./a//b/"));
    assert!(verbose.contains("./usr/lib/odd/linked-inside link to ./usr/lib/odd/by-alice"));

    let x = tmp.path().join("x");
    sh(&format!(
        "dpkg-deb -x '{}' '{}'",
        deb.display(),
        x.display()
    ));
    assert_eq!(sha_of_file(&x.join(&long_file[1..])), tool.0);
    assert_eq!(
        std::fs::read(x.join(OsStr::from_bytes(b"usr/lib/odd/caf\xe9"))).unwrap(),
        b""
    );
    let ino = |p: &str| std::fs::metadata(x.join(p)).unwrap().ino();
    assert_eq!(
        ino("usr/lib/odd/linked-elsewhere"),
        ino("usr/lib/odd/linked-elsewhere-2")
    );
    assert_eq!(
        ino("usr/lib/odd/by-alice"),
        ino("usr/lib/odd/linked-inside")
    );
    let mut content = String::new();
    std::fs::File::open(x.join("usr/lib/odd/linked-elsewhere"))
        .unwrap()
        .read_to_string(&mut content)
        .unwrap();
    assert_eq!(content, "shared content\n");
}
