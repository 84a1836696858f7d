//! The real Debian roots of `tests/fixtures/debian-root.sh`, built from the mirror apt uses on
//! this machine and cached across runs under `/var/cache/uforge-fixtures`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The workspace's top directory.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

/// The root of fixture `kind` (`drifted`, `kernel` or `bootable`), built the first time a
/// process asks for it.
pub fn fixture(kind: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(p) = built.get(kind) {
        return p.clone();
    }
    let out = Command::new("bash")
        .arg(workspace().join("tests/fixtures/debian-root.sh"))
        .arg(kind)
        .output()
        .expect("run the fixture script");
    assert!(
        out.status.success(),
        "fixture {kind} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    built.insert(kind.to_string(), root.clone());
    root
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
