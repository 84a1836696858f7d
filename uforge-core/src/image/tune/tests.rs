//! Tuning's own edits in a root whose links point out of it: they land in the root, as the
//! machine would see them, and the host is untouched.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt};

use super::*;
use crate::image::Format;
use crate::model::NetworkInterface;

fn tuner<'a>(spec: &'a TuneSpec<'a>) -> Tuner<'a> {
    Tuner {
        spec,
        dir: RootDir::open(spec.root, Links::InRoot).unwrap(),
        log: TuningLog::default(),
        snapshot: None,
        scans: 0,
    }
}

#[test]
fn edits_follow_links_inside_the_root_only() {
    let tmp = tempfile::tempdir().unwrap();
    // root is TMP/a/b/root: `var -> ../../..` would be TMP itself on the host.
    let root = tmp.path().join("a/b/root");
    let outside = tmp.path().join("outside");
    let work = tmp.path().join("work");
    for d in [&root, &outside, &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    for name in ["machine-id", "fstab", "interfaces"] {
        std::fs::write(outside.join(name), b"host file\n").unwrap();
    }
    symlink(&outside, root.join("etc")).unwrap();
    // Where `/etc` leads inside the root.
    let etc = crate::rawpath::join(&root, outside.as_os_str().as_bytes());
    std::fs::create_dir_all(&etc).unwrap();
    symlink("../../..", root.join("var")).unwrap();
    let canary = |name: &str| {
        let p = outside.join(name);
        let m = std::fs::metadata(&p).unwrap();
        (
            std::fs::read(&p).unwrap(),
            m.mode(),
            m.mtime(),
            m.mtime_nsec(),
        )
    };
    let before: Vec<_> = ["machine-id", "fstab", "interfaces"].map(canary).to_vec();
    let mut header = ReportHeader::default();
    header.machine.network.push(NetworkInterface {
        name: "ens3".into(),
        file: "/etc/interfaces".into(),
        source: "ifupdown".into(),
        ..Default::default()
    });
    let spec = TuneSpec {
        root: &root,
        header: &header,
        format: Format::TarGz,
        target: Target::Kvm,
        network: NetworkPolicy::Dhcp,
        sources: &[],
        keyring: None,
        work: &work,
        kernel_params: &[],
        allow_upgrades: false,
    };
    let mut t = tuner(&spec);
    t.step("fstab", String::new());
    t.write("/etc/fstab", b"tuned\n", 0o644).unwrap();
    t.network().unwrap();
    t.machine_id().unwrap();
    t.write_log().unwrap();

    let after: Vec<_> = ["machine-id", "fstab", "interfaces"].map(canary).to_vec();
    assert_eq!(after, before, "a host file changed");
    let mut names: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["fstab", "interfaces", "machine-id"]);
    assert!(
        !tmp.path().join("lib").exists(),
        "written through var -> ../../.."
    );
    // `/etc` is `<outside>` inside the root, `/var` the root itself.
    assert_eq!(std::fs::read(etc.join("fstab")).unwrap(), b"tuned\n");
    assert!(root.join("lib/uforge/tuning-log.json").is_file());
    let recorded: Vec<String> = t.log.steps[0]
        .changes
        .iter()
        .map(|c| String::from_utf8_lossy(&c.path).into_owned())
        .collect();
    assert!(recorded.contains(&"/etc/fstab".to_string()), "{recorded:?}");
}

/// A copy in `tmp` of the root `tests/fixtures/older-systemd.sh` keeps: the drifted system with
/// the systemd packages of bookworm-security, older than the release's. Its path and that
/// version.
fn older_systemd_root(tmp: &Path, name: &str) -> (PathBuf, String) {
    let out = std::process::Command::new("bash")
        .arg(uforge_test_support::workspace().join("tests/fixtures/older-systemd.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let (fixture, older) = (lines.next().unwrap(), lines.next().unwrap());
    let root = tmp.join(name);
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(fixture)
        .arg(&root)
        .status()
        .unwrap();
    assert!(copied.success());
    (root, older.to_string())
}

/// The installed version of each package of the root, by name.
fn versions(root: &Path) -> std::collections::HashMap<String, String> {
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    crate::deb822::parse(&status)
        .into_iter()
        .filter(|p| p.get("Status").is_some_and(|s| s.ends_with(" installed")))
        .filter_map(|p| Some((p.get("Package")?.to_string(), p.get("Version")?.to_string())))
        .collect()
}

#[test]
fn tuning_keeps_the_sources_packages_at_their_versions() {
    // Not under /tmp: the sandbox gives apt a /tmp of its own.
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    let (root, older) = older_systemd_root(tmp.path(), "kept");
    let work = tmp.path().join("work");
    let release = uforge_test_support::mirror_line();
    let security = release
        .replacen("/debian ", "/debian-security ", 1)
        .replace(" bookworm ", " bookworm-security ");
    let archs = ["amd64".to_string()];
    let udev = ["udev".to_string()];
    assert_eq!(versions(&root)["systemd"], older);

    // The release alone has only a udev newer than the installed systemd: refused, named.
    let mut a = apt::Apt::new(&root, &work, std::slice::from_ref(&release), &archs, None).unwrap();
    let e = a.install(&udev, false).unwrap_err().to_string();
    assert!(e.contains("udev"), "{e}");
    assert!(e.contains("libudev1"), "{e}");
    assert!(e.contains("--allow-upgrades"), "{e}");
    let now = versions(&root);
    assert_eq!(now["systemd"], older);
    assert!(!now.contains_key("udev"), "{e}");

    // With security's suite too, udev comes at the installed systemd's version.
    let sources = [release.clone(), security.clone()];
    let mut a = apt::Apt::new(&root, &work, &sources, &archs, None).unwrap();
    let changes = a.install(&udev, false).unwrap();
    let now = versions(&root);
    for p in [
        "systemd",
        "libsystemd0",
        "libudev1",
        "libsystemd-shared",
        "udev",
    ] {
        assert_eq!(now[p], older, "{p}: {changes:?}");
    }
    assert!(
        changes.iter().all(|c| c.from.is_none()),
        "a package of the source changed: {changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c.package == "udev:amd64" && c.to.as_deref() == Some(older.as_str())),
        "{changes:?}"
    );

    // Allowed, the same install upgrades the source's systemd packages, and says so with both
    // versions.
    let (root, _) = older_systemd_root(tmp.path(), "upgraded");
    let mut a = apt::Apt::new(&root, &work, &sources, &archs, None).unwrap();
    let changes = a.install(&udev, true).unwrap();
    let now = versions(&root);
    assert_ne!(now["libudev1"], older);
    let libudev = changes
        .iter()
        .find(|c| c.package == "libudev1:amd64")
        .unwrap_or_else(|| panic!("{changes:?}"));
    assert_eq!(libudev.from.as_deref(), Some(older.as_str()));
    assert_eq!(libudev.to.as_deref(), Some(now["libudev1"].as_str()));
}
