//! Helpers for the integration tests: fixtures, running the binaries, reading reports.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use base64::Engine;
use serde_json::Value;

/// The repository's top directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A real Debian root built by `tests/fixtures/debian-root.sh KIND` (cached across runs).
pub fn fixture(kind: &str) -> PathBuf {
    static DRIFTED: OnceLock<PathBuf> = OnceLock::new();
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    static BOOTABLE: OnceLock<PathBuf> = OnceLock::new();
    let cell = match kind {
        "drifted" => &DRIFTED,
        "kernel" => &KERNEL,
        "bootable" => &BOOTABLE,
        _ => panic!("unknown fixture {kind}"),
    };
    cell.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("tests/fixtures/debian-root.sh"))
            .arg(kind)
            .output()
            .expect("run the fixture script");
        assert!(
            out.status.success(),
            "fixture {kind} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
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

/// A fresh database on a real PostgreSQL server: the one `UFORGE_TEST_PG` names (a base URL
/// such as `postgres://postgres@127.0.0.1:54329`, as `tests/run.sh` sets), or else a throwaway
/// cluster started for this test process.
pub fn postgres_url() -> String {
    static BASE: OnceLock<String> = OnceLock::new();
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = BASE.get_or_init(|| match std::env::var("UFORGE_TEST_PG") {
        Ok(url) => url,
        Err(_) => start_cluster(),
    });
    let name = format!(
        "uforge_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    run_ok(
        Command::new("psql")
            .arg(format!("{base}/postgres"))
            .args(["-qc", &format!("CREATE DATABASE {name}")]),
    );
    format!("{base}/{name}")
}

fn start_cluster() -> String {
    let bin = Path::new("/usr/lib/postgresql/15/bin");
    let dir = std::env::temp_dir().join(format!("uforge-pg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    run_ok(Command::new("chown").arg("postgres:postgres").arg(&dir));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let as_pg = |args: &[&std::ffi::OsStr]| {
        run_ok(
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(args),
        );
    };
    let data = dir.join("data");
    as_pg(&[
        bin.join("initdb").as_os_str(),
        "-D".as_ref(),
        data.as_os_str(),
        "-A".as_ref(),
        "trust".as_ref(),
        "-U".as_ref(),
        "postgres".as_ref(),
    ]);
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1",
        dir.display()
    );
    as_pg(&[
        bin.join("pg_ctl").as_os_str(),
        "-D".as_ref(),
        data.as_os_str(),
        "-l".as_ref(),
        dir.join("log").as_os_str(),
        "-o".as_ref(),
        opts.as_ref(),
        "-w".as_ref(),
        "start".as_ref(),
    ]);
    format!("postgres://postgres@127.0.0.1:{port}")
}

/// The sources line of the Debian mirror apt uses on this machine (the fixtures come from it).
pub fn mirror_line() -> String {
    let sources =
        std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
    let uri = sources
        .lines()
        .filter_map(|l| l.strip_prefix("URIs:"))
        .map(str::trim)
        .find(|u| u.ends_with("/debian"))
        .unwrap_or("http://deb.debian.org/debian")
        .to_string();
    format!("deb {uri} bookworm main")
}
