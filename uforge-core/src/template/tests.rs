//! Templates on real data: the drifted fixture scanned, analysed against the real bookworm
//! mirror, its overlay written and stored as the server does, then imported; the file form
//! round trip and schema; dependency checks against the real bookworm and trixie indexes.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use debian_control::lossy::Relations;

use super::file::{self, FILES_DIR, TEMPLATE_FILE};
use super::import::{import_scan, ImportOptions, COMPONENT};
use super::solve::{check, CheckOptions, PackageUniverse, Reason, Resolution};
use super::*;
use crate::analysis::{analyze, Analysis};
use crate::blobstore::{BlobStore, LocalBlobStore};
use crate::model::{FileKind, NetMethod};
use crate::overlay::{read_overlay, write_overlay, ReadLimits};
use crate::progress::NoProgress;
use crate::repo::{archs_of, open_sources, PackageKey, RepoIndex, RepoOptions};
use crate::report::ReportReader;
use crate::scan::{scan_to_report, ScanOptions};
use crate::test_fixture::debian_root;

/// The mirror apt uses here, as the fixture script finds it.
fn mirror() -> String {
    let sources =
        std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
    sources
        .lines()
        .filter_map(|l| l.strip_prefix("URIs:"))
        .map(str::trim)
        .find(|u| u.ends_with("/debian"))
        .unwrap_or("http://deb.debian.org/debian")
        .to_string()
}

/// Indexes cached across runs, like the repository tests' (only InRelease is fetched warm).
fn cache() -> PathBuf {
    let base =
        std::env::var_os("UFORGE_FIXTURE_CACHE").unwrap_or("/var/cache/uforge-fixtures".into());
    PathBuf::from(base).join("repo-cache-test")
}

struct Imported {
    _dir: tempfile::TempDir,
    store: LocalBlobStore,
    analysis: Analysis,
    template: Template,
}

/// The drifted fixture scanned, analysed, its overlay stored and the scan imported, once.
fn imported() -> &'static Imported {
    static I: OnceLock<Imported> = OnceLock::new();
    I.get_or_init(|| {
        let root = debian_root();
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("scan.ufr");
        scan_to_report(&ScanOptions::new(&root), &NoProgress)
            .unwrap()
            .save(&report)
            .unwrap();
        let line = format!("deb {} bookworm main", mirror());
        let header = ReportReader::open(&report).unwrap().header().clone();
        let opts = RepoOptions {
            archs: archs_of(&header),
            ..RepoOptions::new(cache())
        };
        let repos = open_sources(std::slice::from_ref(&line), &opts, &NoProgress).unwrap();
        let refs: Vec<&dyn RepoIndex> = repos.iter().map(|r| r.as_ref()).collect();
        let analysis = analyze(&|| ReportReader::open(&report), &refs, &[], &NoProgress).unwrap();
        let wanted: HashSet<Vec<u8>> = analysis.wanted.iter().cloned().collect();
        let mut overlay = Vec::new();
        let mut reader = ReportReader::open(&report).unwrap();
        write_overlay(&root, &mut reader, &wanted, &mut overlay, &NoProgress).unwrap();
        let store = LocalBlobStore::open(dir.path().join("blobs")).unwrap();
        let expected = analysis
            .expected(ReportReader::open(&report).unwrap())
            .unwrap();
        read_overlay(&overlay[..], &expected, &store, &ReadLimits::default()).unwrap();
        let started = Instant::now();
        let template = import_scan(
            &report,
            &analysis,
            &store,
            &ImportOptions {
                repositories: vec![line],
                ..ImportOptions::default()
            },
        )
        .unwrap();
        eprintln!("imported in {:?}", started.elapsed());
        Imported {
            _dir: dir,
            store,
            analysis,
            template,
        }
    })
}

fn universe(release: &str) -> PackageUniverse {
    let mut os = imported().template.os.clone();
    os.release = release.into();
    let started = Instant::now();
    let u = PackageUniverse::open(&os, &RepoOptions::new(cache()), &NoProgress).unwrap();
    eprintln!(
        "{release}: {} packages loaded in {:?}",
        u.len(),
        started.elapsed()
    );
    u
}

fn bookworm() -> &'static PackageUniverse {
    static U: OnceLock<PackageUniverse> = OnceLock::new();
    U.get_or_init(|| universe("bookworm"))
}

fn trixie() -> &'static PackageUniverse {
    static U: OnceLock<PackageUniverse> = OnceLock::new();
    U.get_or_init(|| universe("trixie"))
}

fn component(t: &Template) -> &Component {
    t.software.iter().find(|c| c.name == COMPONENT).unwrap()
}

fn file_of<'a>(t: &'a Template, path: &[u8]) -> &'a SoftwareFile {
    component(t)
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("{} not in the component", String::from_utf8_lossy(path)))
}

fn timed_check(t: &Template, u: &PackageUniverse) -> crate::Result<Resolution> {
    let started = Instant::now();
    let r = check(t, u, &imported().store, &CheckOptions::default());
    eprintln!(
        "check of {} packages against {} in {:?}",
        t.os.pkgs.len(),
        t.os.release,
        started.elapsed()
    );
    r
}

fn problems(e: crate::Error) -> Vec<String> {
    match e {
        crate::Error::Unsatisfiable { problems, .. } => problems,
        other => panic!("expected an unsatisfiable template, got: {other}"),
    }
}

/// An independent reading of the result: every Depends and Pre-Depends entry of every
/// resolved package is met by a resolved package (by name or Provides, with its version
/// constraint), and no Conflicts or Breaks relation matches another resolved package.
fn assert_consistent(res: &Resolution, u: &PackageUniverse) {
    let keys: HashSet<&PackageKey> = res.packages.iter().map(|p| &p.key).collect();
    let pkgs: Vec<&super::solve::Pkg> = u
        .pkgs_for_tests()
        .iter()
        .filter(|p| keys.contains(&p.key))
        .collect();
    let from_repos = res
        .packages
        .iter()
        .filter(|p| p.reason != Reason::OsPkg)
        .count();
    assert_eq!(
        pkgs.len(),
        from_repos,
        "every resolved package but the ospkgs is in the universe"
    );
    // name -> versions it answers to (None: unversioned Provides)
    let mut answers: std::collections::HashMap<String, Vec<(String, Option<debversion::Version>)>> =
        Default::default();
    for p in &pkgs {
        answers
            .entry(p.key.name.clone())
            .or_default()
            .push((p.key.name.clone(), p.key.version.parse().ok()));
        if let Some(pr) = &p.rel.provides {
            for alt in pr.parse::<Relations>().unwrap().0 {
                for r in alt {
                    answers
                        .entry(r.name.clone())
                        .or_default()
                        .push((p.key.name.clone(), r.version.map(|(_, v)| v)));
                }
            }
        }
    }
    let meets = |r: &debian_control::lossy::Relation, v: &Option<debversion::Version>| {
        use debian_control::relations::VersionConstraint as C;
        match (&r.version, v) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some((op, want)), Some(have)) => match op {
                C::LessThan => have < want,
                C::LessThanEqual => have <= want,
                C::Equal => have == want,
                C::GreaterThanEqual => have >= want,
                C::GreaterThan => have > want,
            },
        }
    };
    for p in &pkgs {
        for field in [&p.rel.pre_depends, &p.rel.depends] {
            let Some(text) = field else { continue };
            for alts in text.parse::<Relations>().unwrap().0 {
                let ok = alts.iter().any(|r| {
                    answers
                        .get(&r.name)
                        .is_some_and(|a| a.iter().any(|(_, v)| meets(r, v)))
                });
                assert!(ok, "{}: nothing resolved meets `{}`", p.key, text);
            }
        }
        for field in [&p.rel.conflicts, &p.rel.breaks] {
            let Some(text) = field else { continue };
            for alts in text.parse::<Relations>().unwrap().0 {
                for r in alts {
                    let hit = answers
                        .get(&r.name)
                        .and_then(|a| a.iter().find(|(who, v)| *who != p.key.name && meets(&r, v)));
                    assert!(hit.is_none(), "{}: `{r}` matches resolved {:?}", p.key, hit);
                }
            }
        }
    }
}

#[test]
fn import_describes_the_scanned_machine() {
    let imp = imported();
    let t = &imp.template;
    assert_eq!(t.name, "web01");
    assert_eq!(
        (
            t.os.distribution.as_str(),
            t.os.release.as_str(),
            t.os.arch.as_str()
        ),
        ("debian", "bookworm", "amd64")
    );
    assert_eq!(
        t.os.repositories,
        [format!("deb {} {{release}} main", mirror())]
    );
    assert_eq!(
        t.os.repository_lines(),
        [format!("deb {} bookworm main", mirror())]
    );
    // Every installed package but the one no repository has, pinned; dependencies marked.
    assert_eq!(
        imp.analysis.missing_packages,
        [PackageKey::new("acme-agent", "2.4.1-1", "amd64")]
    );
    assert!(t.os.pkgs.len() > 100, "{}", t.os.pkgs.len());
    assert!(t.os.pkgs.iter().all(|p| p.is_pinned() && p.arch.is_some()));
    assert!(!t.os.pkgs.iter().any(|p| p.name == "acme-agent"));
    let nginx = t.os.pkgs.iter().find(|p| p.name == "nginx-light").unwrap();
    assert!(!nginx.auto, "asked for by name when the fixture was made");
    assert!(t.os.pkgs.iter().any(|p| p.name == "libssl3" && p.auto));
    let mut sorted = t.os.pkgs.clone();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(sorted, t.os.pkgs);

    // The component: unowned files and changed package files, with their metadata.
    let c = component(t);
    let conf = file_of(t, b"/srv/app/config.ini");
    assert_eq!(conf.kind, FileKind::File);
    assert_eq!(conf.mode, 0o640);
    assert_eq!((conf.owner.as_deref(), conf.uid), (Some("alice"), 1001));
    assert_eq!((conf.group.as_deref(), conf.gid), (Some("deploy"), 1500));
    let Some(Content::Blob { sha256, size }) = &conf.content else {
        panic!("config.ini has no blob")
    };
    assert_eq!(*size, 15);
    assert!(imp.store.has(sha256).unwrap());
    let orphan = file_of(t, b"/srv/app/orphan-owner");
    assert_eq!(
        (orphan.owner.as_deref(), orphan.uid, orphan.gid),
        (None, 4242, 4343)
    );
    let hard_b = file_of(t, b"/srv/app/hard-b");
    assert_eq!(hard_b.kind, FileKind::Hardlink);
    assert_eq!(hard_b.target.as_deref(), Some(&b"/srv/app/hard-a"[..]));
    assert!(hard_b.content.is_none());
    let link = file_of(t, b"/srv/app/dangling-link");
    assert_eq!(
        (link.kind, link.target.as_deref()),
        (FileKind::Symlink, Some(&b"/nonexistent/target"[..]))
    );
    assert_eq!(file_of(t, b"/srv/app/null-dev").rdev, Some((1, 3)));
    assert_eq!(file_of(t, b"/srv/app/control.fifo").kind, FileKind::Fifo);
    assert_eq!(file_of(t, b"/srv/app/suid-tool").mode, 0o4755);
    assert_eq!(file_of(t, b"/srv/app/shared-tmp").mode, 0o1777);
    assert_eq!(
        file_of(t, b"/srv/app/data.bin")
            .xattrs
            .get("user.origin")
            .map(Vec::as_slice),
        Some(&b"scp from build host"[..])
    );
    assert!(file_of(t, b"/srv/app/pinger")
        .xattrs
        .contains_key("security.capability"));
    assert!(file_of(t, b"/srv/app/caf\xe9").content.is_some());
    assert!(file_of(t, b"/srv/app/line\nbreak").content.is_some());
    assert!(file_of(t, b"/var/www/html/index.html").content.is_some());
    // A changed conffile and a changed plain package file.
    assert!(file_of(t, b"/etc/nginx/nginx.conf").content.is_some());
    assert!(file_of(t, b"/usr/share/nginx/html/index.html")
        .content
        .is_some());
    assert_eq!(
        c.removed,
        [b"/usr/share/doc/tzdata/changelog.Debian.gz".to_vec()]
    );
    // What the install profile states or the install regenerates is not carried.
    for p in [
        &b"/etc/passwd"[..],
        b"/etc/shadow",
        b"/etc/hostname",
        b"/etc/network/interfaces",
        b"/etc/fstab",
        b"/home/alice/.ssh/authorized_keys",
        b"/var/lib/dpkg/status",
        b"/opt/acme-agent/bin/acme-agent",
    ] {
        assert!(
            !c.files.iter().any(|f| f.path == p),
            "{} is in the component",
            String::from_utf8_lossy(p)
        );
    }
    assert!(c
        .files
        .iter()
        .all(|f| !f.path.starts_with(b"/var/lib/dpkg/")));
    // The package no repository has, recreated and stored.
    assert_eq!(c.ospkgs.len(), 1);
    let acme = &c.ospkgs[0];
    assert_eq!(
        (acme.name.as_str(), acme.version.as_str()),
        ("acme-agent", "2.4.1-1")
    );
    assert!(imp.store.has(acme.deb.sha256().unwrap()).unwrap());

    // The install profile.
    let i = &t.install;
    assert_eq!(i.hostname.as_deref(), Some("web01"));
    assert_eq!(i.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(i.locale.as_deref(), Some("fr_FR.UTF-8"));
    let kb = i.keyboard.as_ref().unwrap();
    assert_eq!(
        (
            kb.layout.as_str(),
            kb.variant.as_deref(),
            kb.model.as_deref()
        ),
        ("fr", Some("oss"), Some("pc105"))
    );
    let nets: Vec<_> = i
        .network
        .iter()
        .map(|n| (n.name.as_str(), n.method))
        .collect();
    assert_eq!(
        nets,
        [("ens3", NetMethod::Static), ("ens4", NetMethod::Dhcp)]
    );
    assert_eq!(i.network[0].addresses, ["192.0.2.10/24"]);
    assert_eq!(i.network[0].gateway.as_deref(), Some("192.0.2.1"));
    let mounts: Vec<_> = i
        .disk
        .partitions
        .iter()
        .map(|p| (p.mount.as_str(), p.fstype.as_str()))
        .collect();
    assert_eq!(
        mounts,
        [("/", "ext4"), ("/boot/efi", "vfat"), ("/srv", "xfs")]
    );
    let users: Vec<_> = i.users.iter().map(|u| (u.name.as_str(), u.uid)).collect();
    assert_eq!(users, [("root", 0), ("alice", 1001)]);
    let alice = &i.users[1];
    assert_eq!(
        alice.ssh_keys,
        ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests alice@laptop"]
    );
    // Hashes as /etc/shadow holds them: useradd without a password leaves it locked.
    let shadow = std::fs::read_to_string(debian_root().join("etc/shadow")).unwrap();
    let hash_of = |n: &str| {
        shadow
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{n}:")))
            .and_then(|r| r.split(':').next())
            .map(str::to_string)
    };
    assert_eq!(alice.password, hash_of("alice"));
    assert_eq!(i.users[0].password, hash_of("root"));
    assert!(alice.password.is_some());
    assert_eq!(
        i.root_login.password,
        hash_of("root").is_some_and(|h| !h.starts_with(['!', '*']))
    );
    assert_eq!(i.root_login.ssh, SshRootLogin::ProhibitPassword);
    let groups: Vec<_> = i.groups.iter().map(|g| (g.name.as_str(), g.gid)).collect();
    assert!(
        groups.contains(&("deploy", 1500)) && groups.contains(&("alice", 1001)),
        "{groups:?}"
    );
    assert!(
        !groups.iter().any(|(_, gid)| (1..100).contains(gid)),
        "{groups:?}"
    );
}

#[test]
fn file_form_round_trips_and_follows_the_schema() {
    let imp = imported();
    let t = &imp.template;
    let dir = tempfile::tempdir().unwrap();
    file::export(t, &imp.store, dir.path()).unwrap();
    let (back, blobs) = file::load(dir.path()).unwrap();
    assert_eq!(&back, t, "export then load gives the same template");
    let text = std::fs::read_to_string(dir.path().join(TEMPLATE_FILE)).unwrap();
    assert_eq!(
        file::to_yaml(&back).unwrap(),
        text,
        "read then write gives the same bytes"
    );
    // Every blob is in files/, named by its digest.
    for c in t.contents() {
        let d = c.sha256().unwrap();
        assert!(blobs.has(d).unwrap());
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut blobs.open(d).unwrap(), &mut bytes).unwrap();
        assert_eq!(<[u8; 32]>::from(sha2::Sha256::digest(&bytes)), *d);
    }
    // One package and one file per line, in order, so that edits diff as single lines.
    let pkg_lines: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "    pkgs:")
        .skip(1)
        .take_while(|l| l.starts_with("    - "))
        .collect();
    assert!(
        pkg_lines.iter().all(|l| l.starts_with("    - {name: ")),
        "{pkg_lines:?}"
    );
    assert_eq!(pkg_lines.len(), t.os.pkgs.len());
    assert!(pkg_lines[0].contains("version: ") && pkg_lines[0].ends_with('}'));
    let file_lines = text
        .lines()
        .filter(|l| l.trim_start().starts_with("- {path: "))
        .count();
    assert_eq!(file_lines, component(t).files.len());
    assert!(
        text.contains("{b64: "),
        "the Latin-1 file name is written in base64"
    );

    // The schema describes what is written, and is not vacuous.
    let schema: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schema/uforge-template-v1.schema.json"
    )))
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let mut bad = doc.clone();
    bad["stack"]["bundles"][0]["files"][0]["mode"] = "0999".into();
    bad["stack"]["os"]["pkgs"][0]["versoin"] = "1".into();
    assert!(!validator.is_valid(&bad));

    // Hand edits: a file and a boot script added by `source`, read back and stored.
    let mut edited = back.clone();
    std::fs::write(dir.path().join(FILES_DIR).join("motd"), "welcome\n").unwrap();
    std::fs::write(
        dir.path().join(FILES_DIR).join("hello.sh"),
        "#!/bin/sh\necho hi\n",
    )
    .unwrap();
    edited.software[0].files.push(SoftwareFile {
        path: b"/etc/issue.d/welcome".to_vec(),
        kind: FileKind::File,
        mode: 0o644,
        owner: Some("root".into()),
        uid: 0,
        group: Some("root".into()),
        gid: 0,
        mtime: None,
        content: Some(Content::Source("motd".into())),
        target: None,
        rdev: None,
        xattrs: Default::default(),
    });
    edited.boot_scripts.push(BootScript {
        name: "hello.sh".into(),
        frequency: Frequency::Firstboot,
        order: 10,
        content: Content::Source("hello.sh".into()),
    });
    let yaml = file::to_yaml(&edited).unwrap();
    assert!(yaml.contains("source: motd") && yaml.contains("frequency: firstboot"));
    std::fs::write(dir.path().join(TEMPLATE_FILE), &yaml).unwrap();
    let (mut loaded, _) = file::load(dir.path()).unwrap();
    assert_eq!(file::to_yaml(&loaded).unwrap(), yaml);
    let errors: Vec<String> = validator
        .iter_errors(&serde_saphyr::from_str::<serde_json::Value>(&yaml).unwrap())
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let store = LocalBlobStore::open(dir.path().join("store")).unwrap();
    file::store_sources(&mut loaded, &dir.path().join(FILES_DIR), &store).unwrap();
    let motd = loaded.software[0]
        .files
        .iter()
        .find(|f| f.path == b"/etc/issue.d/welcome")
        .unwrap();
    let want: [u8; 32] = sha2::Sha256::digest(b"welcome\n").into();
    assert_eq!(
        motd.content,
        Some(Content::Blob {
            sha256: want,
            size: 8
        })
    );
    assert!(store.has(&want).unwrap());
    assert!(loaded.contents().all(|c| matches!(c, Content::Blob { .. })));

    // Bad input is refused with the place and the reason.
    let typo = text.replacen("  release: bookworm", "  relase: bookworm", 1);
    let e = file::from_yaml(&typo, "t.yml").unwrap_err().to_string();
    assert!(
        e.contains("t.yml") && e.contains("relase") && e.contains("line"),
        "{e}"
    );
    let outside = yaml.replace("source: motd", "source: ../../etc/passwd");
    let e = file::from_yaml(&outside, "t.yml").unwrap_err().to_string();
    assert!(
        e.contains("..") && e.contains("/etc/issue.d/welcome"),
        "{e}"
    );
    std::fs::write(dir.path().join(TEMPLATE_FILE), &text).unwrap();
    let victim = t.software[0]
        .files
        .iter()
        .find_map(|f| f.content.as_ref())
        .unwrap();
    let hexname = crate::blobstore::to_hex(victim.sha256().unwrap());
    std::fs::remove_file(dir.path().join(FILES_DIR).join(&hexname)).unwrap();
    let e = file::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains(&hexname), "{e}");
}

use sha2::Digest;

#[test]
fn scanned_packages_check_clean_against_bookworm() {
    let t = &imported().template;
    let u = bookworm();
    let res = timed_check(t, u).unwrap();
    for spec in &t.os.pkgs {
        let p = res
            .get(&spec.name)
            .unwrap_or_else(|| panic!("{} not resolved", spec.name));
        assert_eq!(
            Some(&p.key.version),
            spec.version.as_ref(),
            "{} moved",
            spec.name
        );
        assert_eq!(p.reason, Reason::Pinned);
    }
    let acme = res.get("acme-agent").unwrap();
    assert_eq!(acme.reason, Reason::OsPkg);
    let added: Vec<String> = res.added().map(|p| p.key.to_string()).collect();
    assert!(added.is_empty(), "the scanned set is complete: {added:?}");
    assert_eq!(res.packages.len(), t.os.pkgs.len() + 1);
    assert!(res.dropped.is_empty());
    // The same set with free packages resolves to the same versions: bookworm main is what
    // the fixture was built from.
    let mut free = t.clone();
    free.os.pkgs = t.os.pkgs.iter().map(|p| p.unpinned("amd64")).collect();
    let res_free = timed_check(&free, u).unwrap();
    assert_eq!(res_free.keys(), res.keys());
    assert_consistent(&res_free, u);
}

#[test]
fn added_package_brings_its_missing_dependencies() {
    let mut t = imported().template.clone();
    t.os.pkgs.push(PackageSpec::free("redis-server"));
    let res = timed_check(&t, bookworm()).unwrap();
    let redis = res.get("redis-server").unwrap();
    assert_eq!(redis.reason, Reason::Free);
    let tools = res.get("redis-tools").unwrap();
    assert_eq!(tools.reason, Reason::Dependency("redis-server".into()));
    // redis-server depends on redis-tools (= its own version).
    assert_eq!(tools.key.version, redis.key.version);
    let added: Vec<&str> = res.added().map(|p| p.key.name.as_str()).collect();
    for lib in ["liblzf1", "libjemalloc2"] {
        assert!(added.contains(&lib), "{lib} not added: {added:?}");
    }
    let listed: HashSet<&str> = t.os.pkgs.iter().map(|p| p.name.as_str()).collect();
    assert!(
        added.iter().all(|a| !listed.contains(a)),
        "only packages the template lacks"
    );
    assert_consistent(&res, bookworm());
}

#[test]
fn unknown_package_is_rejected_naming_it() {
    let mut t = imported().template.clone();
    t.os.pkgs.push(PackageSpec::free("uforge-no-such-package"));
    let p = problems(timed_check(&t, bookworm()).unwrap_err());
    assert_eq!(p, ["no repository has package uforge-no-such-package"]);
    let mut t = imported().template.clone();
    let base =
        t.os.pkgs
            .iter_mut()
            .find(|p| p.name == "base-files")
            .unwrap();
    base.version = Some("99.0".into());
    let p = problems(timed_check(&t, bookworm()).unwrap_err());
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with(
            "base-files is pinned to 99.0 (amd64), which no repository has; they have 12."
        ),
        "{p:?}"
    );
}

#[test]
fn conflicting_packages_are_rejected_naming_both_and_the_relation() {
    // A direct conflict with a package of the scan.
    let mut t = imported().template.clone();
    t.os.pkgs.push(PackageSpec::free("sysvinit-core"));
    let p = problems(timed_check(&t, bookworm()).unwrap_err());
    let msg = p.join("\n");
    eprintln!("{msg}");
    assert!(
        p.iter().any(|s| s.contains("systemd-sysv ")
            && s.contains("sysvinit-core ")
            && (s.contains("`Conflicts: sysvinit-core`")
                || s.contains("`Conflicts: systemd-sysv`"))),
        "{msg}"
    );
    // A conflict through a virtual package both provide.
    let mut t = imported().template.clone();
    t.os.pkgs.push(PackageSpec::free("postfix"));
    t.os.pkgs.push(PackageSpec::free("exim4-daemon-heavy"));
    let p = problems(timed_check(&t, bookworm()).unwrap_err());
    let msg = p.join("\n");
    eprintln!("{msg}");
    assert!(
        p.iter().any(|s| s.contains("postfix ")
            && s.contains("exim4-daemon-heavy ")
            && s.contains("mail-transport-agent")
            && s.contains("in the template")),
        "{msg}"
    );
}

#[test]
fn release_change_resolves_free_packages_against_trixie() {
    let u = trixie();
    let mut pinned = imported().template.clone();
    pinned.os.release = "trixie".into();
    let base_bookworm = pinned
        .os
        .pkgs
        .iter()
        .find(|p| p.name == "base-files")
        .unwrap()
        .clone();
    // Pinned versions cannot follow: each is named with what trixie has instead.
    let p = problems(timed_check(&pinned, u).unwrap_err());
    assert!(
        p.iter().any(|s| s.starts_with(&format!(
            "base-files is pinned to {} (amd64), which no repository has; they have 13.",
            base_bookworm.version.as_deref().unwrap()
        ))),
        "{p:?}"
    );
    let in_trixie = |s: &PackageSpec| {
        s.version.as_ref().is_some_and(|v| {
            u.pkgs_for_tests()
                .iter()
                .any(|p| p.key.name == s.name && &p.key.version == v)
        })
    };
    let cannot_follow = pinned.os.pkgs.iter().filter(|s| !in_trixie(s)).count();
    assert_eq!(
        p.len(),
        cannot_follow,
        "one problem per pinned version trixie lacks"
    );

    // Free, the packages resolve against trixie; what is gone is listed.
    let mut free = pinned.clone();
    free.os.pkgs = pinned.os.pkgs.iter().map(|p| p.unpinned("amd64")).collect();
    // Gone: no package of that name, and none that provides it.
    let answers: HashSet<String> = u
        .pkgs_for_tests()
        .iter()
        .flat_map(|p| {
            let provides = p
                .rel
                .provides
                .as_deref()
                .unwrap_or("")
                .parse::<Relations>()
                .unwrap();
            std::iter::once(p.key.name.clone())
                .chain(provides.0.into_iter().flatten().map(|r| r.name))
        })
        .collect();
    let gone: Vec<&PackageSpec> = free
        .os
        .pkgs
        .iter()
        .filter(|s| !answers.contains(&s.name))
        .collect();
    eprintln!(
        "gone from trixie: {:?}",
        gone.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert!(
        !gone.is_empty(),
        "bookworm libraries were renamed in trixie (64-bit time)"
    );
    let manual_gone: Vec<&&PackageSpec> = gone.iter().filter(|s| !s.auto).collect();
    match timed_check(&free, u) {
        Ok(res) => {
            assert!(manual_gone.is_empty(), "{manual_gone:?}");
            let dropped: HashSet<&str> = res
                .dropped
                .iter()
                .map(|d| d.package.name.as_str())
                .collect();
            for g in &gone {
                assert!(
                    dropped.contains(g.name.as_str()),
                    "{} not listed as dropped",
                    g.name
                );
            }
            assert!(res.dropped.iter().all(|d| d.package.auto));
            assert!(res.get("base-files").unwrap().key.version.starts_with("13"));
            let added: Vec<String> = res.added().map(|p| p.key.to_string()).collect();
            eprintln!("added for trixie: {added:?}");
            assert!(
                res.get("libssl3t64").is_some(),
                "the renamed library replaces libssl3"
            );
            assert_consistent(&res, u);
        }
        Err(e) => {
            // Packages asked for by name that trixie no longer has: each is named.
            let p = problems(e);
            assert!(!manual_gone.is_empty(), "{p:?}");
            for g in &manual_gone {
                assert!(
                    p.contains(&format!("no repository has package {}", g.name)),
                    "{p:?}"
                );
            }
        }
    }
}

#[test]
fn whole_machine_components_parse_and_alias_bombs_do_not() {
    // Far more entries than a YAML parser's default budget allows (a few tens of thousands).
    let mut t = Template {
        name: "big".into(),
        version: "1".into(),
        os: OsProfile {
            distribution: "debian".into(),
            release: "bookworm".into(),
            arch: "amd64".into(),
            ..OsProfile::default()
        },
        ..Template::default()
    };
    let files = (0..60_000u32)
        .map(|i| SoftwareFile {
            path: format!("/srv/data/{:02}/f{i}", i % 97).into_bytes(),
            kind: FileKind::File,
            mode: 0o644,
            owner: None,
            uid: 1000 + i % 3,
            group: None,
            gid: 1000,
            mtime: Some(1_700_000_000 + i as i64),
            content: Some(Content::Blob {
                sha256: sha2::Sha256::digest(i.to_le_bytes()).into(),
                size: i as u64,
            }),
            target: None,
            rdev: None,
            xattrs: Default::default(),
        })
        .collect();
    t.software.push(Component {
        name: "data".into(),
        version: "1".into(),
        files,
        ..Component::default()
    });
    t.normalize();
    let started = Instant::now();
    let text = file::to_yaml(&t).unwrap();
    let back = file::from_yaml(&text, "big.yml").unwrap();
    eprintln!(
        "{} bytes written and read in {:?}",
        text.len(),
        started.elapsed()
    );
    assert_eq!(back, t);

    let mut bomb = String::from(
        "format: uforge-template\nversion: 1\nstack:\n  name: x\n  version: '1'\n  os: {name: debian, release: bookworm, arch: amd64}\n  description: &a0 lol\n",
    );
    bomb.push_str("  extra0: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]\n");
    for i in 2..12 {
        let p = i - 1;
        bomb.push_str(&format!(
            "  extra{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let started = Instant::now();
    let e = file::from_yaml(&bomb, "bomb.yml").unwrap_err().to_string();
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    assert!(e.contains("bomb.yml"), "{e}");
}
