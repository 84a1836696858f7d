//! Every supported Debian release and /usr layout, migrated end to end: a small bootable root
//! of each (`tests/fixtures/release-root.sh`) scanned, analysed against its own release's
//! repositories, built as a qcow2 by `uforge image build`, verified against the scan and
//! booted once from its own disk (BIOS), serving its page.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::images::{uforge, verify, Scanned, Vm, TOKEN};
use crate::live::outside_tmp;
use crate::util::*;

/// The fields of each stanza of a dpkg status file, by package name.
fn dpkg_status(root: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let text = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    text.split("\n\n")
        .filter_map(|stanza| {
            let fields: BTreeMap<String, String> = stanza
                .lines()
                .filter(|l| !l.starts_with(' '))
                .filter_map(|l| l.split_once(": "))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Some((fields.get("Package")?.clone(), fields))
        })
        .collect()
}

/// Scan, analysis against `repos`, and overlay of `root`, in `dir`.
fn scan_against(root: &Path, dir: &Path, repos: &[String]) -> Scanned {
    let s = Scanned {
        report: dir.join("machine.report"),
        analysis: dir.join("analysis.json"),
        overlay: dir.join("overlay.tar"),
    };
    run_ok(
        scan_bin()
            .arg("scan")
            .arg("--root")
            .arg(root)
            .arg("-o")
            .arg(&s.report)
            .arg("-q"),
    );
    let mut analyze = scan_bin();
    analyze.args(["analyze", "-q"]);
    for r in repos {
        analyze.args(["--repo", r]);
    }
    run_ok(
        analyze
            .arg("--report")
            .arg(&s.report)
            .arg("-o")
            .arg(&s.analysis),
    );
    run_ok(
        scan_bin()
            .args(["overlay", "-q", "--report"])
            .arg(&s.report)
            .arg("--analysis")
            .arg(&s.analysis)
            .arg("-o")
            .arg(&s.overlay),
    );
    s
}

/// Migrates the fixture `release` `layout` with only the repositories `repos`, and checks
/// every step knows the layout, the image is the scan and boots. Returns the analysis.
fn migrates(release: &str, layout: &str, kind: &str, repos: &[String]) -> Value {
    let root = release_root(release, layout);
    let work = outside_tmp();
    let s = scan_against(&root, work.path(), repos);
    let analysis: Value = serde_json::from_slice(&std::fs::read(&s.analysis).unwrap()).unwrap();
    assert_eq!(
        analysis["usr_layout"]["kind"], kind,
        "{}",
        analysis["usr_layout"]
    );

    let mut cmd = uforge();
    cmd.args(["--json", "image", "build", "--format", "qcow2"]);
    for r in repos {
        cmd.args(["--repo", r]);
    }
    let image = work.path().join("m.qcow2");
    let out = cmd
        .arg("--report")
        .arg(&s.report)
        .arg("--overlay")
        .arg(&s.overlay)
        .arg("--analysis")
        .arg(&s.analysis)
        .arg("-o")
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{release} {layout}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(built["layout"]["kind"], kind, "{built}");

    let v = verify(&image, &s.report, None);
    assert_eq!(v["layout"], analysis["usr_layout"], "{v}");
    assert_eq!(v["image_layout"], v["layout"], "{v}");

    let mut vm = Vm::boot(&image, "qcow2", false, work.path());
    let (page, status) = vm.wait_served();
    assert!(
        page.contains(&format!("{TOKEN} {release} {layout}")),
        "{page}"
    );
    assert!(
        status.contains(&format!("hostname={release}-{layout}")),
        "{status}"
    );
    assert!(status.contains("addresses=192.0.2.10"), "{status}");
    analysis
}

#[test]
fn trixie_merged_by_base_files() {
    migrates("trixie", "merged", "merged", &release_lines("trixie"));
}

#[test]
fn bullseye_unmerged() {
    migrates(
        "bullseye",
        "unmerged",
        "unmerged",
        &release_lines("bullseye"),
    );
}

/// Merged by debootstrap's links, no usrmerge package, and behind on updates: analysed
/// against bullseye without its updates and security suites, so the packages those updated,
/// base packages among them, are recreated from the overlay and installed through the links.
#[test]
fn bullseye_merged_by_links_and_behind_on_updates() {
    let root = release_root("bullseye", "symlinks");
    let main = release_lines("bullseye")[..1].to_vec();
    let a = migrates("bullseye", "symlinks", "merged", &main);
    assert_eq!(a["usr_layout"]["packages"], serde_json::json!([]), "{a}");
    let status = dpkg_status(&root);
    let missing: Vec<&str> = a["missing_packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let base: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|p| {
            status
                .get(*p)
                .and_then(|f| f.get("Priority"))
                .is_some_and(|p| p == "required")
        })
        .collect();
    assert!(!base.is_empty(), "no base package recreated: {missing:?}");
}

#[test]
fn bookworm_merged_by_links_with_usr_is_merged() {
    let a = migrates(
        "bookworm",
        "usr-is-merged",
        "merged",
        &release_lines("bookworm"),
    );
    assert_eq!(
        a["usr_layout"]["packages"],
        serde_json::json!(["usr-is-merged"]),
        "{a}"
    );
}
