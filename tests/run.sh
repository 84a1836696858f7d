#!/usr/bin/env bash
# The test suite: installs what it needs, then runs every test of the workspace and of the
# Python module. The tests that run on PostgreSQL start a throwaway server of their own
# (uforge-test-support), or use the one UFORGE_TEST_PG names.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/deps.sh

# The release and /usr layout roots build (or come from the cache) while the workspace compiles;
# the tests wait for each through the script's lock.
for fx in "trixie merged" "bullseye unmerged" "bullseye symlinks" "bookworm usr-is-merged"; do
    # shellcheck disable=SC2086
    bash tests/fixtures/release-root.sh $fx >/dev/null 2>&1 &
done
cargo test --workspace
# The decoders of untrusted input, each fuzzed for a bounded time (about 5 min in all).
bash tests/fuzz.sh
python3 -m pip install -q --disable-pip-version-check maturin pytest
python3 -m pip install -q --disable-pip-version-check ./uforge-py
# The Python tests drive the binaries the cargo run above just built.
target=$(cargo metadata -q --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
UFORGE_SCAN_BIN=$target/debug/uforge-scan UFORGE_SERVER_BIN=$target/debug/uforge-server \
    python3 -m pytest -q uforge-py/tests
