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
