"""uforge.Template: the drifted root's scan imported as a template (by the `uforge` CLI, as an
operator would), then loaded, edited, checked against the real mirror and saved from Python."""

import json
import os
import subprocess
from pathlib import Path

import pytest

import uforge
from conftest import REPO_CACHE, mirror_line


@pytest.fixture(scope="session")
def template_dir(report, analysis, cli_bin, tmp_path_factory):
    """The drifted root's scan as a template directory (`uforge template from-scan`)."""
    work = tmp_path_factory.mktemp("template")
    report.save(work / "report.json")
    (work / "analysis.json").write_text(analysis.to_json())
    with open(work / "overlay.tar", "wb") as f:
        uforge.write_overlay(report, analysis, f)
    uforge_bin = str(Path(cli_bin).with_name("uforge"))
    out = subprocess.run(
        [uforge_bin, "--json", "template", "from-scan", "--repo", mirror_line(),
         "--report", str(work / "report.json"), "--overlay", str(work / "overlay.tar"),
         "--analysis", str(work / "analysis.json"), "--name", "drifted",
         "-o", str(work / "drifted")],
        check=True,
        stdout=subprocess.PIPE,
        env={**os.environ, "UFORGE_CACHE_DIR": str(REPO_CACHE)},
    )
    assert json.loads(out.stdout)["name"] == "drifted"
    return work / "drifted"


def test_load_and_the_text_forms_round_trip(template_dir):
    t = uforge.Template.load(template_dir)
    assert t == uforge.Template.load(template_dir / "template.yml")
    assert (t.name, t.distribution, t.release, t.arch) == ("drifted", "debian", "bookworm", "amd64")
    # The scanned versions are pinned; a package the repositories lack is a My Software .deb.
    assert all("=" in p for p in t.packages), t.packages[:5]
    assert any(p.startswith("base-files:amd64=12") for p in t.packages), t.packages[:5]
    text = (template_dir / "template.yml").read_text()
    assert t.to_yaml() == text
    files = template_dir / "files"
    assert uforge.Template.from_yaml(text, files=files) == t
    d = t.to_dict()
    assert d["os"]["release"] == "bookworm"
    assert any(b.get("ospkgs") for b in d.get("bundles", [])), d.get("bundles")
    assert uforge.Template.from_dict(d, files=files) == t
    # A template made from text has no contents directory: it is not the loaded one.
    assert uforge.Template.from_yaml(text) != t


def test_bad_template_text_names_the_mistake(template_dir, tmp_path):
    with pytest.raises(uforge.InvalidError, match="line 3"):
        uforge.Template.from_yaml("format: uforge-template\nversion: 1\nstack: [\n")
    text = (template_dir / "template.yml").read_text()
    assert text.startswith("format: uforge-template\nversion: 1\n"), text[:80]
    with pytest.raises(uforge.InvalidError, match="version 7 is not"):
        uforge.Template.from_yaml(text.replace("version: 1\n", "version: 7\n", 1))
    with pytest.raises(ValueError, match="release"):
        uforge.Template.from_dict({"name": "x", "version": "1", "os": {"name": "debian"}})
    with pytest.raises(uforge.IoError, match="template.yml"):
        uforge.Template.load(tmp_path)


def test_edit_check_and_save(template_dir, tmp_path):
    t = uforge.Template.load(template_dir)
    before = len(t.packages)
    t.add_package("redis-server")
    assert "redis-server" in t.packages
    # Nothing of the fixture depends on it.
    victim = next(p for p in t.packages if p.startswith("keyboard-configuration:"))
    t.remove_package("keyboard-configuration")
    assert victim not in t.packages and len(t.packages) == before
    with pytest.raises(KeyError, match="no-such-package-uforge"):
        t.remove_package("no-such-package-uforge")
    # Adding a package the template pins frees it: one entry, no version.
    pinned = next(p for p in t.packages if p.startswith("tzdata:"))
    t.add_package("tzdata")
    assert pinned not in t.packages and "tzdata" in t.packages
    t.version = "2"
    res = t.check(cache_dir=REPO_CACHE)
    names = {p.name: p for p in res.packages}
    assert names["redis-server"].reason == "free"
    # redis-server's dependencies the source lacked are added, naming what needs them.
    tools = names["redis-tools"]
    assert tools.reason == "dependency" and tools.needed_by == "redis-server", tools
    assert tools in res.added
    assert "keyboard-configuration" not in names
    assert names["base-files"].reason == "pinned"
    assert any(p.reason == "ospkg" for p in res.packages), [p for p in res.packages if p.reason != "pinned"][:5]

    out = tmp_path / "drifted-2"
    t.save(out)
    again = uforge.Template.load(out)
    assert again.to_dict() == t.to_dict() and again.version == "2"
    assert (out / "template.yml").read_text() == t.to_yaml()
    # Every content went with it: the copy checks on its own.
    blobs = {p.name for p in (out / "files").iterdir()}
    assert blobs == {p.name for p in (template_dir / "files").iterdir() if not p.name.startswith(".")}
    assert [p.name for p in again.check(cache_dir=REPO_CACHE).added] == [p.name for p in res.added]


def test_a_source_file_is_stored_under_its_digest(template_dir, tmp_path):
    t = uforge.Template.load(template_dir)
    d = t.to_dict()
    d["config"] = [{"name": "hello", "frequency": "firstboot", "source": "hello.sh"}]
    src = tmp_path / "src"
    (src / "files").mkdir(parents=True)
    for p in (template_dir / "files").iterdir():
        os.link(p, src / "files" / p.name)
    (src / "files" / "hello.sh").write_text("#!/bin/sh\necho hello\n")
    t = uforge.Template.from_dict(d, files=src / "files")
    t.save(tmp_path / "out")
    script = uforge.Template.load(tmp_path / "out").to_dict()["config"][0]
    assert "source" not in script and script["size"] == 21, script
    assert (tmp_path / "out" / "files" / script["sha256"]).read_text() == "#!/bin/sh\necho hello\n"


def test_unsatisfiable_templates_name_the_packages(template_dir):
    t = uforge.Template.load(template_dir)
    t.add_package("no-such-package-uforge")
    with pytest.raises(uforge.UnsatisfiableError) as e:
        t.check(cache_dir=REPO_CACHE)
    assert any("no-such-package-uforge" in p for p in e.value.problems), e.value.problems

    t = uforge.Template.load(template_dir)
    t.add_package("postfix")
    t.add_package("exim4-daemon-heavy")
    with pytest.raises(uforge.UnsatisfiableError) as e:
        t.check(cache_dir=REPO_CACHE)
    assert any(
        "postfix" in p and "exim4-daemon-heavy" in p and "mail-transport-agent" in p
        for p in e.value.problems
    ), e.value.problems
    assert "postfix" in str(e.value)


def test_moving_to_trixie(template_dir):
    t = uforge.Template.load(template_dir)
    t.release = "trixie"
    assert all("{release}" in r or "trixie" in r for r in t.repositories), t.repositories
    # Pinned bookworm versions cannot follow, and the check says which.
    with pytest.raises(uforge.UnsatisfiableError) as e:
        t.check(cache_dir=REPO_CACHE)
    assert any(p.startswith("base-files is pinned to 12") for p in e.value.problems), e.value.problems[:5]
    t.unpin()
    assert not any("=" in p for p in t.packages)
    res = t.check(cache_dir=REPO_CACHE)
    base = next(p for p in res.packages if p.name == "base-files")
    assert base.version.startswith("13"), base
