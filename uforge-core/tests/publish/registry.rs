//! The registry target against Debian's docker-registry (the CNCF distribution registry)
//! with TLS from its own CA and htpasswd auth: OCI and docker-archive images uforge's own
//! writer made, read back by `skopeo inspect` and `skopeo copy`; blobs present not sent
//! again; a push cancelled between chunks continuing exactly where it stopped; a push cut by
//! killing the registry finishing after its restart with the same digest; clear errors.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use uforge_core::image::container::TreeFormat;
use uforge_core::image::{Format, ImageFormat, Staged, Target};
use uforge_core::model::Machine;
use uforge_core::progress::NoProgress;
use uforge_core::publish::{
    self, Credentials, DirCheckpoints, ErrorKind, PublishRequest, RegistryTarget, TargetSpec,
    TlsSettings,
};
use uforge_test_support::services::Service;

use crate::util::{random_file, Counter};

/// An OCI archive and a docker-archive of a small root with one `big` file of `big` bytes,
/// written by uforge's own container writer.
fn images(dir: &Path, big: u64) -> (PathBuf, PathBuf) {
    let root = dir.join("root");
    for d in ["bin", "etc", "srv"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("etc/hostname"), "web01\n").unwrap();
    std::fs::write(root.join("bin/sh"), "#!/bin/true\n").unwrap();
    random_file(&root.join("srv/big"), big, 42);
    let machine = Machine {
        arch: "x86_64".into(),
        ..Default::default()
    };
    let staged = Staged {
        root: &root,
        disk: None,
        name: "web01",
        machine: &machine,
        target: Target::Container,
    };
    let oci = dir.join("web01.oci.tar");
    TreeFormat(Format::Oci).write(&staged, &oci).unwrap();
    let docker = dir.join("web01.docker.tar");
    TreeFormat(Format::DockerArchive)
        .write(&staged, &docker)
        .unwrap();
    (oci, docker)
}

fn target(r: &Service, chunk: u64) -> RegistryTarget {
    RegistryTarget {
        registry: r.get("REGISTRY_HOST").into(),
        namespace: "ns".into(),
        tls: TlsSettings {
            ca_pem: Some(std::fs::read_to_string(r.get("REGISTRY_CA_FILE")).unwrap()),
            insecure: false,
        },
        chunk_size: chunk,
    }
}

fn creds(r: &Service) -> Credentials {
    Credentials::password(r.get("REGISTRY_USER"), r.get("REGISTRY_PASSWORD"))
}

/// `skopeo inspect` of a pushed image, with its raw manifest's digest.
fn inspect(r: &Service, reference: &str) -> std::result::Result<Value, String> {
    let out = Command::new("skopeo")
        .args(["inspect", "--creds"])
        .arg(format!(
            "{}:{}",
            r.get("REGISTRY_USER"),
            r.get("REGISTRY_PASSWORD")
        ))
        .arg("--cert-dir")
        .arg(r.get("REGISTRY_CERT_DIR"))
        .arg(format!("docker://{}/{reference}", r.get("REGISTRY_HOST")))
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

fn skopeo_copy(r: &Service, reference: &str, dest: &str) {
    let out = Command::new("skopeo")
        .args(["copy", "--src-creds"])
        .arg(format!(
            "{}:{}",
            r.get("REGISTRY_USER"),
            r.get("REGISTRY_PASSWORD")
        ))
        .arg("--src-cert-dir")
        .arg(r.get("REGISTRY_CERT_DIR"))
        .arg(format!("docker://{}/{reference}", r.get("REGISTRY_HOST")))
        .arg(dest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn registry_pushes_oci_and_docker_archives_that_skopeo_reads() {
    let r = Service::start("registry", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let (oci, docker) = images(tmp.path(), 40 << 20);
    let spec = TargetSpec::Registry(target(&r, 8 << 20));

    let counter = Counter::new();
    let mut req = PublishRequest::new(&oci, Format::Oci);
    req.name = Some("web01:v1".into());
    let p = publish::publish(&spec, creds(&r), &req, &counter).unwrap();
    assert!(
        p.location.ends_with(&format!("/ns/web01:v1@{}", p.digest)),
        "{}",
        p.location
    );
    assert!(p.sent > 40 << 20 && p.sent == counter.sent(), "{}", p.sent);
    let info = inspect(&r, "ns/web01:v1").unwrap();
    assert_eq!(info["Digest"], p.digest.as_str(), "{info}");
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Layers"].as_array().unwrap().len(), 1);
    // Read back through skopeo into an OCI layout: the same manifest.
    let back = tmp.path().join("back");
    skopeo_copy(&r, "ns/web01:v1", &format!("oci:{}:v1", back.display()));
    let index: Value =
        serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], p.digest.as_str());

    // Pushed again under another tag: every blob is there, nothing is sent.
    let counter = Counter::new();
    req.name = Some("web01:v2".into());
    let again = publish::publish(&spec, creds(&r), &req, &counter).unwrap();
    assert_eq!((again.sent, counter.sent()), (0, 0));
    assert_eq!(again.digest, p.digest);

    // The docker-archive goes up as an OCI manifest of its config and layer; its name and
    // tag come from the archive.
    let req = PublishRequest::new(&docker, Format::DockerArchive);
    let d = publish::publish(&spec, creds(&r), &req, &NoProgress).unwrap();
    assert!(d.location.contains("/ns/web01:latest@"), "{}", d.location);
    let info = inspect(&r, "ns/web01:latest").unwrap();
    assert_eq!(info["Digest"], d.digest.as_str());
    let docker_back = tmp.path().join("back.docker.tar");
    skopeo_copy(
        &r,
        "ns/web01:latest",
        &format!("docker-archive:{}", docker_back.display()),
    );
    let list = Command::new("tar")
        .arg("-tf")
        .arg(&docker_back)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("manifest.json"));

    // Deleted: the tag no longer resolves.
    publish::publisher(&spec, creds(&r))
        .unwrap()
        .delete(&d)
        .unwrap();
    let gone = inspect(&r, "ns/web01:latest").unwrap_err();
    assert!(
        gone.contains("manifest unknown") || gone.contains("not found"),
        "{gone}"
    );
}

#[test]
fn registry_push_resumes_after_a_cancel_and_after_a_kill() {
    let mut r = Service::start("registry", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let (oci, _) = images(tmp.path(), 96 << 20);
    let size = std::fs::metadata(&oci).unwrap().len();
    let spec = TargetSpec::Registry(target(&r, 8 << 20));
    let checkpoints = DirCheckpoints::new(tmp.path().join("checkpoints")).unwrap();

    // Cancelled at a third: stops at the next chunk boundary, the session kept.
    let cancel = AtomicBool::new(false);
    let counter = Counter::cut_at(size / 3, || cancel.store(true, Ordering::Relaxed));
    let mut req = PublishRequest::new(&oci, Format::Oci);
    req.name = Some("cancelled:v1".into());
    req.checkpoints = &checkpoints;
    req.cancel = Some(&cancel);
    let e = publish::publish(&spec, creds(&r), &req, &counter).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Cancelled, "{e}");
    let first = counter.sent();
    drop(counter);
    // Continued: exactly the rest is sent, no byte twice.
    let counter = Counter::new();
    req.cancel = None;
    let p = publish::publish(&spec, creds(&r), &req, &counter).unwrap();
    let blobs = blob_bytes(&r, "ns/cancelled:v1");
    assert!(first > 0 && p.sent > 0);
    assert_eq!(first + p.sent, blobs, "{first} + {} sent", p.sent);
    assert_eq!(
        inspect(&r, "ns/cancelled:v1").unwrap()["Digest"],
        p.digest.as_str()
    );

    // Killed (SIGKILL) half way through a chunk, restarted: the blob the registry can no
    // longer continue starts again, and the push completes with the same digest.
    let counter = Counter::cut_at(size / 2, || r.kill("REGISTRY_PID"));
    let mut req = PublishRequest::new(&oci, Format::Oci);
    req.name = Some("killed:v1".into());
    req.checkpoints = &checkpoints;
    req.retries = 0;
    // A new repository: its blobs must be sent (no cross-repository mount).
    let e = publish::publish(&spec, creds(&r), &req, &counter).unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::Interrupted | ErrorKind::Unreachable),
        "{e:?}"
    );
    assert!(e.to_string().starts_with(&spec.display()), "{e}");
    drop(counter);
    r.restart();
    let done = publish::publish(&spec, creds(&r), &req, &NoProgress).unwrap();
    assert_eq!(done.digest, p.digest, "the same image, the same manifest");
    let info = inspect(&r, "ns/killed:v1").unwrap();
    assert_eq!(info["Digest"], done.digest.as_str());
    skopeo_copy(
        &r,
        "ns/killed:v1",
        &format!("oci:{}:k", tmp.path().join("killed").display()),
    );
}

/// Bytes of a pushed image's config and layers, from its manifest as the registry serves it.
fn blob_bytes(r: &Service, reference: &str) -> u64 {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--creds"])
        .arg(format!(
            "{}:{}",
            r.get("REGISTRY_USER"),
            r.get("REGISTRY_PASSWORD")
        ))
        .arg("--cert-dir")
        .arg(r.get("REGISTRY_CERT_DIR"))
        .arg(format!("docker://{}/{reference}", r.get("REGISTRY_HOST")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    m["config"]["size"].as_u64().unwrap()
        + m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["size"].as_u64().unwrap())
            .sum::<u64>()
}

#[test]
fn registry_errors_name_the_registry() {
    let r = Service::start("registry", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let (oci, _) = images(tmp.path(), 1 << 20);
    let mut req = PublishRequest::new(&oci, Format::Oci);
    req.retries = 0;
    let spec = TargetSpec::Registry(target(&r, 0));
    let password = r.get("REGISTRY_PASSWORD").to_string();

    let wrong = Credentials::password(r.get("REGISTRY_USER"), "not-the-password");
    let e = publish::publish(&spec, wrong, &req, &NoProgress).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unauthorized, "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with(&spec.display()) && text.contains("uforge"),
        "{text}"
    );
    assert!(
        !text.contains("not-the-password") && !text.contains(&password),
        "{text}"
    );

    let mut untrusted = target(&r, 0);
    untrusted.tls.ca_pem = None;
    let e = publish::publish(
        &TargetSpec::Registry(untrusted),
        creds(&r),
        &req,
        &NoProgress,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Tls, "{e}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut closed = target(&r, 0);
    closed.registry = format!("127.0.0.1:{port}");
    let closed = TargetSpec::Registry(closed);
    let e = publish::publish(&closed, creds(&r), &req, &NoProgress).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    assert!(e.to_string().starts_with(&closed.display()), "{e}");

    let disk = tmp.path().join("d.qcow2");
    std::fs::write(&disk, b"QFI\xfb").unwrap();
    let e = publish::publish(
        &spec,
        creds(&r),
        &PublishRequest::new(&disk, Format::Qcow2),
        &NoProgress,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    let mut bad = PublishRequest::new(&oci, Format::Oci);
    bad.name = Some("Upper/Case".into());
    let e = publish::publish(&spec, creds(&r), &bad, &NoProgress).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid, "{e}");
}
