//! Tree formats checked with the tools that consume them: GNU tar extracts the tarball, skopeo
//! inspects and copies the container archives, umoci unpacks the OCI layout, and each extracted
//! tree must scan exactly as the source did.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use super::*;
use crate::analysis::compare;
use crate::image::Target;
use crate::model::Machine;
use crate::scan::scan_to_report;

/// Builds a small root with what an archive can get wrong: owners, setuid, hard links,
/// symlinks, a fifo, a device, xattrs and a file capability, a sparse file, a long name and a
/// name that is not UTF-8, nanosecond mtimes, and files in directories the scan leaves out.
fn build_root(root: &Path) {
    let p = |rel: &str| root.join(rel);
    for d in [
        "etc",
        "usr/bin",
        "srv/deep",
        "home/alice",
        "tmp",
        "dev",
        "proc",
        "var/tmp",
    ] {
        std::fs::create_dir_all(p(d)).unwrap();
    }
    std::os::unix::fs::symlink("usr/bin", p("bin")).unwrap();
    std::fs::write(
        p("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(p("etc/group"), "root:x:0:\nalice:x:1001:\n").unwrap();
    let file = |rel: &str, data: &[u8], mode: u32| {
        std::fs::write(p(rel), data).unwrap();
        std::fs::set_permissions(p(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    };
    file("usr/bin/sh", b"#!not really a shell\n", 0o755);
    file("usr/bin/passwd", b"setuid root\n", 0o4755);
    file("usr/bin/ping", b"needs cap_net_raw\n", 0o755);
    file("home/alice/notes", b"private\n", 0o640);
    std::os::unix::fs::chown(p("home/alice/notes"), Some(1001), Some(1001)).unwrap();
    std::os::unix::fs::chown(p("home/alice"), Some(1001), Some(1001)).unwrap();
    std::fs::set_permissions(p("home/alice"), std::fs::Permissions::from_mode(0o750)).unwrap();
    file("srv/a", b"one inode, two names\n", 0o644);
    std::fs::hard_link(p("srv/a"), p("srv/deep/b")).unwrap();
    std::os::unix::fs::symlink("../a", p("srv/deep/link")).unwrap();
    std::os::unix::fs::symlink("/nowhere/at/all", p("srv/dangling")).unwrap();
    file("srv/x", b"has a user xattr\n", 0o600);
    xattr::set(p("srv/x"), "user.x", b"hello").unwrap();
    let sparse = std::fs::File::create(p("srv/sparse")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"data in the middle", 4 << 20).unwrap();
    drop(sparse);
    let odd = root.join(std::ffi::OsStr::from_bytes(b"srv/caf\xe9 \n"));
    std::fs::write(&odd, b"latin-1 name\n").unwrap();
    file(
        &format!("srv/deep/{}", "n".repeat(150)),
        b"long name\n",
        0o644,
    );
    file("tmp/junk", b"left out\n", 0o644);
    run(Command::new("mkfifo").arg(p("srv/fifo")));
    run(Command::new("mknod")
        .arg(p("srv/null"))
        .args(["c", "1", "3"]));
    // After the chown: changing the owner clears capabilities.
    run(Command::new("setcap")
        .arg("cap_net_raw+ep")
        .arg(p("usr/bin/ping")));
    for (rel, nsec) in [
        ("srv/a", 123_456_789),
        ("usr/bin/sh", 0),
        ("srv/sparse", 42),
    ] {
        let t = UNIX_EPOCH + Duration::new(1_600_000_000, nsec);
        let f = std::fs::File::options().write(true).open(p(rel)).unwrap();
        f.set_modified(t).unwrap();
    }
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn run(c: &mut Command) -> Vec<u8> {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?} failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out.stdout
}

fn machine(arch: &str) -> Machine {
    Machine {
        arch: arch.into(),
        ..Machine::default()
    }
}

fn write(format: Format, root: &Path, arch: &str, out: &Path) -> crate::Result<()> {
    let m = machine(arch);
    let staged = Staged {
        root,
        disk: None,
        name: "Web01.example.com",
        machine: &m,
        target: format.default_target(),
    };
    format.writer().write(&staged, out)
}

/// Scans both trees and fails with every difference (directory mtimes aside, which extraction
/// changes by creating entries).
fn assert_same_tree(source: &Path, copy: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let save = |root: &Path, name: &str| -> PathBuf {
        let r = scan_to_report(&ScanOptions::new(root), &NoProgress).unwrap();
        // Facts (os-release, the architecture of /bin/sh) are not what is compared here.
        let errors: Vec<_> = r
            .trailer
            .errors
            .iter()
            .filter(|e| e.op != "facts")
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        let path = dir.path().join(name);
        r.save(&path).unwrap();
        path
    };
    let (a, b) = (save(source, "a.ufr"), save(copy, "b.ufr"));
    let c = compare(
        ReportReader::open(&a).unwrap(),
        ReportReader::open(&b).unwrap(),
    )
    .unwrap();
    assert!(
        c.files.is_empty() && c.packages.is_empty(),
        "{} differs from {}: {}",
        copy.display(),
        source.display(),
        c.to_json()
    );
    // The comparison is only worth something if the scan saw the tricky entries.
    let r = scan_to_report(&ScanOptions::new(copy), &NoProgress).unwrap();
    let find = |p: &[u8]| r.files.iter().find(|e| e.path == p).cloned();
    assert!(find(b"/usr/bin/ping")
        .unwrap()
        .xattrs
        .contains_key("security.capability"));
    assert_eq!(
        find(b"/srv/deep/b").unwrap().kind,
        crate::model::FileKind::Hardlink
    );
    assert_eq!(find(b"/srv/null").unwrap().rdev, Some((1, 3)));
    assert!(find(b"/srv/caf\xe9 \n").is_some());
    assert!(find(b"/tmp").is_some() && find(b"/tmp/junk").is_none());
}

fn source_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    build_root(dir.path());
    dir
}

#[test]
fn tar_gz_extracts_to_the_same_tree() {
    let src = source_root();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("root.tar.gz");
    write(Format::TarGz, src.path(), "x86_64", &out).unwrap();
    assert_eq!(
        std::fs::read_dir(work.path()).unwrap().count(),
        1,
        "scratch files left beside the output"
    );
    let mut magic = [0u8; 2];
    std::fs::File::open(&out)
        .unwrap()
        .read_exact(&mut magic)
        .unwrap();
    assert_eq!(magic, [0x1f, 0x8b], "not gzip");

    let x = work.path().join("x");
    std::fs::create_dir(&x).unwrap();
    run(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpzf"])
        .arg(&out)
        .arg("-C")
        .arg(&x));
    assert_same_tree(src.path(), &x);
    let sparse = std::fs::metadata(x.join("srv/sparse")).unwrap();
    assert!(
        sparse.blocks() * 512 < 1 << 20,
        "sparse file extracted dense"
    );
}

/// Reads a blob of an OCI layout by digest.
fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let data = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(
        sha256_hex(&data),
        hex,
        "blob {digest} does not match its name"
    );
    data
}

fn skopeo_inspect(reference: &str) -> Value {
    serde_json::from_slice(&run(Command::new("skopeo").args(["inspect", reference]))).unwrap()
}

#[test]
fn oci_archive_is_a_layout_skopeo_and_umoci_read() {
    let src = source_root();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("img.oci.tar");
    write(Format::Oci, src.path(), "x86_64", &out).unwrap();
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 1);

    let i = skopeo_inspect(&format!("oci-archive:{}", out.display()));
    assert_eq!(i["Architecture"], "amd64", "{i}");
    assert_eq!(i["Os"], "linux");
    assert_eq!(i["Layers"].as_array().unwrap().len(), 1, "{i}");

    let layout = work.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&out)
        .arg("-C")
        .arg(&layout));
    let i = skopeo_inspect(&format!("oci:{}", layout.display()));
    assert_eq!(i["Architecture"], "amd64");

    let layout_file: Value =
        serde_json::from_slice(&std::fs::read(layout.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout_file["imageLayoutVersion"], "1.0.0");
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = &index["manifests"][0];
    assert_eq!(
        m["annotations"]["org.opencontainers.image.ref.name"],
        oci::TAG
    );
    assert_eq!(m["mediaType"], oci::MEDIA_MANIFEST);
    let manifest_bytes = blob(&layout, m["digest"].as_str().unwrap());
    assert_eq!(m["size"], manifest_bytes.len());
    let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let layer = &manifest["layers"][0];
    assert_eq!(layer["mediaType"], oci::MEDIA_LAYER_GZIP);
    let layer_bytes = blob(&layout, layer["digest"].as_str().unwrap());
    assert_eq!(layer["size"], layer_bytes.len());
    let config: Value = serde_json::from_slice(&blob(
        &layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&layer_bytes[..])
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        format!("sha256:{}", sha256_hex(&tar))
    );
    assert_eq!(config["config"]["Cmd"][0], "/bin/sh");
    assert!(config["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(config["history"].as_array().unwrap().len(), 1);

    let bundle = work.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{}", layout.display(), oci::TAG))
        .arg(&bundle));
    assert_same_tree(src.path(), &bundle.join("rootfs"));

    let arm = work.path().join("arm.oci.tar");
    write(Format::Oci, src.path(), "aarch64", &arm).unwrap();
    let i = skopeo_inspect(&format!("oci-archive:{}", arm.display()));
    assert_eq!(i["Architecture"], "arm64", "{i}");
}

#[test]
fn docker_archive_loads_in_skopeo() {
    let src = source_root();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("img.docker.tar");
    write(Format::DockerArchive, src.path(), "x86_64", &out).unwrap();
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 1);

    let reference = format!("docker-archive:{}", out.display());
    let i = skopeo_inspect(&reference);
    assert_eq!(i["Architecture"], "amd64", "{i}");
    assert_eq!(i["Layers"].as_array().unwrap().len(), 1, "{i}");
    assert_eq!(i["RepoTags"], serde_json::json!([]), "{i}");

    let mut ar = tar::Archive::new(std::fs::File::open(&out).unwrap());
    let mut manifest = None;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap() == Path::new("manifest.json") {
            let mut s = Vec::new();
            e.read_to_end(&mut s).unwrap();
            manifest = Some(serde_json::from_slice::<Value>(&s).unwrap());
        }
    }
    let manifest = manifest.expect("manifest.json");
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["web01-example-com:latest"])
    );

    // Copying checks every layer against its digest; the copy must unpack to the source tree.
    let layout = work.path().join("copy");
    run(Command::new("skopeo")
        .args(["copy", "--quiet", &reference])
        .arg(format!("oci:{}:latest", layout.display())));
    let bundle = work.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));
    assert_same_tree(src.path(), &bundle.join("rootfs"));
}

#[test]
fn bad_requests_fail_before_writing() {
    let src = tempfile::tempdir().unwrap();
    let out = src.path().join("never.oci.tar");
    let e = write(Format::Oci, src.path(), "vax", &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("vax"), "{e}");
    assert!(!out.exists());
    let e = write(Format::Oci, &src.path().join("missing"), "x86_64", &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing"), "{e}");
    let e = TreeFormat(Format::Qcow2)
        .write(
            &Staged {
                root: src.path(),
                disk: None,
                name: "x",
                machine: &machine("x86_64"),
                target: Target::Kvm,
            },
            &out,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("disk format"), "{e}");
}
