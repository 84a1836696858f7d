"""Report persistence: native and JSON files, bytes, and malformed input."""

import json

import pytest

import uforge


def entries(report):
    return [(f.path, f.kind, f.mode, f.size, f.mtime, f.sha256, f.target, f.xattrs) for f in report.files()]


@pytest.mark.parametrize("name", ["report.ufr", "report.json"])
def test_save_and_load_round_trip(report, tmp_path, name):
    path = tmp_path / name
    report.save(path)
    head = path.read_bytes()[:16]
    assert head.startswith(b"UFORGE-REPORT/1") == name.endswith(".ufr")
    again = uforge.Report.load(path)
    assert again.packages == report.packages
    assert again.machine == report.machine
    assert again.stats == report.stats
    assert entries(again) == entries(report)


def test_native_save_is_the_in_memory_encoding(report, tmp_path):
    path = tmp_path / "r.ufr"
    report.save(str(path))
    assert path.read_bytes() == report.to_bytes()
    assert entries(uforge.Report.from_bytes(report.to_bytes())) == entries(report)


def test_to_json_is_the_public_form(report):
    doc = json.loads(report.to_json())
    assert doc["format"] == "uforge-report" and doc["version"] == 1
    assert len(doc["files"]) == report.stats["entries"]
    assert {p["name"] for p in doc["packages"]} == {p.name for p in report.packages}
    # JSON text loads back as a report too.
    assert entries(uforge.Report.from_bytes(report.to_json().encode())) == entries(report)


def test_loading_junk_names_the_file(tmp_path):
    junk = tmp_path / "junk.ufr"
    junk.write_bytes(b"\x00this is not a report\n" * 10)
    with pytest.raises(uforge.ReportError) as e:
        uforge.Report.load(junk)
    assert str(junk) in str(e.value)
    assert isinstance(e.value, uforge.UforgeError)


def test_truncated_and_missing_reports(report, tmp_path):
    cut = tmp_path / "cut.ufr"
    data = report.to_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(uforge.ReportError, match="cut.ufr"):
        uforge.Report.load(cut)
    with pytest.raises(uforge.IoError, match="nowhere.ufr"):
        uforge.Report.load(tmp_path / "nowhere.ufr")
    with pytest.raises(uforge.ReportError):
        uforge.Report.from_bytes(b"{not json")


def test_report_is_only_made_by_the_module():
    with pytest.raises(TypeError):
        uforge.Report()
