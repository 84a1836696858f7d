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
# Every test binary is compiled once, then run from its package's directory as `cargo test`
# would. The agent/client integration tests (image builds and boots, templates, layouts) run
# beside all the others, which start with the server's integration tests: the two longest
# binaries then share the wall time instead of adding up.
runs=$(mktemp -d /var/tmp/uforge-tests.XXXXXX)
cargo test --workspace --no-run --message-format=json-render-diagnostics > "$runs/artifacts.json"
python3 - "$runs/artifacts.json" > "$runs/binaries" <<'PY'
import json, os, sys
seen = set()
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    if not m.get("profile", {}).get("test") or m["executable"] in seen:
        continue
    seen.add(m["executable"])
    pkg = m["package_id"].split("#")[0].rsplit("/", 1)[-1]
    side = "agent" if "/uforge-scan-cli/" in m["manifest_path"] and m["target"]["name"] == "integration" else "rest"
    first = "/uforge-server/" in m["manifest_path"] and m["target"]["name"] == "integration"
    print(side, 0 if first else 1, os.path.dirname(m["manifest_path"]), m["executable"], sep="\t")
PY
run_binaries() { # SIDE: runs that side's binaries one after the other; fails at the end if one did
    local side=$1 rc=0 dir exe
    while IFS=$'\t' read -r dir exe; do
        echo "     Running $exe"
        (cd "$dir" && "$exe") || rc=1
    done < <(awk -F'\t' -v s="$side" '$1 == s {print $2 "\t" $3 "\t" $4}' "$runs/binaries" | sort -s -k1,1n | cut -f2-)
    return $rc
}
run_binaries agent > "$runs/agent.log" 2>&1 &
agent=$!
rest_rc=0; run_binaries rest || rest_rc=$?
agent_rc=0; wait "$agent" || agent_rc=$?
echo "===== agent and client integration tests (run beside the others) ====="
cat "$runs/agent.log"
[ "$rest_rc" = 0 ] && [ "$agent_rc" = 0 ] || { echo "tests failed" >&2; exit 1; }
cargo test --workspace --doc
rm -rf "$runs"
# The decoders of untrusted input, each fuzzed for a bounded time (about 5 min in all).
bash tests/fuzz.sh
python3 -m pip install -q --disable-pip-version-check maturin pytest
python3 -m pip install -q --disable-pip-version-check ./uforge-py
# The Python tests drive the binaries the cargo run above just built.
target=$(cargo metadata -q --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
UFORGE_SCAN_BIN=$target/debug/uforge-scan UFORGE_SERVER_BIN=$target/debug/uforge-server \
    python3 -m pytest -q uforge-py/tests
