//! Test support: the real Debian roots of `tests/fixtures/debian-root.sh`.

use std::path::PathBuf;

/// The drifted bookworm root the fixture script builds (once, then cached).
pub(crate) fn debian_root() -> PathBuf {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/debian-root.sh"
    );
    let out = std::process::Command::new("bash")
        .args([script, "drifted"])
        .output()
        .expect("run debian-root.sh");
    assert!(
        out.status.success(),
        "debian-root.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().into()
}
