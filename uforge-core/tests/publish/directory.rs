//! The directory target: atomic writes, the manifest `sha256sum -c` accepts, resume of a cut
//! copy, a full disk, deletion.

use std::process::Command;
use std::sync::atomic::AtomicBool;

use uforge_core::image::Format;
use uforge_core::progress::NoProgress;
use uforge_core::publish::{
    self, Credentials, DirectoryTarget, ErrorKind, PublishRequest, Published, TargetSpec,
};

use crate::util::{random_file, Counter};

#[test]
fn directory_publishes_atomically_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("share");
    std::fs::create_dir(&out).unwrap();
    let image = tmp.path().join("web01.qcow2");
    let size = 48 << 20;
    let sha = random_file(&image, size, 7);
    let target = TargetSpec::Directory(DirectoryTarget { path: out.clone() });

    // Cancelled a third of the way: nothing under the final name, a partial file kept.
    let cancel = AtomicBool::new(false);
    let counter = Counter::cut_at(size / 3, || {
        cancel.store(true, std::sync::atomic::Ordering::Relaxed)
    });
    let mut req = PublishRequest::new(&image, Format::Qcow2);
    req.cancel = Some(&cancel);
    let e = publish::publish(&target, Credentials::None, &req, &counter).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Cancelled, "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("directory {}", out.display())),
        "{e}"
    );
    assert!(!out.join("web01.qcow2").exists());
    let partial = out.join(".web01.qcow2.partial");
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept >= size / 3 && kept < size, "{kept}");

    // The next attempt goes on from the partial file.
    let counter = Counter::new();
    let req = PublishRequest::new(&image, Format::Qcow2);
    let p = publish::publish(&target, Credentials::None, &req, &counter).unwrap();
    assert_eq!(p.sent, size - kept);
    assert_eq!(counter.sent(), size - kept);
    assert_eq!(p.digest, format!("sha256:{sha}"));
    assert!(!partial.exists());
    let check = Command::new("sha256sum")
        .args(["-c", "web01.qcow2.sha256"])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert_eq!(
        std::fs::read(out.join("web01.qcow2")).unwrap(),
        std::fs::read(&image).unwrap()
    );
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // Published again: found there, nothing sent. A build's digest that does not match the
    // file is refused.
    let again = publish::publish(&target, Credentials::None, &req, &NoProgress).unwrap();
    assert_eq!(again.sent, 0);
    let mut wrong = PublishRequest::new(&image, Format::Qcow2);
    wrong.name = Some("other.qcow2".into());
    wrong.sha256 = Some("00".repeat(32));
    let e = publish::publish(&target, Credentials::None, &wrong, &NoProgress).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Mismatch, "{e}");
    assert!(!out.join("other.qcow2").exists() && !out.join(".other.qcow2.partial").exists());

    let publisher = publish::publisher(&target, Credentials::None).unwrap();
    publisher.delete(&p).unwrap();
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
    assert!(matches!(p.items[0], Published::File { .. }));

    // A missing directory (an unmounted share) is not created.
    let gone = TargetSpec::Directory(DirectoryTarget {
        path: tmp.path().join("not-mounted"),
    });
    let e = publish::publish(&gone, Credentials::None, &req, &NoProgress).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("not-mounted"), "{e}");
}

#[test]
fn directory_full_disk_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let small = tmp.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "mounting a tmpfs (the tests run as root)"
    );
    let image = tmp.path().join("big.raw");
    random_file(&image, 16 << 20, 3);
    let target = TargetSpec::Directory(DirectoryTarget {
        path: small.clone(),
    });
    let req = PublishRequest::new(&image, Format::Raw);
    let res = publish::publish(&target, Credentials::None, &req, &NoProgress);
    let listing = std::fs::read_dir(&small).unwrap().count();
    let _ = Command::new("umount").arg(&small).status();
    let e = res.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NoSpace, "{e}");
    assert!(e.to_string().contains(&small.display().to_string()), "{e}");
    assert_eq!(listing, 0, "a failed copy left files behind");
}
