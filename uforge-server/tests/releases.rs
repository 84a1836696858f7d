//! A user with the repositories of several releases: each scan is analysed, and its packages
//! recreated, against the repositories of its own release only.

use serde_json::json;

use crate::util::roots::{small_root, Root, PACKAGE};
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
