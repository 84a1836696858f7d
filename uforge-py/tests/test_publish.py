"""uforge.Client targets and publications against the real uforge-server: a directory target
and a password target, credentials never returned, another user's target not found, and an
image published to the directory, read back with its SHA-256 manifest."""

import hashlib
import sqlite3
import time

import pytest

import uforge
from test_client import Server  # noqa: F401 (the fixtures below use its server)
from test_client import alice, alice_token, bob, server  # noqa: F401

SECRET = "py-secret-never-returned-41"


def put_image(server, user, data, name):
    """A done image job of `user` whose file is `data`, as a finished build leaves it."""
    db = sqlite3.connect(server.data / "uforge.db", timeout=15)
    sha = hashlib.sha256(data).hexdigest()
    with db:
        cur = db.execute(
            "INSERT INTO images (user_id, format, target, network, status, progress_files, "
            "progress_bytes, file, size, sha256, created_at) SELECT id, 'raw', 'none', 'keep', "
            "'done', 0, 0, ?, ?, ?, datetime('now') FROM users WHERE name = ?",
            (name, len(data), sha, user),
        )
        image = cur.lastrowid
    db.close()
    d = server.data / "images" / str(image)
    d.mkdir(parents=True)
    (d / name).write_bytes(data)
    return image, sha


def test_targets_and_publications(server, alice, bob, tmp_path):
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    t = alice.add_target("shelf", f"dir://{shelf}")
    assert t["type"] == "directory" and t["credentials_set"] is False
    reg = alice.add_target(
        "reg",
        "oci://registry.example.com/team",
        credentials={"type": "password", "username": "ci", "password": SECRET},
    )
    assert reg["credentials_set"] is True
    assert SECRET not in repr(reg) and SECRET not in repr(alice.targets())
    assert [x["name"] for x in alice.targets()] == ["reg", "shelf"]
    assert alice.target("reg") == reg
    with pytest.raises(uforge.ClientError) as e:
        alice.add_target("bad", "ftp://x/y")
    assert e.value.status == 400 and "unknown scheme" in str(e.value)
    with pytest.raises(ValueError):
        alice.add_target("bad", "dir:///tmp", credentials={"type": "ssh"})

    # Bob sees none of Alice's targets, and cannot use or delete them.
    assert bob.targets() == []
    for call in (lambda: bob.target("reg"), lambda: bob.delete_target("shelf")):
        with pytest.raises(uforge.NotFoundError):
            call()

    data = bytes(range(256)) * 4096
    image, sha = put_image(server, "alice", data, "web01.raw")
    with pytest.raises(uforge.ClientError) as e:
        alice.publish(image, "reg")
    assert e.value.status == 400 and "raw" in str(e.value)
    with pytest.raises(uforge.NotFoundError):
        bob.publish(image, "shelf")

    p = alice.publish(image, "shelf")
    assert p["status"] == "queued" and p["target"] == "shelf"
    deadline = time.time() + 120
    while p["status"] not in ("done", "failed") and time.time() < deadline:
        time.sleep(0.2)
        p = alice.publication(p["id"])
    assert p["status"] == "done", p
    assert p["digest"] == f"sha256:{sha}"
    assert (shelf / "web01.raw").read_bytes() == data
    assert sha in (shelf / "web01.raw.sha256").read_text()
    assert [x["id"] for x in alice.publications(image=image)] == [p["id"]]
    assert bob.publications() == []
    with pytest.raises(uforge.ClientError) as e:
        alice.retry_publication(p["id"])
    assert e.value.status == 409
    with pytest.raises(uforge.ClientError) as e:
        alice.delete_target("shelf")
    assert e.value.status == 409

    alice.delete_publication(p["id"])
    assert not (shelf / "web01.raw").exists()
    with pytest.raises(uforge.NotFoundError):
        alice.publication(p["id"])
    alice.set_target_credentials("reg", {"type": "token", "token": SECRET})
    alice.delete_target("shelf")
    alice.delete_target("reg")
    assert alice.targets() == []
    assert SECRET not in server.log.read_text(errors="replace")
