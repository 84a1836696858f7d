//! Small roots to scan: a few files, a symlink, and a dpkg database with one in-house package
//! no repository has, so that an analysis finds it missing and the server rebuilds it.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use uforge_core::analysis::Analysis;
use uforge_core::model::RawPath;
use uforge_core::overlay::write_overlay;
use uforge_core::progress::NoProgress;
use uforge_core::report::ReportReader;
use uforge_core::scan::{scan_to_report, ScanOptions};

/// The in-house package of [`small_root`].
pub const PACKAGE: &str = "acme-tool";

/// A root and a place for what is made from it.
pub struct Root {
    /// Holds both.
    pub tmp: tempfile::TempDir,
    /// The root.
    pub root: PathBuf,
    /// The native report of its scan.
    pub report: PathBuf,
}

fn write(root: &Path, path: &str, data: &[u8], mode: u32) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Builds the root and scans it to a native report.
pub fn small_root() -> Root {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    write(&root, "/etc/hostname", b"web01\n", 0o644);
    write(
        &root,
        "/etc/app.conf",
        b"listen = 8080\nworkers = 4\n",
        0o640,
    );
    let big: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    write(&root, "/srv/data/blob.bin", &big, 0o600);
    write(
        &root,
        "/usr/bin/acme-tool",
        b"#!/bin/sh\necho acme\n",
        0o755,
    );
    write(
        &root,
        "/usr/share/doc/acme-tool/README",
        b"acme-tool: built in-house\n",
        0o644,
    );
    std::os::unix::fs::symlink("hostname", root.join("etc/name")).unwrap();
    write(
        &root,
        "/var/lib/dpkg/status",
        b"Package: acme-tool\nStatus: install ok installed\nPriority: optional\n\
Section: misc\nInstalled-Size: 8\nMaintainer: Ops <ops@example.com>\nArchitecture: amd64\n\
Version: 1.0-1\nDescription: in-house tool\n built and installed with dpkg -i\n\n",
        0o644,
    );
    write(
        &root,
        "/var/lib/dpkg/info/acme-tool.list",
        b"/.\n/usr\n/usr/bin\n/usr/bin/acme-tool\n/usr/share\n/usr/share/doc\n\
/usr/share/doc/acme-tool\n/usr/share/doc/acme-tool/README\n",
        0o644,
    );
    let report = tmp.path().join("scan.ufr");
    let r = scan_to_report(&ScanOptions::new(&root), &NoProgress).unwrap();
    assert!(
        r.header.packages.iter().any(|p| p.name == PACKAGE),
        "the scan did not see the dpkg database: {:?}",
        r.trailer.errors
    );
    r.save(&report).unwrap();
    Root { tmp, root, report }
}

impl Root {
    /// Scans again into `name` (native, or JSON when it ends in `.json`).
    pub fn rescan(&self, name: &str) -> PathBuf {
        let out = self.tmp.path().join(name);
        scan_to_report(&ScanOptions::new(&self.root), &NoProgress)
            .unwrap()
            .save(&out)
            .unwrap();
        out
    }

    /// The overlay an agent sends for this analysis.
    pub fn overlay(&self, report: &Path, analysis: &[u8]) -> Vec<u8> {
        overlay_of(&self.root, report, analysis)
    }
}

/// The overlay an agent sends for an analysis of the scan `report` of `root`.
pub fn overlay_of(root: &Path, report: &Path, analysis: &[u8]) -> Vec<u8> {
    let a = Analysis::read_json(analysis, "answer").unwrap();
    let wanted: HashSet<RawPath> = a.wanted.into_iter().collect();
    let mut out = Vec::new();
    let mut reader = ReportReader::open(report).unwrap();
    let stats = write_overlay(root, &mut reader, &wanted, &mut out, &NoProgress).unwrap();
    assert!(stats.changed.is_empty(), "{:?}", stats.changed);
    out
}
