"""uforge.scan against the CLI's scan of the same real Debian root."""

import collections.abc
import gc
import threading
import time
import tracemalloc

import pytest

import uforge
from conftest import raw


def test_packages_match_the_cli(report, cli_report):
    ours = {
        (p.name, p.version, p.arch, p.manager, p.status, p.source, p.auto)
        for p in report.packages
    }
    theirs = {
        (p["name"], p["version"], p["arch"], p["manager"], p["status"], p.get("source"), p["auto"])
        for p in cli_report["packages"]
    }
    assert ours == theirs
    assert ("acme-agent", "2.4.1-1", "amd64") in {(p.name, p.version, p.arch) for p in report.packages}
    assert all(isinstance(p, uforge.Package) for p in report.packages)


def test_files_match_the_cli(report, cli_report):
    ours = {(f.path, f.kind, f.sha256) for f in report.files()}
    theirs = {(raw(f, "path"), f["kind"], f.get("sha256")) for f in cli_report["files"]}
    assert len(ours) == report.stats["entries"] == len(cli_report["files"])
    assert ours == theirs
    # The fixture has names that are not UTF-8: they stay bytes, and path_str says so.
    odd = [f for f in report.files() if f.path_str is None]
    assert odd, "the drifted root has non-UTF-8 names"
    assert all(isinstance(f.path, bytes) for f in odd)


def test_file_metadata_matches_the_cli(report, cli_report):
    theirs = {raw(f, "path"): f for f in cli_report["files"]}
    for f in report.files():
        t = theirs[f.path]
        assert (f.mode, f.uid, f.gid, f.user, f.group, f.size, f.mtime, f.package) == (
            t["mode"],
            t["uid"],
            t["gid"],
            t.get("user"),
            t.get("group"),
            t["size"],
            t["mtime"],
            t.get("package"),
        ), f.path
        assert f.target == raw(t, "target")
        assert f.rdev == (tuple(t["rdev"]) if t.get("rdev") else None)
        assert set(f.xattrs) == set(t.get("xattrs", {}))


def test_entry_kinds_and_special_files(report):
    by_path = {f.path: f for f in report.files()}
    assert by_path[b"/"].kind == "dir"
    assert by_path[b"/bin"].kind == "symlink" and by_path[b"/bin"].target == b"usr/bin"
    kinds = collections.Counter(f.kind for f in by_path.values())
    for kind in ("file", "dir", "symlink", "hardlink", "fifo", "char"):
        assert kinds[kind] > 0, kind
    caps = [f for f in by_path.values() if "security.capability" in f.xattrs]
    assert caps and isinstance(caps[0].xattrs["security.capability"], bytes)
    devices = [f for f in by_path.values() if f.kind == "char"]
    assert all(isinstance(f.rdev, tuple) and len(f.rdev) == 2 for f in devices)
    conf = by_path[b"/etc/acme-agent/agent.conf"]
    assert conf.package == "acme-agent" and len(conf.sha256) == 64


def test_machine_facts_are_typed(report, cli_report):
    m = report.machine
    assert isinstance(m, uforge.Machine)
    assert (m.os.id, m.os.version_id, m.os.version_codename) == ("debian", "12", "bookworm")
    assert m.arch == "x86_64" and m.package_arch == "amd64"
    assert m.hostname == "web01" and m.timezone == "Europe/Paris"
    assert isinstance(m.keyboard, uforge.Keyboard) and m.keyboard.layout == "fr"
    ens3 = next(n for n in m.network if n.name == "ens3")
    assert isinstance(ens3, uforge.NetworkInterface)
    assert (ens3.method, ens3.addresses, ens3.gateway) == ("static", ["192.0.2.10/24"], "192.0.2.1")
    assert "alice" in {u.name for u in m.users}
    assert all(isinstance(g, uforge.Group) for g in m.groups)
    assert {(x.target, x.fstype) for x in m.mounts} == {
        (x["target"], x["fstype"]) for x in cli_report["machine"]["mounts"]
    }
    # Records compare by value and show their fields.
    assert report.machine == m and "hostname='web01'" in repr(m)


def test_files_is_a_lazy_iterator(report):
    it = report.files()
    assert isinstance(it, collections.abc.Iterator) and iter(it) is it
    assert not isinstance(it, (list, tuple))
    first = next(it)
    assert first.path == b"/"
    # Each call starts again from the beginning.
    assert next(report.files()).path == b"/"

    # Walking every entry holds one entry at a time: Python memory stays flat, far below
    # what the list of all entries takes.
    n = report.stats["entries"]
    gc.collect()
    tracemalloc.start()
    count = 0
    for _ in report.files():
        count += 1
    _, streaming_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == n

    tracemalloc.start()
    everything = list(report.files())
    _, list_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(everything) == n
    del everything
    assert streaming_peak < 64 * 1024, streaming_peak
    assert list_peak > 20 * streaming_peak, (list_peak, streaming_peak)


def test_progress_is_called_with_counts(drifted_root):
    calls = []
    report = uforge.scan(drifted_root, progress=lambda files, size: calls.append((files, size)))
    stats = report.stats
    assert calls[-1] == (stats["entries"], stats["bytes"])
    assert all(a <= b for a, b in zip(calls, calls[1:]))
    # At most ~10 calls a second, plus the final one.
    assert len(calls) <= stats["duration_ms"] / 100 + 2


def test_an_exception_in_progress_is_raised_after_the_scan(drifted_root):
    calls = []

    def progress(files, size):
        calls.append(files)
        raise KeyError("stop it")

    with pytest.raises(KeyError, match="stop it"):
        uforge.scan(drifted_root, progress=progress)
    assert len(calls) == 1, "not called again once it raised"


def test_progress_must_be_callable(small_root):
    with pytest.raises(TypeError, match="callable"):
        uforge.scan(small_root, progress=42)


def test_the_gil_is_released_while_scanning(drifted_root):
    ticks = []
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=spin)
    t.start()
    started = time.perf_counter()
    uforge.scan(drifted_root)
    ended = time.perf_counter()
    stop.set()
    t.join()
    during = [x for x in ticks if started < x < ended]
    # Another Python thread keeps running during the scan (it could not if the GIL were held).
    assert len(during) >= 20, (len(during), ended - started)


def test_excludes_and_options(small_root):
    full = uforge.scan(small_root)
    paths = {f.path for f in full.files()}
    assert {b"/", b"/etc", b"/etc/app.conf", b"/srv/data.bin", b"/srv/caf\xe9.txt"} <= paths
    part = uforge.scan(str(small_root).encode(), exclude=[b"/srv"], threads=1)
    assert not any(f.path.startswith(b"/srv") for f in part.files())
    assert any(e.path == b"/srv" and e.reason == "excluded by the user" for e in part.scan_info.excludes)
    assert part.scan_info.root == str(small_root).encode() and part.scan_info.live is False


def test_scan_errors_are_uforge_errors(tmp_path):
    with pytest.raises(uforge.IoError, match="does-not-exist"):
        uforge.scan(tmp_path / "does-not-exist")
    (tmp_path / "plain").write_text("x")
    with pytest.raises(uforge.InvalidError, match="not a directory"):
        uforge.scan(tmp_path / "plain")
    with pytest.raises(uforge.InvalidError, match=r"\.\."):
        uforge.scan(tmp_path, exclude=["/a/../b"])
    with pytest.raises(TypeError):
        uforge.scan(tmp_path, exclude="/srv")
    assert issubclass(uforge.IoError, uforge.UforgeError)
