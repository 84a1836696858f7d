//! The real Debian roots of `tests/fixtures/debian-root.sh` and `tests/fixtures/release-root.sh`,
//! built from the mirror apt uses on this machine and cached across runs under
//! `/var/cache/uforge-fixtures`.

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

/// The release roots `tests/fixtures/release-root.sh` builds: release and /usr layout.
pub const RELEASE_ROOTS: [(&str, &str); 4] = [
    ("trixie", "merged"),
    ("bullseye", "unmerged"),
    ("bullseye", "symlinks"),
    ("bookworm", "usr-is-merged"),
];

/// The root of the release fixture `release` `layout` (one of [`RELEASE_ROOTS`]). The first
/// call of a process starts the script for every one of them at once, so the roots build in
/// parallel (or are found in the cache) while the first is waited for.
pub fn release_root(release: &str, layout: &str) -> PathBuf {
    type Builds = HashMap<(String, String), std::process::Child>;
    static STARTED: OnceLock<Mutex<Builds>> = OnceLock::new();
    static BUILT: OnceLock<Mutex<HashMap<(String, String), PathBuf>>> = OnceLock::new();
    let key = (release.to_string(), layout.to_string());
    let started = STARTED.get_or_init(|| {
        let script = workspace().join("tests/fixtures/release-root.sh");
        let children = RELEASE_ROOTS
            .iter()
            .map(|(r, l)| {
                let child = Command::new("bash")
                    .arg(&script)
                    .args([r, l])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("run the release fixture script");
                ((r.to_string(), l.to_string()), child)
            })
            .collect();
        Mutex::new(children)
    });
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(p) = built.get(&key) {
        return p.clone();
    }
    let child = started
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&key)
        .unwrap_or_else(|| panic!("no release fixture {release} {layout}"));
    let out = child
        .wait_with_output()
        .expect("wait for the fixture script");
    assert!(
        out.status.success(),
        "fixture {release} {layout} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    built.insert(key, root.clone());
    root
}

/// The sources lines of `release` on the mirror apt uses on this machine: the release, its
/// updates and its security suite, as an up-to-date machine has them.
pub fn release_lines(release: &str) -> Vec<String> {
    let main = mirror_line().replace(" bookworm ", &format!(" {release} "));
    let uri = main
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    vec![
        main.clone(),
        main.replace(&format!(" {release} "), &format!(" {release}-updates ")),
        format!("deb {uri}-security {release}-security main"),
    ]
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
