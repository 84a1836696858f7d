//! Test support: the real Debian roots of `tests/fixtures/debian-root.sh`.

use std::path::PathBuf;

/// The drifted bookworm root the fixture script builds (once, then cached).
pub(crate) fn debian_root() -> PathBuf {
    uforge_test_support::fixture("drifted")
}
