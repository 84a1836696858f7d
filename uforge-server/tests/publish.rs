//! Publish targets and publications: who sees which target, credentials sealed at rest and
//! never returned, an image the server built from the drifted fixture published to a real
//! registry, Garage and a directory, a wrong password failing the job and a retry after the
//! fix, deletions that take back what was pushed, and a deployment on a real libvirtd.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uforge_core::publish::Credentials as CoreCredentials;
use uforge_core::s3::{S3Client, S3Config};
use uforge_test_support::services::{guest_image, Service};

use crate::on_both_databases;
use crate::util::roots::Root;
use crate::util::{Backend, Options, Server};

on_both_databases!(targets_are_private_and_sealed, images_reach_real_targets);

const SECRET: &str = "hunter2-do-not-store-me-7d1e";

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn file_sha256(p: &Path) -> String {
    let mut h = Sha256::new();
    std::io::copy(&mut std::fs::File::open(p).unwrap(), &mut h).unwrap();
    hex(&h.finalize())
}

/// The `targets` rows: name, description and sealed credentials, read behind the server.
fn stored_targets(s: &Server) -> Vec<(String, String, Option<Vec<u8>>)> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        spec: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Binary>)]
        credentials: Option<Vec<u8>>,
    }
    let q = diesel::sql_query("SELECT name, spec, credentials FROM targets ORDER BY name");
    let rows: Vec<Row> = match &s.database_url {
        Some(url) => q
            .load(&mut diesel::PgConnection::establish(url).unwrap())
            .unwrap(),
        None => q
            .load(
                &mut diesel::SqliteConnection::establish(
                    s.data_dir.join("uforge.db").to_str().unwrap(),
                )
                .unwrap(),
            )
            .unwrap(),
    };
    rows.into_iter()
        .map(|r| (r.name, r.spec, r.credentials))
        .collect()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Puts a finished image file into the server as a done image job of `user` (the build
/// that made it ran elsewhere); its id.
fn put_image(s: &Server, user: &str, file: &Path, name: &str, format: &str) -> i64 {
    let (now, _) = s.sql_now();
    let sha = file_sha256(file);
    let size = std::fs::metadata(file).unwrap().len();
    s.sql(&format!(
        "INSERT INTO images (user_id, format, target, network, status, phase, progress_files, \
         progress_bytes, file, size, sha256, tuning_log, worker, created_at, started_at, \
         finished_at) SELECT id, '{format}', 'none', 'keep', 'done', 'write', 0, 0, '{name}', \
         {size}, '{sha}', '{{}}', 'elsewhere/0/1/0', {now}, {now}, {now} FROM users \
         WHERE name = '{user}'"
    ));
    let token = if user == "admin" {
        s.admin_token.clone()
    } else {
        panic!("images are put for admin only")
    };
    let list = s.as_bearer(&token).get("/images").expect(200).json();
    let id = list[0]["id"].as_i64().unwrap();
    let dir = s.data_dir.join(format!("images/{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(file, dir.join(name)).unwrap();
    id
}

/// Polls a publication until it is done or failed.
fn wait_publication(s: &Server, token: &str, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let v = s
            .as_bearer(token)
            .get(&format!("/publications/{id}"))
            .expect(200)
            .json();
        if v["status"] == "done" || v["status"] == "failed" {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "publication {id} did not end: {v}\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn targets_are_private_and_sealed(b: Backend) {
    let s = Server::start_with(
        b,
        Options {
            image_workers: Some(0),
            ..Options::default()
        },
    );
    let admin = s.admin();
    let body = json!({
        "name": "reg",
        "type": "registry",
        "url": "oci://127.0.0.1:5000/team",
        "options": {"chunk": "8MiB"},
        "credentials": {"type": "password", "username": "ci", "password": SECRET},
    });
    let r = admin.json("POST", "/targets", body.clone()).expect(201);
    assert!(!contains(&r.body, SECRET), "the password came back");
    let t = r.json();
    assert_eq!(t["name"], "reg");
    assert_eq!(t["type"], "registry");
    assert_eq!(t["credentials_set"], true);
    assert_eq!(t["description"], "registry 127.0.0.1:5000/team");
    assert_eq!(t["options"], json!({"chunk": "8MiB"}));
    assert_eq!(t["formats"], json!(["oci", "docker-archive"]));
    let id = t["id"].as_i64().unwrap();
    admin.json("POST", "/targets", body).expect(409);
    let r = admin
        .json(
            "POST",
            "/targets",
            json!({"name": "store", "url": "s3://bkt/images/",
                   "options": {"endpoint": "http://127.0.0.1:3900", "region": "garage"},
                   "credentials": {"type": "access-key", "access_key_id": "GK1",
                                   "secret_access_key": SECRET}}),
        )
        .expect(201);
    assert!(!contains(&r.body, SECRET));
    let open = admin
        .json(
            "POST",
            "/targets",
            json!({"name": "files", "url": "dir:///var/tmp"}),
        )
        .expect(201)
        .json();
    assert_eq!(open["credentials_set"], false);

    for (body, needle) in [
        (
            json!({"name": "1x", "url": "dir:///tmp"}),
            "starting with a letter",
        ),
        (json!({"name": "x", "url": "ftp://h/p"}), "unknown scheme"),
        (
            json!({"name": "x", "url": "s3://b/?region=r"}),
            "in `options`",
        ),
        (
            json!({"name": "x", "url": "s3://b/", "options": {"regoin": "r"}}),
            "unknown option `regoin`",
        ),
        (
            json!({"name": "x", "url": "oci://h/ns", "options": {"ca": "/etc/shadow"}}),
            "ca_pem",
        ),
        (
            json!({"name": "x", "url": "oci://h/ns/app:v1"}),
            "tag are given",
        ),
        (
            json!({"name": "x", "type": "s3", "url": "oci://h/ns"}),
            "does not match",
        ),
        (
            json!({"name": "x", "url": "dir:///tmp",
                   "credentials": {"type": "token", "token": SECRET}}),
            "takes no credentials",
        ),
        (
            json!({"name": "x", "url": "dir:///tmp", "credentials": {"type": "ssh"}}),
            "invalid JSON",
        ),
    ] {
        let r = admin.json("POST", "/targets", body.clone()).expect(400);
        assert!(r.error().contains(needle), "{body}: {}", r.error());
        assert!(!r.error().contains(SECRET), "{}", r.error());
    }

    // Listed, by name; shown by id and by name; never with a credential.
    let list = admin.get("/targets").expect(200);
    assert!(!contains(&list.body, SECRET));
    let names: Vec<String> = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["files", "reg", "store"]);
    assert_eq!(admin.get(&format!("/targets/{id}")).expect(200).json(), t);
    assert_eq!(admin.get("/targets/reg").expect(200).json(), t);

    // Sealed at rest: neither the rows nor the database's files hold the secrets.
    let rows = stored_targets(&s);
    assert_eq!(rows.len(), 3);
    for (name, spec, sealed) in &rows {
        assert!(!spec.contains(SECRET), "{name}: {spec}");
        if let Some(sealed) = sealed {
            assert!(
                !contains(sealed, SECRET),
                "{name}: credentials in plaintext"
            );
            assert!(
                !contains(sealed, "password"),
                "{name}: credentials in plaintext"
            );
            assert!(sealed.len() > 40, "{name}");
        }
    }
    assert!(rows[0].2.is_none(), "the directory has no credentials");
    if b == Backend::Sqlite {
        for f in ["uforge.db", "uforge.db-wal"] {
            let raw = std::fs::read(s.data_dir.join(f)).unwrap_or_default();
            assert!(!contains(&raw, SECRET), "{f} holds the secret");
        }
    }
    let key = s.data_dir.join("secret.key");
    let meta = std::fs::metadata(&key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 32);
    // Sealed rows are bound to their owner and name: swapped, they no longer open.
    assert_ne!(rows[1].2, rows[2].2);

    // Another user sees none of it, and cannot use it by name or id.
    let bob = s.add_user("bob");
    let bob = s.as_bearer(&bob);
    assert_eq!(bob.get("/targets").expect(200).json(), json!([]));
    for path in [format!("/targets/{id}"), "/targets/reg".to_string()] {
        let r = bob.get(&path).expect(404);
        assert!(r.error().contains("no target"), "{}", r.error());
        bob.call("DELETE", &path).expect(404);
        bob.json(
            "PUT",
            &format!("{path}/credentials"),
            json!({"type": "password", "username": "x", "password": "y"}),
        )
        .expect(404);
    }
    // Bob's own image, sent to Alice's target: no such target.
    let (now, _) = s.sql_now();
    s.sql(&format!(
        "INSERT INTO images (user_id, format, target, network, status, progress_files, \
         progress_bytes, file, size, sha256, created_at) SELECT id, 'oci', 'container', 'keep', \
         'done', 0, 0, 'x.oci.tar', 1, '00', {now} FROM users WHERE name = 'bob'"
    ));
    let bobs = bob.get("/images").expect(200).json()[0]["id"]
        .as_i64()
        .unwrap();
    for target in ["reg".to_string(), id.to_string()] {
        let r = bob
            .json(
                "POST",
                &format!("/images/{bobs}/publications"),
                json!({"target": target}),
            )
            .expect(404);
        assert!(r.error().contains("no target"), "{}", r.error());
    }
    assert_eq!(bob.get("/publications").expect(200).json(), json!([]));
    // An ordinary user reaches no service behind the server and no file of it.
    for (url, why) in [
        ("oci://127.0.0.1:5000/x", "loopback"),
        ("dir:///var/tmp", "administrator"),
        ("libvirt:///system", "administrator"),
    ] {
        let r = bob
            .json("POST", "/targets", json!({"name": "mine", "url": url}))
            .expect(403);
        assert!(r.error().contains(why), "{url}: {}", r.error());
    }
    s.anonymous().get("/targets").expect(401);
    admin.get("/targets/reg").expect(200);

    // Credentials replaced; still never shown.
    let r = admin
        .json(
            "PUT",
            "/targets/reg/credentials",
            json!({"type": "token", "token": SECRET}),
        )
        .expect(200);
    assert!(!contains(&r.body, SECRET));
    assert_eq!(r.json()["credentials_set"], true);
    let log = s.log();
    assert!(!log.contains(SECRET), "the log holds a secret");
    admin.call("DELETE", "/targets/reg").expect(204);
    admin.get("/targets/reg").expect(404);
    admin.call("DELETE", "/targets/reg").expect(404);
}

/// The drifted fixture scanned, sent and built into an OCI image by a server, once for every
/// test of this binary: the image file, kept for them.
fn drifted_oci() -> &'static (tempfile::TempDir, PathBuf) {
    static BUILT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let s = Server::start_with(
            Backend::Sqlite,
            Options {
                allow_local_repos: true,
                ..Options::default()
            },
        );
        let admin = s.admin();
        let repo = admin
            .json(
                "POST",
                "/repos",
                json!({"line": uforge_test_support::mirror_line()}),
            )
            .expect(201)
            .json();
        admin
            .call("POST", &format!("/repos/{}/sync", repo["id"]))
            .expect(200);
        let tmp = tempfile::tempdir().unwrap();
        let root = Root {
            root: uforge_test_support::fixture("drifted"),
            report: tmp.path().join("drifted.ufr"),
            tmp,
        };
        uforge_core::scan::scan_to_report(
            &uforge_core::scan::ScanOptions::new(&root.root),
            &uforge_core::progress::NoProgress,
        )
        .unwrap()
        .save(&root.report)
        .unwrap();
        let scan = admin
            .json("POST", "/scans", json!({"machine": "web01"}))
            .expect(201)
            .json()["id"]
            .as_i64()
            .unwrap();
        let analysis = admin
            .bytes(
                "POST",
                &format!("/scans/{scan}/report"),
                &std::fs::read(&root.report).unwrap(),
            )
            .expect(200)
            .body;
        let overlay = root.overlay(&root.report, &analysis);
        admin
            .stream("PUT", &format!("/scans/{scan}/overlay"), &overlay[..])
            .expect(200);
        let job = admin
            .json(
                "POST",
                &format!("/scans/{scan}/images"),
                json!({"format": "oci"}),
            )
            .expect(202)
            .json();
        let id = job["id"].as_i64().unwrap();
        let deadline = Instant::now() + Duration::from_secs(900);
        let job = loop {
            let v = admin.get(&format!("/images/{id}")).expect(200).json();
            if v["status"] == "done" || v["status"] == "failed" {
                break v;
            }
            assert!(Instant::now() < deadline, "{v}");
            std::thread::sleep(Duration::from_millis(500));
        };
        assert_eq!(job["status"], "done", "{job}\n{}", s.log());
        let file = job["file"].as_str().unwrap().to_string();
        let keep = tempfile::tempdir_in("/var/tmp").unwrap();
        let out = keep.path().join(&file);
        let body = admin
            .get(&format!("/images/{id}/download"))
            .expect(200)
            .body;
        std::fs::write(&out, &body).unwrap();
        assert_eq!(file_sha256(&out), job["sha256"].as_str().unwrap());
        (keep, out)
    })
}

fn skopeo_inspect(r: &Service, reference: &str) -> std::process::Output {
    Command::new("skopeo")
        .arg("inspect")
        .arg("--creds")
        .arg(format!(
            "{}:{}",
            r.get("REGISTRY_USER"),
            r.get("REGISTRY_PASSWORD")
        ))
        .arg("--cert-dir")
        .arg(r.get("REGISTRY_CERT_DIR"))
        .arg(format!("docker://{}/{reference}", r.get("REGISTRY_HOST")))
        .output()
        .unwrap()
}

fn images_reach_real_targets(b: Backend) {
    let (_, built) = drifted_oci();
    let reg = Service::start("registry", &[]);
    let garage = Service::start("garage", &[]);
    let s = Server::start(b);
    let token = s.admin_token.clone();
    let admin = s.admin();
    let file = built.file_name().unwrap().to_str().unwrap().to_string();
    let image = put_image(&s, "admin", built, &file, "oci");
    let sha = file_sha256(built);
    let shelf = tempfile::tempdir().unwrap();

    let ca = std::fs::read_to_string(reg.get("REGISTRY_CA_FILE")).unwrap();
    let registry = |name: &str, password: &str| {
        json!({"name": name, "url": format!("oci://{}/uforge", reg.get("REGISTRY_HOST")),
               "ca_pem": ca,
               "credentials": {"type": "password", "username": reg.get("REGISTRY_USER"),
                               "password": password}})
    };
    admin
        .json(
            "POST",
            "/targets",
            registry("reg", reg.get("REGISTRY_PASSWORD")),
        )
        .expect(201);
    admin
        .json("POST", "/targets", registry("badreg", "not-the-password"))
        .expect(201);
    let s3_secret = garage.get("S3_SECRET_ACCESS_KEY").to_string();
    let s3_creds = |secret: &str| {
        json!({"type": "access-key", "access_key_id": garage.get("S3_ACCESS_KEY_ID"),
               "secret_access_key": secret})
    };
    admin
        .json(
            "POST",
            "/targets",
            json!({"name": "store", "url": format!("s3://{}/images/", garage.get("S3_BUCKET")),
                   "options": {"endpoint": garage.get("S3_ENDPOINT"),
                               "region": garage.get("S3_REGION")},
                   "credentials": s3_creds(&s3_secret)}),
        )
        .expect(201);
    admin
        .json(
            "POST",
            "/targets",
            json!({"name": "shelf", "url": format!("dir://{}", shelf.path().display())}),
        )
        .expect(201);

    let publish = |target: &str, extra: Value| -> i64 {
        let mut body = json!({ "target": target });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let p = admin
            .json("POST", &format!("/images/{image}/publications"), body)
            .expect(202)
            .json();
        assert_eq!(p["status"], "queued", "{p}");
        assert_eq!(p["image"], image);
        p["id"].as_i64().unwrap()
    };
    // What the target does not take is refused at once, naming it.
    let r = admin
        .json(
            "POST",
            &format!("/images/{image}/publications"),
            json!({"target": "reg", "start": true}),
        )
        .expect(400);
    assert!(r.error().contains("libvirt"), "{}", r.error());
    let r = admin
        .json(
            "POST",
            &format!("/images/{image}/publications"),
            json!({"target": "shelf", "tag": "v1"}),
        )
        .expect(400);
    assert!(r.error().contains("no tags"), "{}", r.error());
    admin
        .json(
            "POST",
            &format!("/images/{image}/publications"),
            json!({"target": "nowhere"}),
        )
        .expect(404);

    let to_reg = publish("reg", json!({"tag": "v1"}));
    let to_s3 = publish("store", json!({}));
    let to_dir = publish("shelf", json!({}));
    let to_bad = publish("badreg", json!({"tag": "v2"}));

    // The registry: skopeo reads back the manifest the publication names.
    let p = wait_publication(&s, &token, to_reg);
    assert_eq!(p["status"], "done", "{p}\n{}", s.log());
    assert_eq!(p["progress"]["percent"], 100);
    let digest = p["digest"].as_str().unwrap().to_string();
    assert!(
        p["location"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/uforge/web01:v1@{digest}")),
        "{p}"
    );
    let out = skopeo_inspect(&reg, "uforge/web01:v1");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspect: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspect["Digest"], digest.as_str(), "{inspect}");
    assert_eq!(inspect["Architecture"], "amd64");

    // Garage: the object, with the image's SHA-256 as its metadata.
    let p = wait_publication(&s, &token, to_s3);
    assert_eq!(p["status"], "done", "{p}\n{}", s.log());
    assert_eq!(p["digest"], format!("sha256:{sha}"));
    let key = format!("images/{file}");
    assert_eq!(
        p["location"],
        format!("s3://{}/{key}", garage.get("S3_BUCKET"))
    );
    let client = S3Client::new(
        "garage",
        &S3Config {
            endpoint: garage.get("S3_ENDPOINT").into(),
            region: garage.get("S3_REGION").into(),
            bucket: garage.get("S3_BUCKET").into(),
            path_style: true,
            tls: Default::default(),
        },
        &CoreCredentials::access_key(garage.get("S3_ACCESS_KEY_ID"), &s3_secret),
    )
    .unwrap();
    let info = client.head(&key).unwrap().expect("the object");
    assert_eq!(info.metadata.get("sha256"), Some(&sha));
    assert_eq!(info.size, std::fs::metadata(built).unwrap().len());

    // The directory: the file and its SHA-256 manifest.
    let p = wait_publication(&s, &token, to_dir);
    assert_eq!(p["status"], "done", "{p}\n{}", s.log());
    let copy = shelf.path().join(&file);
    assert_eq!(file_sha256(&copy), sha);
    let manifest = std::fs::read_to_string(shelf.path().join(format!("{file}.sha256"))).unwrap();
    assert!(manifest.contains(&sha), "{manifest}");

    // A wrong password: the job fails, naming the target; fixed and retried, it is done.
    let p = wait_publication(&s, &token, to_bad);
    assert_eq!(p["status"], "failed", "{p}");
    let error = p["error"].as_str().unwrap();
    assert!(error.starts_with("target badreg: registry "), "{error}");
    assert_eq!(p["error_kind"], "unauthorized", "{p}");
    assert!(!error.contains("not-the-password"), "{error}");
    admin
        .call("POST", &format!("/publications/{to_reg}/retry"))
        .expect(409);
    admin
        .json(
            "PUT",
            "/targets/badreg/credentials",
            json!({"type": "password", "username": reg.get("REGISTRY_USER"),
                   "password": reg.get("REGISTRY_PASSWORD")}),
        )
        .expect(200);
    let r = admin
        .call("POST", &format!("/publications/{to_bad}/retry"))
        .expect(202)
        .json();
    assert_eq!(r["status"], "queued");
    assert_eq!(r["error"], Value::Null);
    let p = wait_publication(&s, &token, to_bad);
    assert_eq!(p["status"], "done", "{p}\n{}", s.log());
    assert!(skopeo_inspect(&reg, "uforge/web01:v2").status.success());
    // Every blob was there already: only the manifest went up again.
    assert!(
        p["sent"].as_u64().unwrap() < p["size"].as_u64().unwrap() / 2,
        "{p}"
    );

    let listed = admin.get("/publications").expect(200).json();
    let ids: Vec<i64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [to_bad, to_dir, to_s3, to_reg]);
    assert_eq!(
        admin
            .get(&format!("/publications?image={image}"))
            .expect(200)
            .json(),
        listed
    );

    // Neither the image nor the target goes while publications of it are recorded.
    admin
        .call("DELETE", &format!("/images/{image}"))
        .expect(204);
    let r = admin.call("DELETE", "/targets/store").expect(409);
    assert!(r.error().contains(&to_s3.to_string()), "{}", r.error());
    // The image's record went; what it published stays until deleted.
    assert_eq!(
        admin
            .get(&format!("/publications/{to_s3}"))
            .expect(200)
            .json()["image"],
        Value::Null
    );

    // A target that refuses the deletion: 502 naming it, and the publication is kept.
    admin
        .json(
            "PUT",
            "/targets/store/credentials",
            s3_creds(&"0".repeat(40)),
        )
        .expect(200);
    let r = admin
        .call("DELETE", &format!("/publications/{to_s3}"))
        .expect(502);
    assert!(
        r.error().starts_with("target store: s3://"),
        "{}",
        r.error()
    );
    admin.get(&format!("/publications/{to_s3}")).expect(200);
    assert!(client.head(&key).unwrap().is_some());
    admin
        .json("PUT", "/targets/store/credentials", s3_creds(&s3_secret))
        .expect(200);

    // Deleted: what each pushed is gone from its target.
    for id in [to_s3, to_dir, to_reg] {
        admin
            .call("DELETE", &format!("/publications/{id}"))
            .expect(204);
        admin.get(&format!("/publications/{id}")).expect(404);
    }
    assert!(client.head(&key).unwrap().is_none(), "the object stayed");
    assert!(!copy.exists(), "the file stayed");
    assert!(!skopeo_inspect(&reg, "uforge/web01:v1").status.success());
    admin.call("DELETE", "/targets/store").expect(204);
    assert!(!s.log().contains(reg.get("REGISTRY_PASSWORD")));
    assert!(!s.log().contains(&s3_secret));
}

/// `GET /` on loopback `port`: the body of a 200 answer.
fn http_get(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET / HTTP/1.0\r\nHost: guest\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.contains(" 200 ").then(|| body.to_string())
}

fn virsh(uri: &str, args: &[&str]) -> String {
    let out = Command::new("virsh")
        .args(["-q", "-c", uri])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "virsh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A deployment through the API: the guest disk, as a server image, uploaded into a real
/// libvirtd's pool and booted (once) as a domain that serves its page on a forwarded port;
/// deleting the publication destroys it.
#[test]
fn deploy_to_libvirt() {
    let lv = Service::start(
        "libvirt",
        &[("LIBVIRT_CACHE_DIR", "/var/cache/uforge-tools/libvirt-cache")],
    );
    let uri = lv.get("LIBVIRT_URI").to_string();
    let (base, query) = uri.split_once('?').unwrap_or((&uri, ""));
    let work = tempfile::Builder::new()
        .prefix("uforge-deploy-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let pool = work.path().join("pool");
    std::fs::create_dir(&pool).unwrap();
    virsh(
        &uri,
        &[
            "pool-define-as",
            "uf",
            "dir",
            "--target",
            pool.to_str().unwrap(),
        ],
    );
    virsh(&uri, &["pool-start", "uf"]);

    let s = Server::start(Backend::Sqlite);
    let token = s.admin_token.clone();
    let admin = s.admin();
    let image = put_image(&s, "admin", &guest_image(), "guest.qcow2", "qcow2");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut options = serde_json::Map::new();
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap();
        options.insert(k.into(), v.into());
    }
    options.insert("pool".into(), "uf".into());
    options.insert("type".into(), "qemu".into());
    options.insert("forward".into(), format!("tcp:127.0.0.1:{port}-:80").into());
    let t = admin
        .json(
            "POST",
            "/targets",
            json!({"name": "kvm1", "url": base, "options": options}),
        )
        .expect(201)
        .json();
    assert_eq!(t["provisions"], true);

    let r = admin
        .json(
            "POST",
            &format!("/images/{image}/publications"),
            json!({"target": "kvm1", "memory": 1024, "cpus": 2, "start": false}),
        )
        .expect(400);
    assert!(r.error().contains("deployment"), "{}", r.error());
    let p = admin
        .json(
            "POST",
            &format!("/images/{image}/publications"),
            json!({"target": "kvm1", "name": "web-vm", "memory": 1024, "cpus": 2}),
        )
        .expect(202)
        .json();
    assert_eq!(p["deploy"], true);
    let id = p["id"].as_i64().unwrap();
    let p = wait_publication(&s, &token, id);
    assert_eq!(p["status"], "done", "{p}\n{}", s.log());
    assert_eq!(p["location"], "uf/web-vm");
    let inst = &p["instance"];
    assert_eq!(
        (
            &inst["name"],
            &inst["memory"],
            &inst["cpus"],
            &inst["firmware"]
        ),
        (&json!("web-vm"), &json!(1024), &json!(2), &json!("bios")),
        "{p}"
    );
    let info = virsh(&uri, &["dominfo", "web-vm"]);
    assert!(info.contains("running"), "{info}");

    let deadline = Instant::now() + Duration::from_secs(420);
    let mut page = None;
    while Instant::now() < deadline && page.is_none() {
        page = http_get(port).filter(|b| b.contains("uforge-guest-ok"));
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(
        page.is_some(),
        "the deployed guest served nothing on {port}"
    );

    admin
        .call("DELETE", &format!("/publications/{id}"))
        .expect(204);
    assert!(!virsh(&uri, &["list", "--all", "--name"]).contains("web-vm"));
    assert!(!pool.join("web-vm").exists());
    assert!(http_get(port).is_none());
    admin.call("DELETE", "/targets/kvm1").expect(204);
}

/// A loopback TCP relay to `upstream` on `listener`: what the server sends goes at most
/// `rate` bytes a second (0: as fast as it comes), so that a test can act mid-upload.
fn relay(listener: std::net::TcpListener, upstream: String, rate: Arc<AtomicU64>) {
    fn pipe(mut from: TcpStream, mut to: TcpStream, rate: Option<Arc<AtomicU64>>) {
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
            let r = rate.as_ref().map_or(0, |r| r.load(Ordering::Relaxed));
            if r > 0 {
                std::thread::sleep(Duration::from_secs_f64(n as f64 / r as f64));
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
        let _ = from.shutdown(std::net::Shutdown::Both);
    }
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let r = rate.clone();
            std::thread::spawn(move || pipe(client, server, Some(r)));
            std::thread::spawn(move || pipe(s2, c2, None));
        }
    });
}

/// Writes `size` pseudo-random (incompressible) bytes to `path`.
fn random_file(path: &Path, size: usize) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..size / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    std::fs::write(path, data).unwrap();
}

/// A publication to a directory on a full filesystem; one to Garage whose endpoint first
/// refuses connections, then whose bucket is full, then whose server is killed mid-upload: each failure names the target and what was
/// wrong, and each retry after the cause is gone goes on, the last resuming from the parts
/// the store kept. Resume points of publications done or gone are cleared at start.
#[test]
fn publications_fail_clearly_and_resume_after_a_restart() {
    const MIB: usize = 1 << 20;
    let garage = Service::start("garage", &[]);
    let mut s = Server::start(Backend::Sqlite);
    let token = s.admin_token.clone();
    let work = tempfile::tempdir().unwrap();
    let image_file = work.path().join("small.raw");
    random_file(&image_file, 12 * MIB);
    let sha = file_sha256(&image_file);
    let image = put_image(&s, "admin", &image_file, "small.raw", "raw");
    let secret = garage.get("S3_SECRET_ACCESS_KEY").to_string();

    // A port nothing listens on, for now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // One part at a time, so that what the store holds when the server dies is known.
    s.admin()
        .json(
            "POST",
            "/targets",
            json!({"name": "store", "url": format!("s3://{}/small/", garage.get("S3_BUCKET")),
                   "options": {"endpoint": format!("http://127.0.0.1:{port}"),
                               "region": garage.get("S3_REGION"),
                               "part": "5MiB", "concurrency": "1"},
                   "credentials": {"type": "access-key",
                                   "access_key_id": garage.get("S3_ACCESS_KEY_ID"),
                                   "secret_access_key": secret}}),
        )
        .expect(201);
    let shelf = tempfile::tempdir().unwrap();
    s.admin()
        .json(
            "POST",
            "/targets",
            json!({"name": "shelf", "url": format!("dir://{}", shelf.path().display())}),
        )
        .expect(201);
    let publish = |s: &Server, target: &str| -> i64 {
        s.admin()
            .json(
                "POST",
                &format!("/images/{image}/publications"),
                json!({ "target": target }),
            )
            .expect(202)
            .json()["id"]
            .as_i64()
            .unwrap()
    };
    let retry = |s: &Server, id: i64| {
        let r = s
            .admin()
            .call("POST", &format!("/publications/{id}/retry"))
            .expect(202)
            .json();
        assert_eq!(r["status"], "queued", "{r}");
    };
    let failed = |p: &Value, kind: &str, target: &str| {
        assert_eq!(p["status"], "failed", "{p}");
        assert_eq!(p["error_kind"], kind, "{p}");
        let error = p["error"].as_str().unwrap();
        assert!(error.starts_with(target), "{error}");
        assert!(!error.contains(&secret), "{error}");
        error.to_string()
    };

    // A directory on a small filesystem: full, with nothing left in it; retried once the
    // filesystem has room, done.
    let small = work.path().join("small-fs");
    std::fs::create_dir(&small).unwrap();
    let mount = |opts: &str| {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(&small)
            .status()
            .unwrap();
        assert!(ok.success(), "mounting a tmpfs (the tests run as root)");
    };
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    mount("size=4m");
    let _unmount = Unmount(small.clone());
    s.admin()
        .json(
            "POST",
            "/targets",
            json!({"name": "tiny", "url": format!("dir://{}", small.display())}),
        )
        .expect(201);
    let to_tiny = publish(&s, "tiny");
    let error = failed(
        &wait_publication(&s, &token, to_tiny),
        "no-space",
        "target tiny: ",
    );
    assert!(error.contains(small.to_str().unwrap()), "{error}");
    assert_eq!(std::fs::read_dir(&small).unwrap().count(), 0, "left behind");
    mount("remount,size=32m");
    retry(&s, to_tiny);
    let p = wait_publication(&s, &token, to_tiny);
    assert_eq!(p["status"], "done", "{p}\n{}", s.log());
    assert_eq!(file_sha256(&small.join("small.raw")), sha);

    // Unreachable: the job fails, naming the target and the endpoint it could not reach.
    let id = publish(&s, "store");
    let error = failed(
        &wait_publication(&s, &token, id),
        "unreachable",
        "target store: s3://",
    );
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");

    // The endpoint answers again (through a relay on that port), but the bucket is full.
    let rate = Arc::new(AtomicU64::new(0));
    relay(
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap(),
        garage
            .get("S3_ENDPOINT")
            .trim_start_matches("http://")
            .to_string(),
        rate.clone(),
    );
    let garage_cli = |args: &[&str]| {
        let out = Command::new(garage.get("GARAGE_BIN"))
            .arg("-c")
            .arg(garage.get("GARAGE_CONFIG"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "garage {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let bucket = garage.get("S3_BUCKET");
    garage_cli(&["bucket", "set-quotas", "--max-size", "4MiB", bucket]);
    retry(&s, id);
    let error = failed(
        &wait_publication(&s, &token, id),
        "no-space",
        "target store: s3://",
    );
    assert!(error.contains("quota"), "{error}");

    // Room again, and a slow link: the server is killed once the first part is stored.
    garage_cli(&["bucket", "set-quotas", "--max-size", "none", bucket]);
    rate.store((2 * MIB) as u64, Ordering::Relaxed);
    let done = publish(&s, "shelf");
    assert_eq!(wait_publication(&s, &token, done)["status"], "done");
    retry(&s, id);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = s
            .admin()
            .get(&format!("/publications/{id}"))
            .expect(200)
            .json();
        assert!(
            p["status"] == "queued" || p["status"] == "running",
            "ended before it was cut: {p}"
        );
        if p["phase"] == "upload" && p["progress"]["bytes"].as_u64().unwrap() > 5 * MIB as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "{p}");
        std::thread::sleep(Duration::from_millis(100));
    }
    s.kill();
    // Left as a dead process or a failed removal leaves them: resume points of a publication
    // that is done and of one that no longer exists.
    let data_dir = s.data_dir.clone();
    let resume = |id: i64| data_dir.join(format!("work/publications/{id}"));
    for gone in [done, 424242] {
        std::fs::create_dir_all(resume(gone)).unwrap();
        std::fs::write(resume(gone).join("point"), b"{}").unwrap();
    }
    assert!(resume(id).is_dir());

    s.restart(Options::default());
    let p = s
        .admin()
        .get(&format!("/publications/{id}"))
        .expect(200)
        .json();
    assert_eq!(p["status"], "failed", "{p}");
    assert_eq!(p["error"], "interrupted: server restarted", "{p}");
    assert_eq!(p["error_kind"], "interrupted", "{p}");
    assert_eq!(p["phase"], "upload", "{p}");
    assert!(
        !resume(done).exists(),
        "a done publication's resume points stayed"
    );
    assert!(
        !resume(424242).exists(),
        "resume points of no publication stayed"
    );
    assert!(
        resume(id).is_dir(),
        "the interrupted one's resume points went"
    );

    // Retried, it sends only the parts the store does not hold, and the object is the image.
    rate.store(0, Ordering::Relaxed);
    retry(&s, id);
    let p = wait_publication(&s, &token, id);
    assert_eq!(p["status"], "done", "{p}\n{}", s.log());
    assert_eq!(p["digest"], format!("sha256:{sha}"));
    assert_eq!(p["size"], 12 * MIB);
    // The server died within a part: the parts after the stored ones went, and only them.
    let sent = p["sent"].as_u64().unwrap();
    assert!(
        [7 * MIB as u64, 2 * MIB as u64].contains(&sent),
        "not resumed from the stored parts: {p}"
    );
    assert!(!resume(id).exists());
    // A deletion takes the resume points with it, whatever left them.
    std::fs::create_dir_all(resume(done)).unwrap();
    s.admin()
        .call("DELETE", &format!("/publications/{done}"))
        .expect(204);
    assert!(
        !resume(done).exists(),
        "a deleted publication's resume points stayed"
    );
    let client = S3Client::new(
        "garage",
        &S3Config {
            endpoint: garage.get("S3_ENDPOINT").into(),
            region: garage.get("S3_REGION").into(),
            bucket: bucket.into(),
            path_style: true,
            tls: Default::default(),
        },
        &CoreCredentials::access_key(garage.get("S3_ACCESS_KEY_ID"), &secret),
    )
    .unwrap();
    let mut h = Sha256::new();
    std::io::copy(&mut client.get("small/small.raw", None).unwrap(), &mut h).unwrap();
    assert_eq!(
        hex(&h.finalize()),
        sha,
        "the stored object is not the image"
    );
    assert!(!s.log().contains(&secret));
}
