//! Image jobs: what the API accepts and refuses, who sees what, a job that fails, a finished
//! image served and downloaded, and jobs left running by a server that died.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uforge_client::{Client, Credentials, TlsOptions};

use crate::on_both_databases;
use crate::util::roots::{small_root, Root};
use crate::util::{count_files, Backend, Options, Server};

on_both_databases!(
    image_requests,
    failed_job_leaves_nothing,
    failed_job_keeps_its_log,
    finished_image_is_served,
    restart_fails_jobs_of_dead_servers,
    servers_share_the_queue
);

/// A scan of the small root taken to `complete` (report, then overlay); its id.
fn complete_scan(s: &Server, machine: &str) -> (i64, Root) {
    let root = small_root();
    let admin = s.admin();
    let id = admin
        .json("POST", "/scans", json!({ "machine": machine }))
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    let analysis = admin
        .bytes(
            "POST",
            &format!("/scans/{id}/report"),
            &std::fs::read(&root.report).unwrap(),
        )
        .expect(200)
        .body;
    let overlay = root.overlay(&root.report, &analysis);
    let done = admin
        .stream("PUT", &format!("/scans/{id}/overlay"), &overlay[..])
        .expect(200)
        .json();
    assert_eq!(done["status"], "complete", "{done}");
    (id, root)
}

fn queue(s: &Server, scan: i64, body: Value) -> i64 {
    let job = s
        .admin()
        .json("POST", &format!("/scans/{scan}/images"), body)
        .expect(202)
        .json();
    job["id"].as_i64().unwrap()
}

fn image(s: &Server, id: i64) -> Value {
    s.admin().get(&format!("/images/{id}")).expect(200).json()
}

/// Polls a job until it leaves `queued` and `running`.
fn wait_for_end(s: &Server, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let v = image(s, id);
        if v["status"] == "done" || v["status"] == "failed" {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "image {id} did not end: {v}\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect()
}

fn image_requests(b: Backend) {
    // No workers: jobs stay queued, whatever the state of image building.
    let s = Server::start_with(
        b,
        Options {
            image_workers: Some(0),
            ..Options::default()
        },
    );
    let (scan, _root) = complete_scan(&s, "web01");
    let admin = s.admin();
    let url = format!("/scans/{scan}/images");

    for (body, needles) in [
        (
            json!({"format": "floppy"}),
            &["`floppy`", "qcow2", "tar.gz"][..],
        ),
        (
            json!({"format": "qcow2", "target": "mainframe"}),
            &["`mainframe`", "kvm", "vmware"][..],
        ),
        (
            json!({"format": "qcow2", "network": "static"}),
            &["`static`", "keep", "dhcp"][..],
        ),
        (json!({"format": "qcow2", "targte": "kvm"}), &["targte"][..]),
        (json!({"target": "kvm"}), &["format"][..]),
    ] {
        let r = admin.json("POST", &url, body.clone()).expect(400);
        for n in needles {
            assert!(r.error().contains(n), "{body}: {}", r.error());
        }
    }
    assert_eq!(admin.get("/images").expect(200).json(), json!([]));

    // A scan without its overlay has nothing to build from.
    let unfinished = admin
        .json("POST", "/scans", json!({"machine": "db01"}))
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    let r = admin
        .json(
            "POST",
            &format!("/scans/{unfinished}/images"),
            json!({"format": "qcow2"}),
        )
        .expect(409);
    assert!(r.error().contains("overlay"), "{}", r.error());
    admin
        .json("POST", "/scans/999999/images", json!({"format": "qcow2"}))
        .expect(404);

    let r = admin
        .json("POST", &url, json!({"format": "QCOW2"}))
        .expect(202);
    assert!(r.content_type.starts_with("application/json"));
    let job = r.json();
    let id = job["id"].as_i64().unwrap();
    assert_eq!(job["scan"], scan);
    assert_eq!(job["machine"], "web01");
    assert_eq!(job["format"], "qcow2");
    assert_eq!(job["target"], "kvm", "the format's usual target");
    assert_eq!(job["network"], "keep");
    assert_eq!(job["status"], "queued");
    assert_eq!(job["phase"], Value::Null);
    assert_eq!(job["progress"]["steps"], 5);
    assert_eq!(job["progress"]["percent"], Value::Null);
    for k in [
        "error",
        "size",
        "sha256",
        "started_at",
        "finished_at",
        "download_url",
    ] {
        assert_eq!(job[k], Value::Null, "{k}: {job}");
    }
    assert!(job["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(image(&s, id), job);

    let docker = queue(
        &s,
        scan,
        json!({"format": "docker", "network": "dhcp", "target": "oci"}),
    );
    let d = image(&s, docker);
    assert_eq!(
        (&d["format"], &d["target"], &d["network"]),
        (
            &json!("docker-archive"),
            &json!("container"),
            &json!("dhcp")
        )
    );

    // Not built: nothing to download and no tuning log.
    let r = admin.get(&format!("/images/{id}/download")).expect(409);
    assert!(r.error().contains("queued"), "{}", r.error());
    admin.get(&format!("/images/{id}/tuning-log")).expect(409);

    assert_eq!(ids(&admin.get("/images").expect(200).json()), [docker, id]);
    assert_eq!(
        ids(&admin
            .get(&format!("/images?scan={scan}"))
            .expect(200)
            .json()),
        [docker, id]
    );
    assert_eq!(
        admin
            .get(&format!("/images?scan={unfinished}"))
            .expect(200)
            .json(),
        json!([])
    );
    admin.get("/images?scan=web01").expect(400);
    admin.get("/images/abc").expect(404);
    admin.get("/images/999999").expect(404);

    // Another user sees none of it, exactly as if it did not exist.
    let bob = s.add_user("bob");
    let bob = s.as_bearer(&bob);
    let r = bob
        .json("POST", &url, json!({"format": "qcow2"}))
        .expect(404);
    assert!(
        r.error().contains(&format!("no scan {scan}")),
        "{}",
        r.error()
    );
    assert_eq!(bob.get("/images").expect(200).json(), json!([]));
    assert_eq!(
        bob.get(&format!("/images?scan={scan}")).expect(200).json(),
        json!([])
    );
    for path in [
        format!("/images/{id}"),
        format!("/images/{id}/download"),
        format!("/images/{id}/tuning-log"),
    ] {
        let r = bob.get(&path).expect(404);
        assert!(
            r.error().contains(&format!("no image {id}")),
            "{}",
            r.error()
        );
    }
    bob.call("DELETE", &format!("/images/{id}")).expect(404);

    // A wrong token gets nothing either.
    let wrong = s.as_bearer(&"0".repeat(64));
    wrong.get("/images").expect(401);
    wrong.get(&format!("/images/{id}")).expect(401);
    wrong
        .json("POST", &url, json!({"format": "qcow2"}))
        .expect(401);
    s.anonymous()
        .get(&format!("/images/{id}/download"))
        .expect(401);
    assert_eq!(image(&s, id)["status"], "queued");

    // The scan stays while images of it wait to be built.
    let r = admin.call("DELETE", &format!("/scans/{scan}")).expect(409);
    assert!(r.error().contains(&id.to_string()), "{}", r.error());

    // A queued job can be withdrawn.
    admin.call("DELETE", &format!("/images/{id}")).expect(204);
    admin.get(&format!("/images/{id}")).expect(404);
    admin.call("DELETE", &format!("/images/{id}")).expect(404);
    admin
        .call("DELETE", &format!("/images/{docker}"))
        .expect(204);
    admin.call("DELETE", &format!("/scans/{scan}")).expect(204);
}

fn failed_job_leaves_nothing(b: Backend) {
    let s = Server::start(b);
    let (scan, _root) = complete_scan(&s, "web01");
    // The package rebuilt from the overlay is the only place acme-tool can come from, and the
    // user registered no repository: remove it and nothing can supply the scan's packages.
    std::fs::remove_dir_all(s.data_dir.join("repos/admin")).unwrap();
    let id = queue(&s, scan, json!({"format": "qcow2", "target": "kvm"}));
    let job = wait_for_end(&s, id);

    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap().to_string();
    assert!(!error.trim().is_empty(), "{job}");
    assert!(!error.contains("database error"), "{error}");
    assert!(job["started_at"].is_string(), "{job}");
    assert!(job["finished_at"].is_string(), "{job}");
    assert!(job["finished_at"].as_str() >= job["started_at"].as_str());
    for k in ["size", "sha256", "download_url", "tuning_log_url"] {
        assert_eq!(job[k], Value::Null, "{k}: {job}");
    }
    let r = s.admin().get(&format!("/images/{id}/download")).expect(409);
    assert!(r.error().contains("failed"), "{}", r.error());
    assert!(r.error().contains(&error), "{}", r.error());
    s.admin()
        .get(&format!("/images/{id}/tuning-log"))
        .expect(409);
    let listed = s.admin().get("/images").expect(200).json();
    assert_eq!(listed, json!([job]));

    assert_eq!(
        count_files(&s.data_dir.join("images")),
        0,
        "a failed job left a file"
    );
    assert!(!s.data_dir.join(format!("images/{id}")).exists());
    assert!(!s.data_dir.join(format!("work/images/{id}")).exists());
    let log = s.log();
    assert!(log.contains("image job failed"), "{log}");

    // The reason is the build's own: the same build, run here on the same files, fails alike.
    let direct = build_directly(&s, scan, id, "web01.qcow2");
    assert_eq!(error, direct);

    // An ended job no longer holds its scan; its record outlives the scan.
    s.admin()
        .call("DELETE", &format!("/scans/{scan}"))
        .expect(204);
    let orphan = image(&s, id);
    assert_eq!(orphan["scan"], Value::Null);
    assert_eq!(orphan["machine"], Value::Null);
    assert_eq!(orphan["status"], "failed");
    s.admin()
        .call("DELETE", &format!("/images/{id}"))
        .expect(204);
    assert_eq!(s.admin().get("/images").expect(200).json(), json!([]));
}

/// A copy of the drifted fixture whose in-house package's postinst fails, scanned and taken to
/// `complete` against the mirror: its recreated package is what dpkg fails to configure.
fn failing_postinst_scan(s: &Server) -> (i64, Root) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(uforge_test_support::fixture("drifted"))
        .arg(&root)
        .status()
        .unwrap();
    assert!(copied.success());
    std::fs::write(
        root.join("var/lib/dpkg/info/acme-agent.postinst"),
        "#!/bin/sh\necho 'acme-agent: cannot register with https://monitor.example.invalid' >&2\n\
         exit 1\n",
    )
    .unwrap();
    let report = tmp.path().join("scan.ufr");
    uforge_core::scan::scan_to_report(
        &uforge_core::scan::ScanOptions::new(&root),
        &uforge_core::progress::NoProgress,
    )
    .unwrap()
    .save(&report)
    .unwrap();
    let root = Root { tmp, root, report };
    let admin = s.admin();
    let repo = admin
        .json(
            "POST",
            "/repos",
            json!({ "line": uforge_test_support::mirror_line() }),
        )
        .expect(201)
        .json();
    admin
        .call("POST", &format!("/repos/{}/sync", repo["id"]))
        .expect(200);
    let id = admin
        .json("POST", "/scans", json!({ "machine": "web01" }))
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    let analysis = admin
        .bytes(
            "POST",
            &format!("/scans/{id}/report"),
            &std::fs::read(&root.report).unwrap(),
        )
        .expect(200)
        .body;
    let overlay = root.overlay(&root.report, &analysis);
    let done = admin
        .stream("PUT", &format!("/scans/{id}/overlay"), &overlay[..])
        .expect(200)
        .json();
    assert_eq!(done["status"], "complete", "{done}");
    (id, root)
}

fn failed_job_keeps_its_log(b: Backend) {
    let s = Server::start(b);
    let (scan, _root) = failing_postinst_scan(&s);
    let id = queue(&s, scan, json!({"format": "tar.gz"}));
    let job = wait_for_end(&s, id);
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap().to_string();

    // The log is the whole output of mmdebstrap, dpkg's included, and ends with its last words.
    let path = s.data_dir.join(format!("logs/images/{id}.log"));
    assert!(
        error.ends_with(&format!(
            "the whole output of the failed step: {} (`uforge image log {id}`)",
            path.display()
        )),
        "{error}"
    );
    let served = s.admin().get(&format!("/images/{id}/log")).expect(200).body;
    assert_eq!(served, std::fs::read(&path).unwrap());
    let text = String::from_utf8_lossy(&served).into_owned();
    assert!(
        text.starts_with("$ mmdebstrap "),
        "{}",
        text.chars().take(300).collect::<String>()
    );
    assert!(text.contains("Unpacking acme-agent"), "{text}");
    for needle in [
        "acme-agent: cannot register with https://monitor.example.invalid",
        "dpkg: error processing package acme-agent",
    ] {
        assert!(text.contains(needle), "{needle} not in the log");
    }
    // dpkg's verdict is among the last lines, and the stored error keeps it whole.
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let last = lines[lines.len().saturating_sub(10)..].join("\n");
    let verdict = "Errors were encountered while processing:\n acme-agent";
    assert!(last.contains(verdict), "{last}");
    assert!(error.contains(verdict), "{error}");
    assert!(error.contains("E: mmdebstrap failed to run"), "{error}");

    // Only its owner sees it; it goes with the image.
    let bob = s.add_user("bob");
    s.as_basic("bob", &bob)
        .get(&format!("/images/{id}/log"))
        .expect(404);
    let mut through_client = Vec::new();
    let n = client(&s, None, &s.admin_token)
        .image_log(id, &mut through_client)
        .unwrap();
    assert_eq!(n as usize, served.len());
    assert_eq!(through_client, served);
    s.admin()
        .call("DELETE", &format!("/images/{id}"))
        .expect(204);
    assert!(!path.exists());
    s.admin().get(&format!("/images/{id}/log")).expect(404);
}

/// Runs the library's build of a qcow2 for KVM from the scan's stored files, with the paths
/// the server gave job `id` and no repositories, and returns its error; clears what it left.
fn build_directly(s: &Server, scan: i64, id: i64, file: &str) -> String {
    use uforge_core::image::{build, BuildSpec, Format, NetworkPolicy, Target};
    use uforge_core::repo::Sources;
    let blobs = uforge_core::blobstore::LocalBlobStore::open(s.data_dir.join("blobs")).unwrap();
    let (work, dir) = (
        s.data_dir.join(format!("work/images/{id}")),
        s.data_dir.join(format!("images/{id}")),
    );
    std::fs::create_dir_all(&dir).unwrap();
    let sources = Sources {
        cache_dir: Some(s.data_dir.join("cache")),
        ..Sources::default()
    };
    let result = build(
        &BuildSpec {
            report: &s.data_dir.join(format!("reports/{scan}.ufr")),
            blobs: &blobs,
            sources: &sources,
            format: Format::Qcow2,
            target: Some(Target::Kvm),
            network: NetworkPolicy::Keep,
            work_dir: &work,
            output: &dir.join(file),
            extra_outputs: Vec::new(),
            allow_upgrades: false,
        },
        &uforge_core::progress::NoProgress,
    );
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&dir);
    uforge_core::error::chain(&result.expect_err("the build succeeded without any repository"))
}

/// A client of the server for `user`, through the client library.
fn client(s: &Server, user: Option<&str>, token: &str) -> Client {
    Client::new(
        s.url.trim_end_matches("/api/v1"),
        &Credentials {
            user: user.map(str::to_string),
            token: token.to_string(),
        },
        &TlsOptions {
            cacert: Some(s.data_dir.join("tls/cert.pem")),
            insecure: false,
        },
    )
    .unwrap()
}

fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Makes a queued job look the way a successful build leaves it: its row done, its file in
/// place. The build itself is exercised elsewhere; this is about serving its result.
fn pretend_built(s: &Server, id: i64, file: &str, data: &[u8], tuning_log: &Value) {
    let dir = s.data_dir.join(format!("images/{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), data).unwrap();
    let (now, _) = s.sql_now();
    let log = tuning_log.to_string().replace('\'', "''");
    s.sql(&format!(
        "UPDATE images SET status = 'done', phase = 'write', file = '{file}', size = {}, \
         sha256 = '{}', tuning_log = '{log}', worker = 'elsewhere/0/1/0', started_at = {now}, \
         heartbeat_at = {now}, finished_at = {now} WHERE id = {id}",
        data.len(),
        hex_sha256(data)
    ));
}

/// A client's typed answer as the JSON the server sent.
fn v(answer: impl serde::Serialize) -> Value {
    serde_json::to_value(answer).unwrap()
}

/// What a download reported.
#[derive(Default)]
struct Received {
    phases: std::sync::Mutex<Vec<(String, Option<u64>)>>,
    bytes: AtomicU64,
    calls: AtomicU64,
}

impl uforge_core::progress::Progress for Received {
    fn phase(&self, name: &str, total: Option<u64>) {
        self.phases.lock().unwrap().push((name.to_string(), total));
    }
    fn advance(&self, _files: u64, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

fn finished_image_is_served(b: Backend) {
    let s = Server::start_with(
        b,
        Options {
            image_workers: Some(0),
            ..Options::default()
        },
    );
    let (scan, _root) = complete_scan(&s, "web01");
    let alice = client(&s, None, &s.admin_token.clone());

    let err = alice.create_image(scan, "floppy", None, None).unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.to_string().contains("floppy"), "{err}");

    let job = v(alice
        .create_image(scan, "qcow2", Some("openstack"), Some("dhcp"))
        .unwrap());
    let id = job["id"].as_i64().unwrap();
    assert_eq!(job["target"], "openstack");
    assert_eq!(job["network"], "dhcp");
    assert_eq!(v(alice.image(id).unwrap()), job);
    assert_eq!(ids(&v(alice.list_images(Some(scan)).unwrap())), [id]);
    assert_eq!(v(alice.list_images(Some(scan + 1000)).unwrap()), json!([]));

    // Not done: the download is refused and leaves no file, finished or partial.
    let out = s.tmp.path().join("web01.qcow2");
    let partial = s.tmp.path().join("web01.qcow2.partial");
    let err = alice.download_image(id, &out).unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    assert!(!out.exists() && !partial.exists());
    assert_eq!(alice.tuning_log(id).unwrap_err().status(), Some(409));

    // Another user's client gets 404s.
    let bob_token = s.add_user("bob");
    let bob = client(&s, Some("bob"), &bob_token);
    assert_eq!(bob.image(id).unwrap_err().status(), Some(404));
    assert_eq!(
        bob.download_image(id, &out).unwrap_err().status(),
        Some(404)
    );
    assert_eq!(bob.delete_image(id).unwrap_err().status(), Some(404));
    assert!(!out.exists() && !partial.exists());

    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let tuning = json!({"format": "qcow2", "target": "openstack", "steps": [
        {"name": "network", "description": "DHCP on every interface", "changes": []}
    ]});
    pretend_built(&s, id, "web01.qcow2", &data, &tuning);

    let job = v(alice.image(id).unwrap());
    assert_eq!(job["status"], "done");
    assert_eq!(job["progress"]["percent"], 100);
    assert_eq!(job["size"], data.len());
    assert_eq!(job["file"], "web01.qcow2");
    assert_eq!(
        job["download_url"],
        format!("/api/v1/images/{id}/download").as_str()
    );
    assert_eq!(v(alice.tuning_log(id).unwrap()), tuning);

    // Streamed with its length and a file name.
    let r = s.admin().get(&format!("/images/{id}/download")).expect(200);
    assert_eq!(r.body, data);
    assert!(r.content_type.starts_with("application/octet-stream"));
    assert_eq!(r.content_length, Some(data.len() as u64));
    assert_eq!(
        r.content_disposition.as_deref(),
        Some("attachment; filename=\"web01.qcow2\"")
    );

    let seen = Received::default();
    let n = alice.download_image_with(id, &out, &seen).unwrap();
    assert_eq!(n, data.len() as u64);
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert!(!partial.exists());
    // The download reports its size first and the bytes as they come, chunk by chunk.
    let phases = seen.phases.lock().unwrap().clone();
    assert_eq!(phases, [("download".to_string(), Some(data.len() as u64))]);
    assert_eq!(seen.bytes.load(Ordering::Relaxed), data.len() as u64);
    assert!(seen.calls.load(Ordering::Relaxed) >= 2);

    // On the server's host and filesystem, a link instead of a second copy.
    {
        use std::os::unix::fs::MetadataExt;
        let stored = s.data_dir.join(format!("images/{id}/web01.qcow2"));
        let linked = s.tmp.path().join("linked.qcow2");
        let how = alice.link_image(id, &linked).unwrap();
        assert_eq!(std::fs::read(&linked).unwrap(), data);
        let (a, b) = (
            std::fs::metadata(&stored).unwrap(),
            std::fs::metadata(&linked).unwrap(),
        );
        match how {
            uforge_client::Linked::HardLink => assert_eq!(a.ino(), b.ino()),
            uforge_client::Linked::Reflink => assert_ne!(a.ino(), b.ino()),
        }
        // An existing file is never replaced; another filesystem cannot hold a link.
        let err = alice.link_image(id, &linked).unwrap_err().to_string();
        assert!(err.contains("linked.qcow2"), "{err}");
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let err = alice
            .link_image(id, &shm.path().join("x.qcow2"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("another filesystem"), "{err}");
        assert!(err.contains("without --link"), "{err}");
        assert!(!shm.path().join("x.qcow2").exists());
        // Another user learns nothing of where it is.
        let elsewhere = s.tmp.path().join("elsewhere.qcow2");
        let err = bob.link_image(id, &elsewhere).unwrap_err();
        assert_eq!(err.status(), Some(404), "{err}");
        assert!(!elsewhere.exists());
        std::fs::remove_file(&linked).unwrap();
    }

    // The file on the server is shorter than the job says: the download is not kept.
    let short = s.data_dir.join(format!("images/{id}/web01.qcow2"));
    std::fs::write(&short, &data[..1000]).unwrap();
    let cut = s.tmp.path().join("cut.qcow2");
    let err = alice.download_image(id, &cut).unwrap_err();
    assert!(err.to_string().contains("1000 bytes"), "{err}");
    assert!(!cut.exists(), "a short download was kept");
    assert!(!Path::new(&format!("{}.partial", cut.display())).exists());

    // Deleting the job removes its file.
    alice.delete_image(id).unwrap();
    assert!(!s.data_dir.join(format!("images/{id}")).exists());
    assert_eq!(alice.image(id).unwrap_err().status(), Some(404));
}

fn restart_fails_jobs_of_dead_servers(b: Backend) {
    let mut s = Server::start(b);
    let (scan, _root) = complete_scan(&s, "web01");
    let dead = queue(&s, scan, json!({"format": "qcow2"}));
    let remote = queue(&s, scan, json!({"format": "vmdk"}));
    let silent = queue(&s, scan, json!({"format": "raw"}));
    // Let the server's worker claim and finish each, so that the first row names the worker
    // that ran it; then the server dies.
    for id in [dead, remote, silent] {
        wait_for_end(&s, id);
    }
    assert_eq!(image(&s, dead)["status"], "failed");
    s.kill();

    // As a killed server leaves them: the first still held by the dead process's worker,
    // the second held by a live process on another machine, the third by another machine
    // that stopped sending heartbeats an hour ago.
    let (now, hour_ago) = s.sql_now();
    s.sql(&format!(
        "UPDATE images SET status = 'running', phase = 'install', error = NULL, \
         finished_at = NULL WHERE id = {dead};
         UPDATE images SET status = 'running', phase = 'tune', error = NULL, finished_at = NULL, \
         worker = 'elsewhere/0/1/0', heartbeat_at = {now} WHERE id = {remote};
         UPDATE images SET status = 'running', phase = 'write', error = NULL, finished_at = NULL, \
         worker = 'elsewhere/0/2/0', heartbeat_at = {hour_ago} WHERE id = {silent};"
    ));
    for id in [dead, remote] {
        let work = s.data_dir.join(format!("work/images/{id}/root/etc"));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(work.join("hostname"), "web01\n").unwrap();
    }
    let partial = s
        .data_dir
        .join(format!("images/{dead}/web01.qcow2.partial"));
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, b"half an image").unwrap();

    s.restart(Options::default());

    let d = image(&s, dead);
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["error"], "interrupted: server restarted");
    assert_eq!(d["phase"], "install", "the phase it was interrupted in");
    assert!(d["finished_at"].is_string());
    assert!(!s.data_dir.join(format!("work/images/{dead}")).exists());
    assert!(!s.data_dir.join(format!("images/{dead}")).exists());

    let q = image(&s, silent);
    assert_eq!(q["status"], "failed", "{q}");
    assert!(q["error"].as_str().unwrap().contains("no heartbeat"), "{q}");

    // A job another live server is building is left alone, with its scratch space, and it
    // cannot be deleted under that server.
    let r = image(&s, remote);
    assert_eq!(r["status"], "running", "{r}");
    assert_eq!(r["error"], Value::Null);
    assert!(s
        .data_dir
        .join(format!("work/images/{remote}/root/etc/hostname"))
        .exists());
    let del = s
        .admin()
        .call("DELETE", &format!("/images/{remote}"))
        .expect(409);
    assert!(del.error().contains("being built"), "{}", del.error());
    s.admin()
        .get(&format!("/images/{remote}/download"))
        .expect(409);
    s.admin()
        .call("DELETE", &format!("/scans/{scan}"))
        .expect(409);
    let log = s.log();
    assert!(log.contains("marked failed"), "{log}");
}

/// The ids of the jobs a server's log says it started, in order.
fn started_jobs(log: &str) -> Vec<i64> {
    log.lines()
        .filter(|l| l.contains("image job started"))
        .filter_map(|l| {
            l.split(" image=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn servers_share_the_queue(b: Backend) {
    let two = Options {
        image_workers: Some(2),
        ..Options::default()
    };
    let a = Server::start_with(b, two.clone());
    let (scan, _root) = complete_scan(&a, "web01");
    let b2 = a.another_process(two);
    let mut jobs = Vec::new();
    for n in 0..16 {
        let s = if n % 2 == 0 { &a } else { &b2 };
        jobs.push(queue(s, scan, json!({"format": "raw"})));
    }
    for id in &jobs {
        let end = wait_for_end(&a, *id);
        let error = end["error"].as_str().unwrap_or_default();
        assert!(
            !error.starts_with("interrupted"),
            "a live server's job was reaped: {end}"
        );
    }
    // Each job was claimed by exactly one worker of the two processes.
    let mut started = started_jobs(&a.log());
    started.extend(started_jobs(&b2.log()));
    started.sort_unstable();
    assert_eq!(started, jobs, "{}\n{}", a.log(), b2.log());
}
