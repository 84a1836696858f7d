#!/usr/bin/env bash
# The test suite: installs what it needs, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/deps.sh
cargo test --workspace
