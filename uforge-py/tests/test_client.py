"""uforge.Client against the real uforge-server over TLS on loopback.

The server binary is built with cargo (unless UFORGE_SERVER_BIN names one) and started in a
temporary data directory on an ephemeral port; users are created with its own CLI. The last
test runs the live scan of the real drifted Debian root against the real bookworm mirror.
"""

import os
import queue
import socket
import subprocess
import sys
import threading
import time

import pytest

import uforge
from conftest import fixture_root, mirror_line, workspace_bin

STEPS = ["connect", "scan", "report", "overlay"]


def server_env():
    # The server reads its settings from UFORGE_* variables too: the caller's must not leak in.
    return {k: v for k, v in os.environ.items() if not k.startswith("UFORGE_")}


class Server:
    """A running uforge-server with its own data directory."""

    def __init__(self, binary, data):
        self.binary = binary
        self.data = data
        self.log = data / "server.log"
        data.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    "serve",
                    "--data-dir",
                    str(data),
                    "--listen",
                    "127.0.0.1:0",
                    # The tests' flat repositories are file: URIs, which only admins may add.
                    "--allow-local-repos",
                ],
                stdout=subprocess.PIPE,
                stderr=log,
                env=server_env(),
            )
        lines = queue.Queue()

        def drain():
            # Reads on after the URL so that the server never blocks on a full pipe.
            for line in self.proc.stdout:
                lines.put(line.decode(errors="replace"))
            lines.put(None)

        threading.Thread(target=drain, daemon=True).start()
        self.url = None
        deadline = time.monotonic() + 60
        while self.url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            words = [w for w in line.split() if w.startswith("https://")]
            if words:
                self.url = words[0].rstrip("/")
        if self.url is None:
            self.stop()
            pytest.fail(f"uforge-server printed no URL; its log:\n{self.log_tail()}")
        self.cacert = data / "tls" / "cert.pem"

    def log_tail(self, n=40):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def add_user(self, name):
        """Creates a user with the server's CLI and returns its token."""
        out = subprocess.run(
            [self.binary, "user", "add", name, "--data-dir", str(self.data)],
            check=True,
            stdout=subprocess.PIPE,
            env=server_env(),
        )
        return out.stdout.decode().split()[-1]

    def client(self, token, **kw):
        return uforge.Client(self.url, token, cacert=self.cacert, **kw)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    binary = workspace_bin("uforge-server", "UFORGE_SERVER_BIN")
    s = Server(binary, tmp_path_factory.mktemp("server") / "data")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def alice_token(server):
    return server.add_user("alice")


@pytest.fixture(scope="module")
def alice(server, alice_token):
    return server.client(alice_token)


@pytest.fixture(scope="module")
def bob(server):
    return server.client(server.add_user("bob"), user="bob")


@pytest.fixture(scope="module")
def flat_repo(alice, tmp_path_factory):
    """A local flat repository without packages, added and synced: analyses have a synced
    repository to look packages up in, without the network."""
    d = tmp_path_factory.mktemp("flat-repo")
    (d / "Packages").write_bytes(b"")
    repo = alice.repo_add(f"deb [trusted=yes] file:{d} ./")
    return alice.repo_sync(repo["id"])


def make_root(path):
    """A tiny machine: a config file, some data, a name that is not UTF-8."""
    (path / "etc").mkdir(parents=True)
    (path / "etc" / "app.conf").write_bytes(b"port = 8080\n")
    (path / "srv").mkdir()
    (path / "srv" / "data.bin").write_bytes(os.urandom(256 << 10))
    (path / "srv" / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"latin-1 name\n")
    return path


@pytest.fixture(scope="module")
def box1(alice, flat_repo, tmp_path_factory):
    """A live scan of a small root as machine box1: (root, run result, progress calls)."""
    root = make_root(tmp_path_factory.mktemp("box1") / "root")
    calls = []
    result = alice.run("box1", root=root, progress=lambda *a: calls.append(a))
    return root, result, calls


def test_health(server, alice_token):
    client = server.client(alice_token)
    h = client.health()
    assert h["status"] == "ok" and h["user"] == "alice", h
    assert isinstance(h["version"], str)
    assert client.url == server.url and client.user is None
    assert server.url in repr(client)
    # The same token with its user name (HTTP Basic), and a cacert given as bytes.
    named = uforge.Client(server.url, alice_token, cacert=bytes(server.cacert), user="alice")
    assert named.health()["user"] == "alice"
    assert "as alice" in repr(named)


def test_a_wrong_token_is_an_auth_error(server, alice_token):
    with pytest.raises(uforge.AuthError) as e:
        server.client("0" * 64).health()
    assert e.value.status == 401
    assert isinstance(e.value, uforge.ClientError) and isinstance(e.value, uforge.UforgeError)
    assert "401" in str(e.value) and "token" in str(e.value)
    # A real token under another user's name is refused too.
    with pytest.raises(uforge.AuthError):
        server.client(alice_token, user="mallory").scans()


def test_a_self_signed_server_needs_its_certificate(server, alice_token):
    with pytest.raises(uforge.ClientError) as e:
        uforge.Client(server.url, alice_token).health()
    assert e.value.status is None
    assert not isinstance(e.value, uforge.AuthError)
    assert "certificate" in str(e.value).lower(), str(e.value)
    assert uforge.Client(server.url, alice_token, insecure=True).health()["status"] == "ok"


def test_bad_client_arguments(server, alice_token, tmp_path):
    with pytest.raises(uforge.ClientError, match="https://"):
        uforge.Client(server.url.replace("https://", "http://"), alice_token)
    missing = tmp_path / "missing.pem"
    with pytest.raises(uforge.ClientError, match="missing.pem") as e:
        uforge.Client(server.url, alice_token, cacert=missing)
    assert e.value.status is None
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    with pytest.raises(uforge.ClientError, match="no PEM certificate"):
        uforge.Client(server.url, alice_token, cacert=empty)
    with pytest.raises(TypeError, match="progress must be callable"):
        server.client(alice_token).run("never", root=tmp_path, progress=42)
    # A ClientError made by Python code reads status None too.
    assert uforge.ClientError("x").status is None


def test_repositories(alice, bob, flat_repo):
    assert flat_repo["packages"] == 0 and flat_repo["synced_at"], flat_repo
    assert flat_repo["line"].startswith("deb [trusted=yes] file:")
    assert flat_repo["id"] in [r["id"] for r in alice.repos()]
    other = alice.repo_add("deb [trusted=yes] file:/nonexistent ./")
    assert other["packages"] is None and other["synced_at"] is None, other
    with pytest.raises(uforge.ClientError) as e:
        alice.repo_sync(other["id"])
    assert e.value.status is not None and e.value.status >= 400, str(e.value)
    alice.repo_delete(other["id"])
    assert other["id"] not in [r["id"] for r in alice.repos()]
    with pytest.raises(uforge.NotFoundError) as e:
        alice.repo_delete(other["id"])
    assert e.value.status == 404
    # Repositories are per user.
    assert bob.repos() == []
    with pytest.raises(uforge.NotFoundError):
        bob.repo_sync(flat_repo["id"])


def test_live_scan_of_a_small_root(alice, box1):
    root, result, calls = box1
    assert set(result) == {
        "scan_id",
        "report_bytes",
        "analysis",
        "stats",
        "overlay",
        "result",
        "skipped_files",
        "skipped_bytes",
    }
    assert result["result"]["status"] == "complete", result["result"]
    # The machine's first scan: the server held none of its contents, everything was sent.
    assert (result["skipped_files"], result["skipped_bytes"]) == (0, 0)
    assert result["result"]["recreated"] == []
    analysis = result["analysis"]
    assert isinstance(analysis, uforge.Analysis)
    assert result["stats"] == analysis.stats
    assert analysis.missing_packages == []
    # Nothing is packaged: every entry is unknown and shipped, the odd name included.
    wanted = set(analysis.wanted)
    assert {b"/etc/app.conf", b"/srv/data.bin", b"/srv/caf\xe9.txt"} <= wanted
    assert analysis.stats["entries"] == len(wanted)
    assert result["overlay"]["members"] == len(wanted) == result["result"]["members"]
    assert result["overlay"]["content_bytes"] == result["result"]["content_bytes"]
    assert result["overlay"]["content_bytes"] >= 256 << 10
    assert result["report_bytes"] > 0

    # Progress: every step in order, counts starting again at each, the overlay's totals last.
    steps = [c[0] for c in calls]
    assert [s for i, s in enumerate(steps) if i == 0 or steps[i - 1] != s] == STEPS, calls
    assert all(len(c) == 3 and isinstance(c[1], int) and isinstance(c[2], int) for c in calls)
    assert max(c[1] for c in calls if c[0] == "scan") == analysis.stats["entries"]
    assert calls[-1] == ("overlay", result["overlay"]["members"], result["overlay"]["content_bytes"])

    sid = result["scan_id"]
    listed = alice.scans()
    assert sid in [s["id"] for s in listed]
    assert all(s["machine"] == "box1" for s in alice.scans(machine="box1"))
    scan = alice.scan(sid)
    assert scan["status"] == "complete" and scan["machine"] == "box1", scan
    assert scan["summary"]["wanted"] == len(wanted)
    assert scan["summary"]["missing_packages"] == 0
    machines = {m["name"]: m for m in alice.machines()}
    assert machines["box1"]["scans"] >= 1
    assert alice.analysis(sid) == analysis


def test_other_users_see_nothing(alice, bob, box1):
    sid = box1[1]["scan_id"]
    for call in (bob.scan, bob.analysis, bob.delete_scan):
        with pytest.raises(uforge.NotFoundError) as e:
            call(sid)
        assert e.value.status == 404
        assert "404" in str(e.value)
    with pytest.raises(uforge.NotFoundError):
        bob.compare(sid, sid)
    assert bob.scans() == [] and bob.machines() == [] and bob.packages() == []
    assert alice.scan(sid)["status"] == "complete"


def test_compare_two_scans_and_delete(alice, flat_repo, tmp_path):
    root = make_root(tmp_path / "root")
    first = alice.run("box2", root=root)
    (root / "etc" / "app.conf").write_bytes(b"port = 9090\n")
    second = alice.run("box2", root=str(root))
    a, b = first["scan_id"], second["scan_id"]
    assert a != b
    # The second run of the same machine ships only what changed.
    assert b"/etc/app.conf" in second["analysis"].wanted
    assert b"/srv/data.bin" not in second["analysis"].wanted
    assert second["analysis"].stats["held"] > 0
    assert second["overlay"]["content_bytes"] == len(b"port = 9090\n")

    diff = alice.compare(a, b)
    assert diff["packages"] == []
    assert [f["path"] for f in diff["files"]] == ["/etc/app.conf"], diff
    assert [s["id"] for s in alice.scans(machine="box2")] == [b, a]

    alice.delete_scan(a)
    with pytest.raises(uforge.NotFoundError):
        alice.scan(a)
    with pytest.raises(uforge.NotFoundError):
        alice.compare(a, b)
    assert [s["id"] for s in alice.scans(machine="box2")] == [b]


def test_excludes_reach_the_scan(alice, flat_repo, tmp_path):
    root = make_root(tmp_path / "root")
    result = alice.run("box3", root=root, exclude=["/srv"], threads=1)
    wanted = result["analysis"].wanted
    assert b"/etc/app.conf" in wanted
    assert not [p for p in wanted if p.startswith(b"/srv")], wanted


def test_an_exception_in_progress_is_raised_after_the_run(alice, flat_repo, tmp_path):
    root = make_root(tmp_path / "root")
    calls = []

    def progress(*args):
        calls.append(args)
        raise ValueError("stop")

    with pytest.raises(ValueError, match="stop"):
        alice.run("box4", root=root, progress=progress)
    assert len(calls) == 1
    # The run itself went to its end.
    assert alice.scans(machine="box4")[0]["status"] == "complete"


def test_a_root_that_cannot_be_scanned_is_a_local_error(alice, flat_repo, tmp_path):
    with pytest.raises(uforge.UforgeError) as e:
        alice.run("box5", root=tmp_path / "missing")
    assert not isinstance(e.value, uforge.ClientError)
    assert "missing" in str(e.value)


def test_the_gil_is_released_while_waiting(tmp_path):
    # A peer that accepts the connection and says nothing for 3 seconds: the client blocks
    # in the TLS handshake meanwhile. Another process, so that it answers whatever the GIL does.
    peer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, time\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
            "print(s.getsockname()[1], flush=True)\n"
            "c, _ = s.accept(); time.sleep(3); c.close()\n",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        port = int(peer.stdout.readline())
        client = uforge.Client(f"https://127.0.0.1:{port}", "token", insecure=True)
        errors = []

        def call():
            try:
                client.health()
            except uforge.ClientError as e:
                errors.append(e)

        start = time.monotonic()
        t = threading.Thread(target=call)
        t.start()
        time.sleep(0.5)
        # Had the call held the GIL, this thread would only get here once the peer hung up.
        assert t.is_alive() and time.monotonic() - start < 2.5
        t.join(timeout=30)
        assert len(errors) == 1 and errors[0].status is None, errors
    finally:
        peer.kill()
        peer.wait()


def test_live_scan_of_the_drifted_debian_root(server):
    """The real five steps: the drifted root against the real mirror. The server fetches and
    caches the bookworm index in its data directory, which takes a while the first time."""
    carol = server.client(server.add_user("carol"))
    repo = carol.repo_add(mirror_line())
    synced = carol.repo_sync(repo["id"])
    assert synced["packages"] > 50_000, synced

    root = fixture_root("drifted")
    result = carol.run("web01", root=root)
    assert result["result"]["status"] == "complete", result["result"]
    analysis = result["analysis"]
    assert analysis.missing_packages == [("acme-agent", "2.4.1-1", "amd64")]
    assert [(p["name"], p["version"], p["arch"]) for p in result["result"]["recreated"]] == [
        ("acme-agent", "2.4.1-1", "amd64")
    ]
    scan = carol.scan(result["scan_id"])
    assert scan["status"] == "complete" and scan["summary"]["missing_packages"] == 1, scan
    packages = carol.packages()
    assert [(p["name"], p["version"], p["scan"]) for p in packages] == [
        ("acme-agent", "2.4.1-1", result["scan_id"])
    ], packages
    assert packages[0]["file"].endswith(".deb") and len(packages[0]["sha256"]) == 64
    assert carol.analysis(result["scan_id"]) == analysis
