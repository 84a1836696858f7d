"""Shared fixtures: the real drifted Debian root, the uforge-scan CLI, the bookworm mirror.

The drifted root is built once by tests/fixtures/debian-root.sh (mmdebstrap from the mirror
apt uses) and cached; the CLI is built with cargo unless UFORGE_SCAN_BIN names a binary.
"""

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

import uforge

REPO = Path(__file__).resolve().parents[2]
REPO_CACHE = Path("/var/cache/uforge-fixtures/repo-cache")


def fixture_root(kind):
    """Path of a cached real Debian root (built on first use)."""
    out = subprocess.run(
        ["bash", str(REPO / "tests/fixtures/debian-root.sh"), kind],
        check=True,
        stdout=subprocess.PIPE,
    )
    return out.stdout.decode().strip()


def mirror_line():
    """The bookworm main line of the mirror apt uses (the fixture was built from it)."""
    uri = "http://deb.debian.org/debian"
    try:
        text = Path("/etc/apt/sources.list.d/debian.sources").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("URIs:") and line.split()[1:] and line.split()[1].endswith("/debian"):
            uri = line.split()[1]
            break
    return f"deb {uri} bookworm main"


def raw(entry, key):
    """The raw bytes of a JSON report field that is `key` (UTF-8) or `key_b64`."""
    if entry.get(key) is not None:
        return entry[key].encode()
    if entry.get(key + "_b64") is not None:
        return base64.b64decode(entry[key + "_b64"])
    return None


@pytest.fixture(scope="session")
def drifted_root():
    return fixture_root("drifted")


def workspace_bin(name, env_var):
    """A binary of this workspace: the one `env_var` names, else built with cargo (debug)."""
    if os.environ.get(env_var):
        return os.environ[env_var]
    subprocess.run(
        ["cargo", "build", "-q", "-p", "uforge-server", "-p", "uforge-scan-cli"],
        cwd=REPO,
        check=True,
    )
    meta = subprocess.run(
        ["cargo", "metadata", "-q", "--format-version", "1", "--no-deps"],
        cwd=REPO,
        check=True,
        stdout=subprocess.PIPE,
    )
    return str(Path(json.loads(meta.stdout)["target_directory"]) / "debug" / name)


@pytest.fixture(scope="session")
def cli_bin():
    """The uforge-scan binary of this workspace."""
    return workspace_bin("uforge-scan", "UFORGE_SCAN_BIN")


@pytest.fixture(scope="session")
def cli_report(drifted_root, cli_bin, tmp_path_factory):
    """The CLI's JSON report of the drifted root, parsed."""
    out = tmp_path_factory.mktemp("cli") / "report.json"
    subprocess.run(
        [cli_bin, "scan", "-q", "--root", drifted_root, "-o", str(out)],
        check=True,
    )
    with open(out) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def report(drifted_root):
    """The drifted root scanned from Python."""
    return uforge.scan(drifted_root)


@pytest.fixture(scope="session")
def repos(report):
    REPO_CACHE.mkdir(parents=True, exist_ok=True)
    return uforge.RepoIndex.from_sources(
        [mirror_line()], cache_dir=REPO_CACHE, archs=report.index_archs
    )


@pytest.fixture(scope="session")
def analysis(report, repos):
    return uforge.analyze(report, repos)


@pytest.fixture
def small_root(tmp_path):
    """A tiny root of our own, for cases the real fixture cannot show (files that change)."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "app.conf").write_bytes(b"port = 8080\n")
    (root / "srv").mkdir()
    (root / "srv" / "data.bin").write_bytes(os.urandom(64 << 10))
    (root / "srv" / b"caf\xe9.txt".decode("utf-8", "surrogateescape")).write_bytes(b"latin-1 name\n")
    return root
