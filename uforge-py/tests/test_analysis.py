"""uforge.analyze against the real bookworm mirror (signed indexes, real .deb files)."""

import json

import pytest

import uforge
from conftest import REPO_CACHE


def test_the_local_package_is_the_only_missing_one(analysis):
    assert analysis.missing_packages == [("acme-agent", "2.4.1-1", "amd64")]


def test_modified_and_deleted_files(analysis):
    modified = {(m.path, m.package, m.change) for m in analysis.modified_files}
    assert modified == {
        (b"/etc/nginx/nginx.conf", "nginx-common", "content"),
        (b"/usr/share/nginx/html/index.html", "nginx-common", "content"),
    }
    assert [(d.path, d.package) for d in analysis.deleted_files] == [
        (b"/usr/share/doc/tzdata/changelog.Debian.gz", "tzdata")
    ]


def test_unknown_and_wanted(report, analysis):
    # The root directory is never unknown: every machine has it.
    unowned = {f.path for f in report.files() if f.package is None and f.path != b"/"}
    assert set(analysis.unknown_files) == unowned
    wanted = set(analysis.wanted)
    assert len(wanted) == len(analysis.wanted)
    assert unowned <= wanted
    assert {m.path for m in analysis.modified_files} <= wanted
    assert {f.path for f in report.files() if f.package == "acme-agent"} <= wanted
    stats = analysis.stats
    assert stats["packages"] == len(report.packages)
    assert stats["from_repositories"] == len(report.packages) - 1
    assert stats["entries"] == report.stats["entries"]
    assert 0 < stats["wanted_bytes"] < report.stats["bytes"] / 2


def test_json_round_trip(analysis):
    text = analysis.to_json()
    assert json.loads(text)["format"] == "uforge-analysis"
    assert uforge.Analysis.from_json(text) == analysis
    with pytest.raises(uforge.ReportError):
        uforge.Analysis.from_json('{"format": "something else"}')


def test_an_earlier_scan_holds_everything(report, repos):
    again = uforge.analyze(report, [repos], previous=[report])
    assert again.missing_packages == []
    assert again.stats["from_previous"] == 1
    assert again.unknown_files == []
    assert again.stats["held"] > 0


def test_repo_index(report, repos):
    assert len(repos) == 1 and "bookworm" in repos.names[0]
    nginx = next(p for p in report.packages if p.name == "nginx-common")
    assert repos.has(nginx.name, nginx.version, nginx.arch)
    assert not repos.has("acme-agent", "2.4.1-1", "amd64")


def test_a_deb822_sources_file(tmp_path, report):
    # This machine's own deb822 file: bookworm, bookworm-updates and bookworm-security.
    repos = uforge.RepoIndex.from_sources(
        [],
        cache_dir=REPO_CACHE,
        files=["/etc/apt/sources.list.d/debian.sources"],
        archs=report.index_archs,
    )
    assert [n.split()[-2] for n in repos.names] == [
        "bookworm",
        "bookworm-updates",
        "bookworm-security",
    ]
    bad = tmp_path / "bad.sources"
    bad.write_text("Types: deb\nURIs: http://h/d\n")
    with pytest.raises(uforge.RepoError, match="bad.sources stanza 1: no Suites"):
        uforge.RepoIndex.from_sources([], cache_dir=tmp_path, files=[bad])


def test_a_bad_repository_line_raises_repo_error(tmp_path):
    with pytest.raises(uforge.RepoError, match="not a sources line"):
        uforge.RepoIndex.from_sources(["not a sources line"], cache_dir=tmp_path)
    with pytest.raises(uforge.RepoError):
        uforge.RepoIndex.from_sources(
            [f"deb [trusted=yes] file:{tmp_path}/nowhere ./"], cache_dir=tmp_path
        )


def test_compare(report, small_root):
    assert uforge.compare(report, report) == {"packages": [], "files": []}
    before = uforge.scan(small_root)
    (small_root / "etc" / "app.conf").write_bytes(b"port = 9090, and more\n")
    (small_root / "etc" / "new").write_bytes(b"x")
    after = uforge.scan(small_root)
    diff = uforge.compare(before, after)
    changes = {f["path"]: (f["status"], f["what"]) for f in diff["files"]}
    assert changes["/etc/new"][0] == "added"
    assert changes["/etc/app.conf"][0] == "modified" and "content" in changes["/etc/app.conf"][1]


def test_analysis_without_repositories(small_root):
    report = uforge.scan(small_root)
    analysis = uforge.analyze(report, [])
    assert set(analysis.wanted) == {f.path for f in report.files()}
