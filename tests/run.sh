#!/usr/bin/env bash
# The test suite: installs what it needs, starts a throwaway PostgreSQL server for the tests
# that run on it, then runs every test of the workspace and of the Python module.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/deps.sh

pgbin=/usr/lib/postgresql/15/bin
pgdir=$(mktemp -d /var/tmp/uforge-test-pg.XXXXXX)
chown postgres:postgres "$pgdir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
runuser -u postgres -- "$pgbin/initdb" -D "$pgdir/data" -A trust -U postgres >/dev/null
runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w \
    -o "-p $port -k $pgdir -c listen_addresses=127.0.0.1" start >/dev/null
trap 'runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgdir/data" -m fast stop >/dev/null; rm -rf "$pgdir"' EXIT
export UFORGE_TEST_PG="postgres://postgres@127.0.0.1:$port"

cargo test --workspace
python3 -m pip install -q --disable-pip-version-check maturin pytest
python3 -m pip install -q --disable-pip-version-check ./uforge-py
# The Python tests drive the binaries the cargo run above just built.
target=$(cargo metadata -q --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
UFORGE_SCAN_BIN=$target/debug/uforge-scan UFORGE_SERVER_BIN=$target/debug/uforge-server \
    python3 -m pytest -q uforge-py/tests
