//! `uforge-scan analyze`, `overlay` and `compare` on the drifted Debian root, against the real
//! bookworm mirror with its signed indexes and real `.deb` files.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::util::*;

/// Repository indexes and `.deb`s are cached across runs, as the product does.
fn cache_dir() -> PathBuf {
    let d = PathBuf::from("/var/cache/uforge-fixtures/repo-cache");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn analyze(report: &Path, previous: &[&Path], out: &Path) -> Value {
    let mut cmd = scan_bin();
    cmd.args(["analyze", "--report"])
        .arg(report)
        .args(["--repo", &mirror_line()])
        .arg("--cache-dir")
        .arg(cache_dir())
        .arg("-o")
        .arg(out);
    for p in previous {
        cmd.arg("--previous").arg(p);
    }
    run_ok(&mut cmd);
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

fn paths(v: &Value) -> BTreeSet<Vec<u8>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| raw(e, "path").unwrap())
        .collect()
}

struct Drifted {
    root: PathBuf,
    _dir: tempfile::TempDir,
    report_path: PathBuf,
    report: Value,
    analysis: Value,
}

/// The drifted root scanned (JSON) and analysed once for all tests of this module.
fn drifted() -> &'static Drifted {
    static D: OnceLock<Drifted> = OnceLock::new();
    D.get_or_init(|| {
        let root = fixture("drifted");
        let dir = tempfile::tempdir().unwrap();
        let report = scan_json(&root, dir.path(), &[]);
        let report_path = dir.path().join("report.json");
        let analysis = analyze(&report_path, &[], &dir.path().join("analysis.json"));
        Drifted {
            root,
            _dir: dir,
            report_path,
            report,
            analysis,
        }
    })
}

#[test]
fn the_local_package_is_the_only_missing_one() {
    let a = &drifted().analysis;
    assert_eq!(
        a["missing_packages"],
        serde_json::json!([{"name": "acme-agent", "version": "2.4.1-1", "arch": "amd64"}])
    );
}

/// `(path, package, change)` of each entry of a list of changed package files.
fn changes(v: &Value) -> Vec<(String, String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let text = |k: &str| m[k].as_str().unwrap().to_string();
            (text("path"), text("package"), text("change"))
        })
        .collect()
}

#[test]
fn modified_and_deleted_files_without_false_positives() {
    let a = &drifted().analysis;
    let modified: BTreeSet<(String, String, String)> =
        changes(&a["modified_files"]).into_iter().collect();
    let expected: BTreeSet<(String, String, String)> = [
        ("/etc/nginx/nginx.conf", "nginx-common", "content"),
        (
            "/usr/share/nginx/html/index.html",
            "nginx-common",
            "content",
        ),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.into(), b.into(), c.into()))
    .collect();
    assert_eq!(modified, expected, "across the whole system");
    assert_eq!(
        paths(&a["deleted_files"]),
        BTreeSet::from([b"/usr/share/doc/tzdata/changelog.Debian.gz".to_vec()])
    );
}

#[test]
fn every_file_outside_packages_is_unknown() {
    let d = drifted();
    let outside: BTreeSet<Vec<u8>> = files_by_path(&d.report)
        .into_iter()
        .filter(|(p, f)| f["package"].is_null() && p != b"/")
        .map(|(p, _)| p)
        .collect();
    assert!(outside.contains(b"/srv/app/data.bin".as_slice()));
    // The root directory belongs to no package, yet is nothing the machine added.
    assert_eq!(paths(&d.analysis["unknown_files"]), outside);
}

/// A package file whose bytes are stock but whose mode and group a maintainer script changed
/// (as openssh-client's postinst does to ssh-agent) is a metadata-only change: listed as such,
/// its bytes not shipped.
#[test]
fn stock_bytes_with_changed_metadata_are_not_shipped() {
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    let root = work.path().join("root");
    run_ok(
        Command::new("cp")
            .args(["-a", "--sparse=always"])
            .arg(fixture("drifted"))
            .arg(&root),
    );
    run_ok(
        Command::new("chgrp")
            .arg("tty")
            .arg(root.join("usr/bin/tac")),
    );
    run_ok(
        Command::new("chmod")
            .arg("2755")
            .arg(root.join("usr/bin/tac")),
    );
    let report = scan_json(&root, work.path(), &[]);
    let a = analyze(
        &work.path().join("report.json"),
        &[],
        &work.path().join("analysis.json"),
    );
    let tac = &files_by_path(&report)[&b"/usr/bin/tac".to_vec()];
    assert_eq!(tac["mode"], 0o2755, "{tac}");
    let metadata = changes(&a["metadata_files"]);
    assert_eq!(
        metadata,
        [("/usr/bin/tac".into(), "coreutils".into(), "metadata".into())]
    );
    for list in ["modified_files", "wanted", "unknown_files"] {
        assert!(
            !paths(&a[list]).contains(b"/usr/bin/tac".as_slice()),
            "{list}"
        );
    }
    // Nothing else moved: the same wanted set as the unchanged fixture.
    assert_eq!(paths(&a["wanted"]), paths(&drifted().analysis["wanted"]));
}

#[test]
fn wanted_is_exactly_what_repositories_cannot_rebuild() {
    let d = drifted();
    let files = files_by_path(&d.report);
    let wanted = paths(&d.analysis["wanted"]);
    let unknown = paths(&d.analysis["unknown_files"]);
    let modified = paths(&d.analysis["modified_files"]);
    for (p, f) in &files {
        let of_missing = f["package"] == "acme-agent";
        let must = of_missing || unknown.contains(p) || modified.contains(p);
        if must {
            assert!(
                wanted.contains(p),
                "{} not wanted",
                String::from_utf8_lossy(p)
            );
        }
    }
    for p in &wanted {
        let f = &files[p];
        let of_missing = f["package"] == "acme-agent";
        if of_missing || unknown.contains(p) || modified.contains(p) {
            continue;
        }
        // Anything else is a directory needed to carry a wanted entry's metadata, or the first
        // name of an inode whose later name is wanted.
        let needed_dir = f["kind"] == "dir"
            && wanted.iter().any(|w| {
                w.len() > p.len() && w.starts_with(p) && (p == b"/" || w[p.len()] == b'/')
            });
        let link_target = files.values().any(|g| {
            g["kind"] == "hardlink"
                && raw(g, "target").as_ref() == Some(p)
                && wanted.contains(&raw(g, "path").unwrap())
        });
        assert!(
            needed_dir || link_target,
            "{} wanted without reason",
            String::from_utf8_lossy(p)
        );
    }
    // What the overlay carries is a small fraction of the machine.
    let wanted_bytes = d.analysis["stats"]["wanted_bytes"].as_u64().unwrap();
    let total: u64 = files
        .values()
        .filter(|f| f["kind"] == "file")
        .map(|f| f["size"].as_u64().unwrap())
        .sum();
    assert!(wanted_bytes * 2 < total, "{wanted_bytes} of {total}");
}

#[test]
fn overlay_holds_exactly_wanted_and_extracts_to_the_same_bytes() {
    let d = drifted();
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("overlay.tar");
    run_ok(
        scan_bin()
            .args(["overlay", "--report"])
            .arg(&d.report_path)
            .arg("--analysis")
            .arg(d.report_path.with_file_name("analysis.json"))
            .arg("--root")
            .arg(&d.root)
            .arg("-o")
            .arg(&tar),
    );
    // GNU tar, not our reader, extracts it.
    let out = dir.path().join("x");
    std::fs::create_dir(&out).unwrap();
    run_ok(
        Command::new("tar")
            .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
            .arg(&tar)
            .arg("-C")
            .arg(&out),
    );
    let extracted = scan_json(&out, dir.path(), &["--no-default-excludes"]);
    let got = files_by_path(&extracted);
    let want = paths(&d.analysis["wanted"]);
    let got_paths: BTreeSet<Vec<u8>> = got.keys().cloned().collect();
    assert_eq!(
        got_paths, want,
        "the overlay holds exactly the wanted paths"
    );
    let orig = files_by_path(&d.report);
    for (p, g) in &got {
        let o = &orig[p];
        let at = String::from_utf8_lossy(p);
        for k in [
            "kind", "mode", "uid", "gid", "size", "sha256", "target", "xattrs", "rdev",
        ] {
            if o["kind"] == "dir" && k == "size" {
                continue; // a directory's size depends on the filesystem's history
            }
            assert_eq!(g.get(k), o.get(k), "{at}: {k}");
        }
        if o["kind"] != "dir" && o["kind"] != "symlink" {
            assert_eq!(g["mtime"], o["mtime"], "{at}: mtime");
        }
    }
    // Far less than shipping the disk: compare with tar of the whole root.
    let whole = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!("tar -cf - -C '{}' . | wc -c", d.root.display())),
    );
    let whole: u64 = String::from_utf8(whole.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let ours = std::fs::metadata(&tar).unwrap().len();
    assert!(
        ours * 20 <= whole,
        "overlay {ours} bytes vs whole root {whole}"
    );
}

#[test]
fn incremental_rescan_wants_only_the_changed_file_and_compare_shows_it() {
    let d = drifted();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    run_ok(
        Command::new("cp")
            .args(["-a", "--sparse=always"])
            .arg(&d.root)
            .arg(&root),
    );
    let r0 = dir.path().join("r0.ufr");
    let r1 = dir.path().join("r1.ufr");
    run_ok(
        scan_bin()
            .args(["scan", "--root"])
            .arg(&root)
            .arg("-o")
            .arg(&r0),
    );
    std::fs::write(
        root.join("srv/app/config.ini"),
        "secret=rotated-after-first-scan\n",
    )
    .unwrap();
    run_ok(
        scan_bin()
            .args(["scan", "--root"])
            .arg(&root)
            .arg("-o")
            .arg(&r1),
    );
    let a = analyze(&r1, &[&r0], &dir.path().join("a1.json"));
    assert_eq!(
        paths(&a["wanted"]),
        BTreeSet::from([b"/srv/app/config.ini".to_vec()])
    );
    assert_eq!(
        a["missing_packages"],
        serde_json::json!([]),
        "acme-agent was shipped by the first scan"
    );
    let out = run_ok(scan_bin().arg("compare").arg(&r0).arg(&r1).arg("--json"));
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["packages"], serde_json::json!([]));
    let files = c["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{c}");
    assert_eq!(files[0]["path"], "/srv/app/config.ini");
    assert_eq!(files[0]["status"], "modified");
    let what: HashSet<&str> = files[0]["what"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        what.contains("content") && what.contains("mtime"),
        "{what:?}"
    );
    let table = run_ok(scan_bin().arg("compare").arg(&r0).arg(&r1));
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains("~ /srv/app/config.ini  (content"), "{text}");
}

#[test]
fn a_file_changed_after_an_offline_scan_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::write(root.join("data/a"), "first\n").unwrap();
    std::fs::write(root.join("data/b"), "stays\n").unwrap();
    let report = dir.path().join("r.json");
    run_ok(
        scan_bin()
            .args(["scan", "--root"])
            .arg(&root)
            .arg("-o")
            .arg(&report),
    );
    let analysis = dir.path().join("a.json");
    // A flat local repository with nothing in it: everything is unknown, so wanted.
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    std::fs::write(repo.join("Packages"), "").unwrap();
    run_ok(
        scan_bin()
            .args(["analyze", "--report"])
            .arg(&report)
            .arg("--repo")
            .arg(format!("deb [trusted=yes] file:{} ./", repo.display()))
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .arg("-o")
            .arg(&analysis),
    );
    std::fs::write(root.join("data/a"), "second version, longer\n").unwrap();
    let out = scan_bin()
        .args(["overlay", "--report"])
        .arg(&report)
        .arg("--analysis")
        .arg(&analysis)
        .arg("-o")
        .arg(dir.path().join("o.tar"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/data/a") && err.contains("changed since the scan"),
        "{err}"
    );
    let list = run_ok(Command::new("tar").arg("-tf").arg(dir.path().join("o.tar")));
    let names = String::from_utf8(list.stdout).unwrap();
    assert!(
        names.contains("data/b") && names.lines().any(|l| l == "data/a"),
        "{names}"
    );
}

/// The README's `analyze` command as written: bookworm and bookworm-security, whose Release
/// lists a `binary-all` index apt never reads. Then the same repositories from this machine's
/// own deb822 sources file.
#[test]
fn analysis_against_the_readme_repositories_and_a_deb822_file() {
    let d = drifted();
    let dir = tempfile::tempdir().unwrap();
    let run = |repo_args: &[&str], out: &Path| -> Value {
        run_ok(
            scan_bin()
                .args(["analyze", "--report"])
                .arg(&d.report_path)
                .args(repo_args)
                .arg("--cache-dir")
                .arg(cache_dir())
                .arg("-o")
                .arg(out),
        );
        serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
    };
    let readme = run(
        &[
            "--repo",
            "deb http://deb.debian.org/debian bookworm main",
            "--repo",
            "deb http://deb.debian.org/debian-security bookworm-security main",
        ],
        &dir.path().join("readme.json"),
    );
    assert_eq!(readme["missing_packages"], d.analysis["missing_packages"]);
    assert_eq!(readme["wanted"], d.analysis["wanted"]);
    let file = run(
        &["--repo-file", "/etc/apt/sources.list.d/debian.sources"],
        &dir.path().join("file.json"),
    );
    assert_eq!(file["missing_packages"], d.analysis["missing_packages"]);
    assert_eq!(file["wanted"], d.analysis["wanted"]);
}

#[test]
fn analyze_rejects_bad_repository_lines() {
    let d = drifted();
    let out = scan_bin()
        .args(["analyze", "--report"])
        .arg(&d.report_path)
        .args([
            "--repo",
            "deb-src http://deb.debian.org/debian bookworm main",
            "-o",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("deb-src"), "{err}");
}
