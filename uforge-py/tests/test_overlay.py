"""uforge.write_overlay to files and file objects, read back with tarfile."""

import io
import os
import tarfile

import pytest

import uforge


def member_paths(tar):
    """In-root paths of an overlay's members, raw bytes (`./` is the root)."""
    out = []
    for m in tar.getmembers():
        name = os.fsencode(m.name)
        out.append(b"/" if name in (b".", b"./") else b"/" + name.rstrip(b"/"))
    return out


def test_overlay_to_a_file(report, analysis, tmp_path):
    dest = tmp_path / "overlay.tar"
    stats = uforge.write_overlay(report, analysis, dest)
    assert stats["bytes"] == dest.stat().st_size
    with tarfile.open(dest) as tar:
        paths = member_paths(tar)
    assert sorted(paths) == sorted(analysis.wanted)
    assert stats["members"] == len(paths)


def test_overlay_to_a_file_object(report, analysis, drifted_root):
    buf = io.BytesIO()
    calls = []
    stats = uforge.write_overlay(
        report, analysis, buf, root=drifted_root, progress=lambda n, b: calls.append(n)
    )
    assert stats["bytes"] == len(buf.getvalue())
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        assert sorted(member_paths(tar)) == sorted(analysis.wanted)
        conf = tar.extractfile("etc/nginx/nginx.conf").read()
    with open(os.path.join(drifted_root, "etc/nginx/nginx.conf"), "rb") as f:
        assert conf == f.read()
    assert calls[-1] == stats["members"]


def test_an_exception_from_write_propagates(report, analysis):
    class Full(io.RawIOBase):
        def writable(self):
            return True

        def write(self, b):
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        uforge.write_overlay(report, analysis, Full())


def test_files_changed_since_the_scan_are_sent_as_they_are_now(small_root, tmp_path):
    report = uforge.scan(small_root)
    analysis = uforge.analyze(report, [])
    (small_root / "etc" / "app.conf").write_bytes(b"port = 9090, changed after the scan\n")
    dest = tmp_path / "o.tar"
    with pytest.raises(uforge.OverlayError, match="app.conf") as e:
        uforge.write_overlay(report, analysis, dest)
    assert [(c.path, c.op) for c in e.value.changed] == [(b"/etc/app.conf", "amended")]
    assert e.value.stats["members"] == len(analysis.wanted)
    with tarfile.open(dest) as tar:
        conf = next(m for m in tar.getmembers() if m.name == "etc/app.conf")
        assert conf.pax_headers["UFORGE.amended"] == "1"
        assert tar.extractfile(conf).read() == b"port = 9090, changed after the scan\n"
        assert b"/srv/caf\xe9.txt" in member_paths(tar)


def test_overlay_destination_errors(report, analysis, tmp_path):
    with pytest.raises(uforge.IoError, match="no-such-dir"):
        uforge.write_overlay(report, analysis, tmp_path / "no-such-dir" / "o.tar")
    with pytest.raises(TypeError):
        uforge.write_overlay(report, analysis, 42)
