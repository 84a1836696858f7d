#!/usr/bin/env bash
# Scanning from Python (`uforge.scan`) against the uforge-scan CLI on the ~700 MB kernel root,
# measured in the same run (see benches/python_scan.py). Target: Python within 5% of the CLI.
#
#   bash benches/python_scan.sh          # RUNS=7 by default
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-7}
python=${PYTHON:-python3}
cargo build --release -q -p uforge-scan-cli --bin uforge-scan
# The module under test is this tree's: install it when it is missing or older than the sources.
if ! "$python" -c 'import uforge' 2>/dev/null \
    || [ -n "$(find uforge-py/src uforge-py/python uforge-core/src -newer "$("$python" -c 'import uforge._uforge as m; print(m.__file__)')" -type f -print -quit)" ]; then
    "$python" -m pip install -q ./uforge-py
fi
root=$(bash tests/fixtures/debian-root.sh kernel)
exec "$python" benches/python_scan.py --root "$root" --cli target/release/uforge-scan --runs "$runs"
