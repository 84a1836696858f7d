//! `uforge-scan scan` against a real Debian root, checked entry by entry against independent
//! tools (dpkg-query, find, sha256sum, stat, getfattr).

use crate::util::*;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine;
use serde_json::Value;

/// The JSON report of the drifted fixture, scanned once for all tests.
fn drifted() -> &'static (std::path::PathBuf, Value) {
    static REPORT: OnceLock<(std::path::PathBuf, Value)> = OnceLock::new();
    REPORT.get_or_init(|| {
        let root = fixture("drifted");
        let dir = tempfile::tempdir().unwrap();
        let report = scan_json(&root, dir.path(), &[]);
        (root, report)
    })
}

#[test]
fn packages_match_dpkg_query() {
    let (root, report) = drifted();
    let out = run_ok(
        Command::new("dpkg-query")
            .arg(format!("--admindir={}/var/lib/dpkg", root.display()))
            .args([
                "-W",
                "-f",
                "${Package}\t${Version}\t${Architecture}\t${db:Status-Status}\n",
            ]),
    );
    let expected: BTreeSet<(String, String, String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].into(), f[1].into(), f[2].into(), f[3].into())
        })
        .filter(|p| p.3 != "not-installed")
        .collect();
    let got: BTreeSet<(String, String, String, String)> = report["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["manager"], "dpkg");
            (
                p["name"].as_str().unwrap().into(),
                p["version"].as_str().unwrap().into(),
                p["arch"].as_str().unwrap().into(),
                p["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(expected.len() > 100, "a real system has many packages");
    assert_eq!(got, expected);
    assert!(got.iter().any(|p| p.0 == "acme-agent" && p.1 == "2.4.1-1"));
}

#[test]
fn every_entry_matches_find() {
    let (root, report) = drifted();
    // The root's own find, inside it, so that owner names come from its own passwd and group.
    let out = run_ok(Command::new("chroot").arg(root).args([
        "find",
        "/",
        "-xdev",
        "-printf",
        r"%p\0%y\0%m\0%U\0%G\0%u\0%g\0%s\0%T@\0%l\0%i\0%n\0",
    ]));
    let files = files_by_path(report);
    let mut seen = BTreeSet::new();
    let mut inodes: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
    for rec in nul_records(&out.stdout, 12) {
        let path = rec[0].clone();
        if skipped_by_default(&path) {
            assert!(
                !files.contains_key(&path),
                "{} should be excluded",
                String::from_utf8_lossy(&path)
            );
            continue;
        }
        let at = String::from_utf8_lossy(&path).into_owned();
        let e = files
            .get(&path)
            .unwrap_or_else(|| panic!("{at} missing from the report"));
        seen.insert(path.clone());
        let s = |i: usize| String::from_utf8(rec[i].clone()).unwrap();
        let kind = match s(1).as_str() {
            "f" => "file",
            "d" => "dir",
            "l" => "symlink",
            "p" => "fifo",
            "s" => "socket",
            "c" => "char",
            "b" => "block",
            k => panic!("{at}: kind {k}"),
        };
        let got_kind = e["kind"].as_str().unwrap();
        assert!(
            got_kind == kind || (kind == "file" && got_kind == "hardlink"),
            "{at}: kind {got_kind} vs {kind}"
        );
        assert_eq!(
            e["mode"].as_u64().unwrap(),
            u64::from_str_radix(&s(2), 8).unwrap(),
            "{at}: mode"
        );
        assert_eq!(e["uid"].as_u64().unwrap().to_string(), s(3), "{at}: uid");
        assert_eq!(e["gid"].as_u64().unwrap().to_string(), s(4), "{at}: gid");
        // find prints the number when the root's databases have no name for the id.
        assert_eq!(e["user"].as_str().unwrap_or(&s(3)), s(5), "{at}: user");
        assert_eq!(e["group"].as_str().unwrap_or(&s(4)), s(6), "{at}: group");
        assert_eq!(e["size"].as_u64().unwrap().to_string(), s(7), "{at}: size");
        let (sec, frac) = s(8)
            .split_once('.')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .unwrap();
        assert_eq!(e["mtime"].as_i64().unwrap().to_string(), sec, "{at}: mtime");
        assert_eq!(
            format!("{:09}", e["mtime_nsec"].as_u64().unwrap()),
            frac[..9],
            "{at}: mtime_nsec"
        );
        if kind == "symlink" {
            assert_eq!(raw(e, "target").unwrap(), rec[9], "{at}: target");
        }
        if kind != "dir" && s(11) != "1" {
            inodes
                .entry(rec[10].clone())
                .or_default()
                .push(path.clone());
        }
    }
    let reported: BTreeSet<Vec<u8>> = files.keys().cloned().collect();
    assert_eq!(
        reported, seen,
        "the report holds exactly what find sees, less the excludes"
    );
    // Hard links: the first name in report order is a file, every other points at it.
    let order: HashMap<&Vec<u8>, usize> = files.keys().enumerate().map(|(i, p)| (p, i)).collect();
    let mut groups = 0;
    for names in inodes.values() {
        if names.len() < 2 {
            continue;
        }
        groups += 1;
        let first = names.iter().min_by_key(|p| order[p]).unwrap();
        assert_eq!(files[first]["kind"], "file");
        for n in names.iter().filter(|n| *n != first) {
            assert_eq!(files[n]["kind"], "hardlink");
            assert_eq!(&raw(&files[n], "target").unwrap(), first);
        }
    }
    assert!(groups >= 1, "the fixture has hard links");
}

#[test]
fn digests_match_sha256sum() {
    let (root, report) = drifted();
    let out = run_ok(Command::new("sh").arg("-c").arg(format!(
        "cd '{}' && find . -xdev -type f -print0 | xargs -0 sha256sum -z",
        root.display()
    )));
    let files = files_by_path(report);
    let mut checked = 0;
    for line in out.stdout.split(|&b| b == 0).filter(|l| !l.is_empty()) {
        let (hash, path) = line.split_at(64);
        // sha256sum -z prints "HASH  ./path": drop the separator and the dot.
        let p = path[3..].to_vec();
        if skipped_by_default(&p) {
            continue;
        }
        let e = &files[&p];
        assert_eq!(
            e["sha256"].as_str().unwrap().as_bytes(),
            hash,
            "{}",
            String::from_utf8_lossy(&p)
        );
        checked += 1;
    }
    assert!(checked > 5000, "checked {checked} files");
    for e in files.values() {
        let has = !e["sha256"].is_null();
        let should = matches!(e["kind"].as_str().unwrap(), "file" | "hardlink");
        assert_eq!(has, should, "{e}");
    }
}

#[test]
fn xattrs_and_capabilities_match_getfattr() {
    let (root, report) = drifted();
    let out = run_ok(
        Command::new("getfattr")
            .args([
                "-R",
                "-P",
                "-h",
                "-d",
                "-m",
                "-",
                "-e",
                "base64",
                "--absolute-names",
            ])
            .arg(root),
    );
    let files = files_by_path(report);
    let mut expected: BTreeMap<Vec<u8>, BTreeMap<String, String>> = BTreeMap::new();
    let mut current = None;
    for line in out.stdout.split(|&b| b == b'\n') {
        if let Some(p) = line.strip_prefix(b"# file: ") {
            let host = unescape_octal(p);
            current = Some(in_root(root, Path::new(std::ffi::OsStr::from_bytes(&host))));
        } else if let (Some(p), Some(eq)) = (&current, line.iter().position(|&b| b == b'=')) {
            let name = String::from_utf8(line[..eq].to_vec()).unwrap();
            let v = String::from_utf8(line[eq + 1..].to_vec()).unwrap();
            let v = v.strip_prefix("0s").unwrap().to_string();
            expected.entry(p.clone()).or_default().insert(name, v);
        }
    }
    expected.retain(|p, _| !skipped_by_default(p));
    let got: BTreeMap<Vec<u8>, BTreeMap<String, String>> = files
        .iter()
        .filter(|(_, e)| !e["xattrs"].as_object().unwrap().is_empty())
        .map(|(p, e)| {
            let m = e["xattrs"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            (p.clone(), m)
        })
        .collect();
    assert_eq!(got, expected);
    let cap = &got[b"/srv/app/pinger".as_slice()]["security.capability"];
    assert!(!base64::engine::general_purpose::STANDARD
        .decode(cap)
        .unwrap()
        .is_empty());
    assert_eq!(
        got[b"/srv/app/data.bin".as_slice()]["user.binary"],
        "AAEC/w=="
    );
}

fn unescape_octal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && i + 4 <= s.len()
            && s[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push(
                u8::from_str_radix(std::str::from_utf8(&s[i + 1..i + 4]).unwrap(), 8).unwrap(),
            );
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn devices_match_stat() {
    let (root, report) = drifted();
    let mut n = 0;
    for (p, e) in files_by_path(report) {
        if !matches!(e["kind"].as_str().unwrap(), "char" | "block") {
            continue;
        }
        let host = root.join(std::ffi::OsStr::from_bytes(&p[1..]));
        let out = run_ok(Command::new("stat").args(["-c", "%t %T"]).arg(&host));
        let text = String::from_utf8(out.stdout).unwrap();
        let (maj, min) = text.trim().split_once(' ').unwrap();
        let rdev = e["rdev"].as_array().unwrap();
        assert_eq!(
            rdev[0].as_u64().unwrap(),
            u64::from_str_radix(maj, 16).unwrap()
        );
        assert_eq!(
            rdev[1].as_u64().unwrap(),
            u64::from_str_radix(min, 16).unwrap()
        );
        n += 1;
    }
    assert_eq!(
        n, 2,
        "the fixture has one char and one block device outside /dev"
    );
}

#[test]
fn ownership_matches_dpkg_lists() {
    let (root, report) = drifted();
    let files = files_by_path(report);
    let pkgs: Vec<String> = report["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let mut owners: HashMap<Vec<u8>, BTreeSet<String>> = HashMap::new();
    let admindir = format!("--admindir={}/var/lib/dpkg", root.display());
    for name in &pkgs {
        let out = Command::new("dpkg-query")
            .arg(&admindir)
            .args(["-L", name])
            .output()
            .unwrap();
        for line in out
            .stdout
            .split(|&b| b == b'\n')
            .filter(|l| l.starts_with(b"/") && *l != b"/.")
        {
            // Resolve the directory through the root's own symlinks (merged /usr).
            let host = root.join(std::ffi::OsStr::from_bytes(&line[1..]));
            let parent = host.parent().unwrap().canonicalize();
            let Ok(parent) = parent else { continue };
            let p = in_root(root, &parent.join(host.file_name().unwrap()));
            let p = if p.starts_with(b"//") {
                p[1..].to_vec()
            } else {
                p
            };
            owners.entry(p).or_default().insert(name.clone());
        }
    }
    let mut owned = 0;
    for (p, e) in &files {
        let at = String::from_utf8_lossy(p);
        match (e["package"].as_str(), owners.get(p)) {
            (Some(pkg), Some(set)) => {
                assert!(set.contains(pkg), "{at}: {pkg} not among {set:?}");
                owned += 1;
            }
            (None, None) => {}
            (got, want) => panic!("{at}: report says {got:?}, dpkg says {want:?}"),
        }
    }
    assert!(owned > 5000);
    assert_eq!(
        files[b"/etc/acme-agent/agent.conf".as_slice()]["package"],
        "acme-agent"
    );
    assert!(files[b"/srv/app/data.bin".as_slice()]["package"].is_null());
}

#[test]
fn machine_facts_of_the_drifted_server() {
    let (_, report) = drifted();
    let m = &report["machine"];
    assert_eq!(m["os"]["id"], "debian");
    assert_eq!(m["os"]["version_id"], "12");
    assert_eq!(m["arch"], "x86_64");
    assert_eq!(m["package_arch"], "amd64");
    assert_eq!(m["hostname"], "web01");
    assert_eq!(m["timezone"], "Europe/Paris");
    assert_eq!(m["keyboard"]["layout"], "fr");
    assert_eq!(m["keyboard"]["variant"], "oss");
    assert_eq!(m["locale"], "fr_FR.UTF-8");
    assert_eq!(m["kernels"].as_array().unwrap().len(), 0);
    let net = m["network"].as_array().unwrap();
    let ens3 = net.iter().find(|n| n["name"] == "ens3").unwrap();
    assert_eq!(ens3["method"], "static");
    assert_eq!(ens3["source"], "ifupdown");
    assert_eq!(ens3["addresses"][0], "192.0.2.10/24");
    assert_eq!(ens3["gateway"], "192.0.2.1");
    assert_eq!(
        ens3["dns"],
        serde_json::json!(["192.0.2.53", "198.51.100.53"])
    );
    let ens4 = net.iter().find(|n| n["name"] == "ens4").unwrap();
    assert_eq!(ens4["method"], "dhcp");
    assert_eq!(ens4["source"], "networkd");
    let mounts = m["mounts"].as_array().unwrap();
    assert!(mounts.iter().any(|x| x["target"] == "/"
        && x["uuid"] == "0a1b2c3d-1111-2222-3333-444455556666"
        && x["origin"] == "fstab"));
    let alice = m["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "alice")
        .unwrap();
    assert_eq!(alice["uid"], 1001);
    assert!(m["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["name"] == "deploy" && g["gid"] == 1500));
    // Password hashes are never recorded.
    assert!(!report.to_string().contains("$y$") && !report.to_string().contains("$6$"));
}

#[test]
fn odd_names_excludes_and_special_files() {
    let (_, report) = drifted();
    let files = files_by_path(report);
    let newline = files
        .get(b"/srv/app/line\nbreak".as_slice())
        .expect("newline name");
    assert_eq!(newline["path"], "/srv/app/line\nbreak");
    let latin1 = files
        .get(b"/srv/app/caf\xe9".as_slice())
        .expect("non-UTF-8 name");
    assert!(latin1.get("path").is_none());
    assert_eq!(latin1["path_b64"], "L3Nydi9hcHAvY2Fm6Q==");
    assert_eq!(files[b"/srv/app/suid-tool".as_slice()]["mode"], 0o4755);
    assert_eq!(files[b"/srv/app/sgid-tool".as_slice()]["mode"], 0o2755);
    assert_eq!(files[b"/srv/app/shared-tmp".as_slice()]["mode"], 0o1777);
    assert_eq!(files[b"/srv/app/control.fifo".as_slice()]["kind"], "fifo");
    assert_eq!(files[b"/srv/app/orphan-owner".as_slice()]["uid"], 4242);
    assert!(files[b"/srv/app/orphan-owner".as_slice()]["user"].is_null());
    assert_eq!(files[b"/srv/app/config.ini".as_slice()]["user"], "alice");
    assert_eq!(files[b"/srv/app/config.ini".as_slice()]["group"], "deploy");
    let sparse = &files[b"/srv/app/sparse.img".as_slice()];
    assert_eq!(sparse["size"], 200 << 20);
    assert!(sparse["allocated"].as_u64().unwrap() < 1 << 20);
    // Default excludes: the directories stay, their contents go, and the report says so.
    assert!(files.contains_key(b"/tmp".as_slice()));
    assert!(!files.contains_key(b"/tmp/scratch-file".as_slice()));
    assert!(!files.contains_key(b"/var/tmp/scratch-file".as_slice()));
    let excl: Vec<&str> = report["scan"]["excludes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    for d in SKIPPED_CONTENTS {
        assert!(excl.contains(d), "{d} not stated in the report");
    }
    assert!(
        report["errors"].as_array().unwrap().is_empty(),
        "{}",
        report["errors"]
    );
    assert_eq!(report["scan"]["live"], false);
}

#[test]
fn json_report_follows_the_schema() {
    let (_, report) = drifted();
    let schema: Value = serde_json::from_slice(
        &std::fs::read(repo().join("schema/uforge-report-v1.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let errors: Vec<String> = validator
        .iter_errors(report)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    // The schema rejects what it must: a file without a path.
    let mut bad = report.clone();
    bad["files"][0].as_object_mut().unwrap().remove("path");
    assert!(!validator.is_valid(&bad));
}

#[test]
fn native_report_exports_to_the_same_json() {
    let (root, report) = drifted();
    let dir = tempfile::tempdir().unwrap();
    let native = dir.path().join("web01.ufr");
    run_ok(
        scan_bin()
            .args(["scan", "--root"])
            .arg(root)
            .arg("-o")
            .arg(&native),
    );
    let head = std::fs::read(&native).unwrap();
    assert!(head.starts_with(b"UFORGE-REPORT/1\n"));
    let json_size = serde_json::to_vec(report).unwrap().len();
    assert!(
        head.len() * 4 < json_size,
        "native {} bytes vs JSON {json_size}",
        head.len()
    );
    let out = run_ok(scan_bin().arg("export-json").arg(&native));
    let mut exported: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut direct = report.clone();
    for v in [&mut exported, &mut direct] {
        v["scan"]["started"] = Value::Null;
        v["stats"]["duration_ms"] = Value::Null;
    }
    assert_eq!(exported["files"], direct["files"]);
    assert_eq!(exported, direct);
}

#[test]
fn scan_writes_nothing_on_the_root() {
    let root = fixture("drifted");
    let snapshot = || {
        run_ok(
            Command::new("find")
                .arg(&root)
                .args(["-xdev", "-printf", r"%p %C@ %T@ %s %m\0"]),
        )
        .stdout
    };
    let before = snapshot();
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        scan_bin()
            .args(["scan", "--root"])
            .arg(&root)
            .arg("-o")
            .arg(dir.path().join("r.ufr")),
    );
    assert!(before == snapshot(), "the scanned root changed");
}

#[test]
fn report_inside_the_root_is_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("etc/hostname"), "tiny\n").unwrap();
    let out = dir.path().join("report.json");
    run_ok(
        scan_bin()
            .args(["scan", "--root"])
            .arg(dir.path())
            .arg("-o")
            .arg(&out)
            .args(["-e", "etc/hostname"]),
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let paths: Vec<&str> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/", "/etc"]);
    assert_eq!(report["machine"]["hostname"], "tiny");
    assert!(report["packages"].as_array().unwrap().is_empty());
}

#[test]
fn unreadable_files_become_error_entries() {
    // As an unprivileged user, a root-only file cannot be read: the scan records it as an
    // error and goes on.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("secret")).unwrap();
    std::fs::write(root.join("readable"), "hello\n").unwrap();
    std::fs::write(root.join("secret-file"), "x").unwrap();
    let perm = |p: &Path, m| {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap()
    };
    perm(&root.join("secret-file"), 0o600);
    perm(&root.join("secret"), 0o700);
    perm(dir.path(), 0o755);
    let out_dir = tempfile::tempdir().unwrap();
    perm(out_dir.path(), 0o777);
    let out = out_dir.path().join("r.json");
    run_ok(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_uforge-scan"))
            .args(["scan", "--root"])
            .arg(&root)
            .arg("-o")
            .arg(&out),
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let errors = report["errors"].as_array().unwrap();
    let find = |p: &str, op: &str| errors.iter().any(|e| e["path"] == p && e["op"] == op);
    assert!(find("/secret-file", "open"), "{errors:?}");
    assert!(find("/secret", "readdir"), "{errors:?}");
    let files = files_by_path(&report);
    assert!(files[b"/secret-file".as_slice()]["sha256"].is_null());
    assert_eq!(
        files[b"/readable".as_slice()]["sha256"],
        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    );
}

#[test]
fn bad_input_gets_a_clear_error() {
    let out = scan_bin()
        .args(["scan", "--root", "/nonexistent/root", "-o", "/tmp/x.ufr"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/root"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.ufr");
    std::fs::write(&junk, "not a report at all").unwrap();
    let out = scan_bin().arg("export-json").arg(&junk).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("junk.ufr") && err.contains("neither"), "{err}");
    // A native report cut short is refused as truncated, not read as a smaller machine.
    let (root, _) = drifted();
    let full = dir.path().join("full.ufr");
    run_ok(
        scan_bin()
            .args(["scan", "--root"])
            .arg(root)
            .arg("-o")
            .arg(&full),
    );
    let data = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.ufr");
    std::fs::write(&cut, &data[..data.len() / 2]).unwrap();
    let out = scan_bin()
        .arg("export-json")
        .arg(&cut)
        .arg("-o")
        .arg(dir.path().join("cut.json"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cut.ufr") && (err.contains("truncated") || err.contains("decompression")),
        "{err}"
    );
}

#[test]
fn help_explains_the_command() {
    let out = run_ok(scan_bin().args(["scan", "--help"]));
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["--root", "--exclude", "--output", "JSON", "/proc"] {
        assert!(text.contains(word), "help lacks {word}: {text}");
    }
}
