//! The S3 target against a real Garage: a multipart upload of a 200 MiB image cut by killing
//! the store half way and resumed after its restart, the SHA-256 in the object's metadata,
//! ranged reads back, errors that name the target, deletion.

use std::io::Read;
use std::process::Command;

use sha2::{Digest, Sha256};
use uforge_core::image::Format;
use uforge_core::progress::NoProgress;
use uforge_core::publish::{self, Credentials, ErrorKind, PublishRequest, S3Target, TargetSpec};
use uforge_core::s3::{S3Client, S3Config};
use uforge_test_support::services::Service;

use crate::util::{hex, random_file, Counter};

fn garage() -> Service {
    Service::start("garage", &[])
}

fn target(g: &Service, prefix: &str) -> S3Target {
    S3Target {
        endpoint: g.get("S3_ENDPOINT").into(),
        region: g.get("S3_REGION").into(),
        bucket: g.get("S3_BUCKET").into(),
        prefix: prefix.into(),
        path_style: true,
        tls: Default::default(),
        part_size: 8 << 20,
        concurrency: 4,
    }
}

fn credentials(g: &Service) -> Credentials {
    Credentials::access_key(g.get("S3_ACCESS_KEY_ID"), g.get("S3_SECRET_ACCESS_KEY"))
}

fn client(g: &Service) -> S3Client {
    let t = target(g, "");
    S3Client::new(
        "garage",
        &S3Config {
            endpoint: t.endpoint,
            region: t.region,
            bucket: t.bucket,
            path_style: true,
            tls: Default::default(),
        },
        &credentials(g),
    )
    .unwrap()
}

#[test]
fn s3_multipart_upload_resumes_after_the_store_is_killed() {
    let mut g = garage();
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("web01.qcow2");
    let size: u64 = 200 << 20;
    let sha = random_file(&image, size, 11);
    let spec = TargetSpec::S3(target(&g, "images"));

    // Killed (SIGKILL) once 45% is sent: the attempt fails, naming the target.
    let counter = Counter::cut_at(size * 45 / 100, || g.kill("GARAGE_PID"));
    let mut req = PublishRequest::new(&image, Format::Qcow2);
    req.retries = 0;
    let e = publish::publish(&spec, credentials(&g), &req, &counter).unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::Interrupted | ErrorKind::Unreachable),
        "{e:?}"
    );
    assert!(e.to_string().starts_with(&spec.display()), "{e}");
    let first = counter.sent();
    drop(counter);

    // Restarted: the parts stored before the kill are listed, checked and kept.
    g.restart();
    let c = client(&g);
    assert!(
        c.head("images/web01.qcow2").unwrap().is_none(),
        "visible before completion"
    );
    let counter = Counter::new();
    let req = PublishRequest::new(&image, Format::Qcow2);
    let p = publish::publish(&spec, credentials(&g), &req, &counter).unwrap();
    assert_eq!(
        p.location,
        format!("s3://{}/images/web01.qcow2", g.get("S3_BUCKET"))
    );
    assert_eq!(p.digest, format!("sha256:{sha}"));
    assert_eq!(p.sent, counter.sent());
    assert!(
        p.sent + first / 2 < size && p.sent > 0,
        "resumed upload sent {} of {size} after {first} before the cut",
        p.sent
    );
    assert!(
        c.list_uploads("images/").unwrap().is_empty(),
        "an upload left unfinished"
    );

    // What the store holds: the image, its SHA-256 as metadata, a multipart ETag.
    let info = c.head("images/web01.qcow2").unwrap().unwrap();
    assert_eq!(info.size, size);
    assert_eq!(info.metadata.get("sha256"), Some(&sha));
    assert!(
        info.etag.ends_with(&format!("-{}", size.div_ceil(8 << 20))),
        "{}",
        info.etag
    );
    let local = std::fs::read(&image).unwrap();
    for range in [0..1000u64, 12_345_678..12_445_678, size - 100..size] {
        let mut got = Vec::new();
        c.get("images/web01.qcow2", Some(range.clone()))
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(
            got,
            local[range.start as usize..range.end as usize],
            "{range:?}"
        );
    }
    let mut h = Sha256::new();
    std::io::copy(&mut c.get("images/web01.qcow2", None).unwrap(), &mut h).unwrap();
    assert_eq!(hex(&h.finalize()), sha);
    // s3cmd, another client, sees the object and its metadata.
    let cfg = tmp.path().join("s3cfg");
    let host = g
        .get("S3_ENDPOINT")
        .trim_start_matches("http://")
        .to_string();
    std::fs::write(
        &cfg,
        format!(
            "[default]\naccess_key = {}\nsecret_key = {}\nhost_base = {host}\nhost_bucket = {host}\n\
             bucket_location = garage\nuse_https = False\nsignature_v2 = False\n",
            g.get("S3_ACCESS_KEY_ID"),
            g.get("S3_SECRET_ACCESS_KEY")
        ),
    )
    .unwrap();
    let out = Command::new("s3cmd")
        .arg("-c")
        .arg(&cfg)
        .arg("info")
        .arg(format!("s3://{}/images/web01.qcow2", g.get("S3_BUCKET")))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("x-amz-meta-sha256: {sha}")),
        "{text}"
    );
    assert!(text.contains(&format!("File size: {size}")), "{text}");

    // Published again: found, nothing sent. Then deleted: gone.
    let again = publish::publish(&spec, credentials(&g), &req, &NoProgress).unwrap();
    assert_eq!(again.sent, 0);
    publish::publisher(&spec, credentials(&g))
        .unwrap()
        .delete(&p)
        .unwrap();
    assert!(c.head("images/web01.qcow2").unwrap().is_none());
    assert!(c.list("images/").unwrap().is_empty());
}

#[test]
fn s3_errors_name_the_target_and_hide_the_secret() {
    let g = garage();
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("small.raw");
    random_file(&image, 24 << 20, 5);
    let mut req = PublishRequest::new(&image, Format::Raw);
    req.retries = 0;
    let secret = g.get("S3_SECRET_ACCESS_KEY").to_string();
    let check = |spec: &TargetSpec, creds: Credentials, kind: ErrorKind, says: &str| {
        let e = publish::publish(spec, creds, &req, &NoProgress).unwrap_err();
        let text = e.to_string();
        assert_eq!(e.kind, kind, "{text}");
        assert!(text.starts_with(&spec.display()), "{text}");
        assert!(text.contains(says), "{text}");
        assert!(
            !text.contains(&secret) && !text.contains("X-Amz-Signature"),
            "{text}"
        );
    };

    let good = TargetSpec::S3(target(&g, "e"));
    let wrong = Credentials::access_key(g.get("S3_ACCESS_KEY_ID"), "0".repeat(64));
    check(&good, wrong, ErrorKind::Unauthorized, "");
    let unknown = Credentials::access_key("GK0123456789abcdef01234567", &secret);
    check(&good, unknown, ErrorKind::Unauthorized, "");

    let mut t = target(&g, "e");
    t.region = "us-east-1".into();
    check(
        &TargetSpec::S3(t),
        credentials(&g),
        ErrorKind::Unauthorized,
        "garage",
    );

    let mut t = target(&g, "e");
    t.bucket = "no-such-bucket".into();
    check(&TargetSpec::S3(t), credentials(&g), ErrorKind::NotFound, "");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut t = target(&g, "e");
    t.endpoint = format!("http://127.0.0.1:{port}");
    check(
        &TargetSpec::S3(t),
        credentials(&g),
        ErrorKind::Unreachable,
        "",
    );

    // A full bucket: a quota of 8 MiB against a 24 MiB image.
    let quota = Command::new(g.get("GARAGE_BIN"))
        .arg("-c")
        .arg(g.get("GARAGE_CONFIG"))
        .args([
            "bucket",
            "set-quotas",
            "--max-size",
            "8MiB",
            g.get("S3_BUCKET"),
        ])
        .output()
        .unwrap();
    assert!(
        quota.status.success(),
        "{}",
        String::from_utf8_lossy(&quota.stderr)
    );
    check(&good, credentials(&g), ErrorKind::NoSpace, "");
    assert!(client(&g).head("e/small.raw").unwrap().is_none());
}
