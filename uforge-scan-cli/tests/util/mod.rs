//! Helpers for the integration tests: running the binaries and reading reports; the fixtures
//! and PostgreSQL come from the workspace's test support.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use serde_json::Value;

pub use uforge_test_support::postgres::fresh_database as postgres_url;
pub use uforge_test_support::{fixture, mirror_line, release_lines, release_root};

/// The repository's top directory.
pub fn repo() -> PathBuf {
    uforge_test_support::workspace()
}

/// The `uforge-scan` binary.
pub fn scan_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_uforge-scan"))
}

/// Runs a command and asserts it succeeded.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Scans `root` to a JSON report in `dir` and parses it.
pub fn scan_json(root: &Path, dir: &Path, extra: &[&str]) -> Value {
    let out = dir.join("report.json");
    run_ok(
        scan_bin()
            .args(["scan", "--root"])
            .arg(root)
            .arg("-o")
            .arg(&out)
            .args(extra),
    );
    serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
}

/// The raw path of a JSON entry (`path` or `path_b64`).
pub fn raw(v: &Value, key: &str) -> Option<Vec<u8>> {
    if let Some(s) = v.get(key).and_then(Value::as_str) {
        return Some(s.as_bytes().to_vec());
    }
    let b = v.get(format!("{key}_b64"))?.as_str()?;
    Some(base64::engine::general_purpose::STANDARD.decode(b).unwrap())
}

/// Files of a report keyed by raw path.
pub fn files_by_path(report: &Value) -> BTreeMap<Vec<u8>, Value> {
    report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (raw(f, "path").unwrap(), f.clone()))
        .collect()
}

/// Splits NUL-separated output into records of `n` fields.
pub fn nul_records(data: &[u8], n: usize) -> Vec<Vec<Vec<u8>>> {
    let fields: Vec<Vec<u8>> = data
        .split(|&b| b == 0)
        .map(<[u8]>::to_vec)
        .collect::<Vec<_>>();
    let fields = &fields[..fields.len() - 1];
    assert_eq!(fields.len() % n, 0, "ragged NUL-separated output");
    fields.chunks(n).map(<[Vec<u8>]>::to_vec).collect()
}

/// Paths the default excludes leave out: contents of these directories.
pub const SKIPPED_CONTENTS: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/tmp",
    "/var/tmp",
    "/var/cache/apt",
];

/// Whether an in-root path is under one of the default exclusions (not the directory itself).
pub fn skipped_by_default(path: &[u8]) -> bool {
    SKIPPED_CONTENTS.iter().any(|d| {
        let d = d.as_bytes();
        path.len() > d.len() && path.starts_with(d) && path[d.len()] == b'/'
    })
}

/// In-root form of a host path under `root`.
pub fn in_root(root: &Path, p: &Path) -> Vec<u8> {
    let rel = p.strip_prefix(root).unwrap();
    let mut out = b"/".to_vec();
    out.extend_from_slice(rel.as_os_str().as_bytes());
    out
}
