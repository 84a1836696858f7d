//! A user with the repositories of several releases: each scan is analysed, and its packages
//! recreated, against the repositories of its own release only.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use uforge_core::progress::NoProgress;
use uforge_core::scan::{scan_to_report, ScanOptions};
use uforge_test_support::{release_lines, release_root};

use crate::util::roots::{overlay_of, small_root, Root, PACKAGE};
use crate::util::{Backend, Client, Server};

/// The small root as a machine of `codename`, scanned.
fn machine_of(codename: &str) -> (Root, std::path::PathBuf, Vec<u8>) {
    let root = small_root();
    std::fs::write(
        root.root.join("etc/os-release"),
        format!("ID=debian\nVERSION_CODENAME={codename}\nPRETTY_NAME=\"Debian {codename}\"\n"),
    )
    .unwrap();
    let path = root.rescan(&format!("{codename}.ufr"));
    let report = std::fs::read(&path).unwrap();
    (root, path, report)
}

fn add_repo(admin: &Client<'_>, line: &str) {
    let r = admin
        .json("POST", "/repos", json!({ "line": line }))
        .expect(201)
        .json();
    let id = r["id"].as_i64().unwrap();
    admin.call("POST", &format!("/repos/{id}/sync")).expect(200);
}

fn new_scan(admin: &Client<'_>, machine: &str) -> i64 {
    admin
        .json("POST", "/scans", json!({ "machine": machine }))
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap()
}

#[test]
fn a_mixed_fleet_uses_each_scans_own_release() {
    let s = Server::start(Backend::Sqlite);
    let admin = s.admin();
    add_repo(&admin, "deb http://deb.debian.org/debian bullseye main");
    add_repo(&admin, "deb http://deb.debian.org/debian trixie main");

    // A bookworm machine, and no bookworm repository: refused rather than analysed against
    // another release.
    let (bookworm, path, report) = machine_of("bookworm");
    let id = new_scan(&admin, "web-bookworm");
    let r = admin
        .bytes("POST", &format!("/scans/{id}/report"), &report)
        .expect(400);
    let e = r.error();
    assert!(
        e.contains("no repository is of the scan's release (debian bookworm)")
            && e.contains("bullseye main")
            && e.contains("trixie main"),
        "{e}"
    );

    // bookworm-security is of bookworm: the analysis runs, and what it lacks is recreated
    // into bookworm's own repository.
    add_repo(
        &admin,
        "deb http://deb.debian.org/debian-security bookworm-security main",
    );
    let analysis = admin
        .bytes("POST", &format!("/scans/{id}/report"), &report)
        .expect(200)
        .body;
    let a: serde_json::Value = serde_json::from_slice(&analysis).unwrap();
    assert_eq!(a["missing_packages"][0]["name"], PACKAGE, "{a}");
    let overlay = bookworm.overlay(&path, &analysis);
    let done = admin
        .stream("PUT", &format!("/scans/{id}/overlay"), &overlay[..])
        .expect(200)
        .json();
    assert_eq!(done["recreated"].as_array().unwrap().len(), 1, "{done}");
    let own = s.data_dir.join("repos/admin/debian-bookworm/Packages");
    let index = std::fs::read_to_string(&own).unwrap();
    assert!(index.contains(&format!("Package: {PACKAGE}")), "{index}");

    // A bullseye machine with the same in-house package: bookworm's rebuilt copy is not
    // offered to it, so the package is missing for it too.
    let (_bullseye, _, report) = machine_of("bullseye");
    let id = new_scan(&admin, "web-bullseye");
    let a = admin
        .bytes("POST", &format!("/scans/{id}/report"), &report)
        .expect(200)
        .json();
    assert_eq!(a["missing_packages"][0]["name"], PACKAGE, "{a}");
    // The bookworm machine, scanned again, gets it from its release's repository.
    let id = new_scan(&admin, "web-bookworm-2");
    let (_again, _, report) = machine_of("bookworm");
    let a = admin
        .bytes("POST", &format!("/scans/{id}/report"), &report)
        .expect(200)
        .json();
    assert_eq!(a["missing_packages"], json!([]), "{a}");
}

/// The installed packages of a dpkg status file: name to version.
fn installed(status: &str) -> BTreeMap<String, String> {
    status
        .split("\n\n")
        .filter(|s| s.lines().any(|l| l == "Status: install ok installed"))
        .filter_map(|s| {
            let field = |k: &str| {
                s.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(|v| v.trim().to_string())
            };
            Some((field("Package:")?, field("Version:")?))
        })
        .collect()
}

/// Polls an image job until it ends.
/// Polls an image job to its end; also returns the install percentages seen on the way.
fn wait_for_image(s: &Server, id: i64) -> (serde_json::Value, Vec<i64>) {
    let deadline = Instant::now() + Duration::from_secs(1200);
    let mut install = Vec::new();
    loop {
        let v = s.admin().get(&format!("/images/{id}")).expect(200).json();
        if v["status"] == "done" || v["status"] == "failed" {
            return (v, install);
        }
        if v["phase"] == "install" {
            if let Some(p) = v["progress"]["percent"].as_i64() {
                install.push(p);
            }
        }
        assert!(Instant::now() < deadline, "image {id}: {v}\n{}", s.log());
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Real bullseye and trixie machines of one user with the repositories of both releases: each
/// image holds exactly its machine's packages at the machine's versions, never the other
/// release's.
#[test]
fn a_mixed_fleet_builds_each_image_from_its_own_release() {
    let s = Server::start(Backend::Sqlite);
    let admin = s.admin();
    for release in ["bullseye", "trixie"] {
        for line in release_lines(release) {
            add_repo(&admin, &line);
        }
    }
    for (release, layout) in [("bullseye", "unmerged"), ("trixie", "merged")] {
        let root = release_root(release, layout);
        let report = s.tmp.path().join(format!("{release}.ufr"));
        scan_to_report(&ScanOptions::new(&root), &NoProgress)
            .unwrap()
            .save(&report)
            .unwrap();
        let id = new_scan(&admin, release);
        let analysis = admin
            .bytes(
                "POST",
                &format!("/scans/{id}/report"),
                &std::fs::read(&report).unwrap(),
            )
            .expect(200)
            .body;
        let overlay = overlay_of(&root, &report, &analysis);
        let done = admin
            .stream("PUT", &format!("/scans/{id}/overlay"), &overlay[..])
            .expect(200)
            .json();
        assert_eq!(done["status"], "complete", "{done}");
        let job = admin
            .json(
                "POST",
                &format!("/scans/{id}/images"),
                json!({ "format": "tar.gz" }),
            )
            .expect(202)
            .json();
        let image = job["id"].as_i64().unwrap();
        let (end, install) = wait_for_image(&s, image);
        assert_eq!(end["status"], "done", "{release}: {end}");
        // The install reports its progress package by package while it runs.
        assert!(
            install.iter().any(|p| (1..100).contains(p)),
            "{release}: install percentages seen: {install:?}"
        );
        assert!(install.windows(2).all(|w| w[0] <= w[1]), "{install:?}");

        let dir = s.data_dir.join(format!("images/{image}"));
        let file = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
            .unwrap_or_else(|| panic!("no tar.gz in {}", dir.display()));
        let out = Command::new("tar")
            .args(["-xzOf"])
            .arg(&file)
            .arg("var/lib/dpkg/status")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let in_image = installed(&String::from_utf8(out.stdout).unwrap());
        let source = installed(&std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap());
        // Every package of the machine at its own version, and no other: a tree for no
        // target gets no packages of its own.
        let differ: Vec<String> = in_image
            .iter()
            .filter(|(p, v)| source.get(*p) != Some(*v))
            .map(|(p, v)| format!("{p} {v} (machine: {:?})", source.get(p)))
            .collect();
        assert!(differ.is_empty(), "{release}: {differ:?}");
        assert_eq!(in_image.len(), source.len(), "{release}");
        for p in ["libc6", "base-files", "systemd", "busybox"] {
            assert_eq!(in_image.get(p), source.get(p), "{release}: {p}");
        }
    }
}
