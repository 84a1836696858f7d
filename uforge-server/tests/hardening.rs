//! What a hostile scanned machine or user sends: malformed reports, decompression bombs, local
//! repositories, unauthenticated uploads, racing scan creations; and what the server keeps
//! private or cleans after a crash.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uforge_core::model::{FileEntry, FileKind, ReportHeader, ReportTrailer};
use uforge_core::report::json::JsonWriter;
use uforge_core::report::native::{NativeWriter, MAGIC};
use uforge_core::report::ReportSink;

use crate::on_both_databases;
use crate::util::roots::small_root;
use crate::util::{count_files, Backend, Options, Server};

on_both_databases!(
    malformed_reports_name_the_entry,
    decompression_is_bounded,
    local_repositories_need_an_admin,
    concurrent_scan_creation_gives_one_scan
);

fn new_scan(s: &Server, machine: &str) -> i64 {
    s.admin()
        .json("POST", "/scans", json!({ "machine": machine }))
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap()
}

fn entry(path: &[u8], kind: FileKind, target: Option<&[u8]>) -> FileEntry {
    FileEntry {
        path: path.to_vec(),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        user: None,
        group: None,
        size: 0,
        mtime: 0,
        mtime_nsec: 0,
        sha256: None,
        target: target.map(<[u8]>::to_vec),
        rdev: None,
        xattrs: Default::default(),
        package: None,
        allocated: 0,
    }
}

fn native(header: &ReportHeader, files: &[FileEntry]) -> Vec<u8> {
    let mut w = NativeWriter::new(Vec::new(), "test".into()).unwrap();
    w.header(header).unwrap();
    for f in files {
        w.file(f).unwrap();
    }
    w.trailer(&ReportTrailer::default()).unwrap();
    w.into_inner().unwrap()
}

fn malformed_reports_name_the_entry(b: Backend) {
    let s = Server::start(b);
    let id = new_scan(&s, "evil01");
    let url = format!("/scans/{id}/report");
    let h = ReportHeader::default();
    let dir = |p: &[u8]| entry(p, FileKind::Dir, None);
    let long = [b"/".as_slice(), &[b'a'; 5000]].concat();
    let cases: Vec<(Vec<FileEntry>, &str)> = vec![
        (vec![dir(b"etc")], "entry \"etc\": not absolute"),
        (
            vec![dir(b"/srv/../etc")],
            "entry \"/srv/../etc\": a `..` component",
        ),
        (
            vec![dir(b"/srv/./x")],
            "entry \"/srv/./x\": a `.` component",
        ),
        (
            vec![dir(b"/srv//x")],
            "entry \"/srv//x\": an empty component",
        ),
        (vec![dir(b"/srv/x/")], "an empty component"),
        (vec![dir(b"/srv/a\0b")], "contains a NUL byte"),
        (vec![dir(&long)], "5001 bytes, more than the 4096 allowed"),
        (
            vec![dir(b"/srv"), dir(b"/etc")],
            "entry \"/etc\": out of order: it comes after \"/srv\"",
        ),
        (
            vec![dir(b"/srv"), dir(b"/srv")],
            "entry \"/srv\": listed twice",
        ),
        (
            vec![entry(b"/x", FileKind::Hardlink, Some(b"/../../etc/shadow"))],
            "entry \"/x\": hard link target \"/../../etc/shadow\": a `..` component",
        ),
        (
            vec![entry(b"/x", FileKind::Hardlink, Some(b"/etc/shadow"))],
            "hard link to \"/etc/shadow\", which is not an earlier regular file",
        ),
        (
            vec![entry(b"/x", FileKind::Symlink, Some(&[b'a'; 5000][..]))],
            "entry \"/x\": symlink target",
        ),
    ];
    for (files, needle) in &cases {
        let r = s
            .admin()
            .bytes("POST", &url, &native(&h, files))
            .expect(400);
        assert!(
            r.error().contains(needle),
            "{needle:?} not in {}",
            r.error()
        );
    }
    let mut facts = ReportHeader::default();
    facts.machine.hostname = Some("h".repeat(10_000));
    let r = s
        .admin()
        .bytes("POST", &url, &native(&facts, &[dir(b"/")]))
        .expect(400);
    assert!(
        r.error().contains("machine.hostname: 10000 bytes"),
        "{}",
        r.error()
    );
    // The JSON form is held to the same rules.
    let mut json_report = Vec::new();
    let mut w = JsonWriter::new(&mut json_report, "test".into());
    w.header(&h).unwrap();
    w.file(&dir(b"/srv/../etc")).unwrap();
    w.trailer(&ReportTrailer::default()).unwrap();
    drop(w);
    let r = s.admin().bytes("POST", &url, &json_report).expect(400);
    assert!(r.error().contains("entry \"/srv/../etc\""), "{}", r.error());

    assert_eq!(
        count_files(&s.data_dir.join("reports")),
        0,
        "a bad report was kept"
    );
    let st = s.admin().get(&format!("/scans/{id}")).expect(200).json();
    assert_eq!(st["status"], "created");
}

/// The first record of a native report (the header), as its bytes with their length prefix.
fn header_record(report: &[u8]) -> Vec<u8> {
    let mut dec = zstd::Decoder::new(&report[MAGIC.len()..]).unwrap();
    let mut len = [0u8; 4];
    dec.read_exact(&mut len).unwrap();
    let mut rec = vec![0u8; u32::from_le_bytes(len) as usize];
    dec.read_exact(&mut rec).unwrap();
    [len.to_vec(), rec].concat()
}

/// Peak resident memory of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

fn decompression_is_bounded(b: Backend) {
    let s = Server::start_with(
        b,
        Options {
            max_report_entries: Some(50),
            max_report_expanded: Some(64 << 10),
            ..Options::default()
        },
    );
    let root = small_root();
    let report = std::fs::read(&root.report).unwrap();
    let header = header_record(&report);

    // Five file records of 200 MB each (a path of 200 MB), in a few KB: the reader stops at
    // the first record's length.
    let mut bomb = MAGIC.to_vec();
    let mut enc = zstd::Encoder::new(Vec::new(), 19).unwrap();
    enc.write_all(&header).unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..5 {
        let path_len: u32 = 200 << 20;
        enc.write_all(&(path_len + 8).to_le_bytes()).unwrap();
        // Record::File, then the path's varint length and bytes.
        enc.write_all(&[1, 0x80, 0x80, 0x80, 0x64]).unwrap();
        for _ in 0..200 {
            enc.write_all(&chunk).unwrap();
        }
    }
    bomb.extend(enc.finish().unwrap());
    assert!(bomb.len() < 200_000, "the bomb is {} bytes", bomb.len());
    let id = new_scan(&s, "bomb01");
    let url = format!("/scans/{id}/report");
    let start = Instant::now();
    let r = s.admin().bytes("POST", &url, &bomb).expect(413);
    assert!(
        r.error().contains("a file record of 209715208 bytes"),
        "{}",
        r.error()
    );
    assert!(start.elapsed() < Duration::from_secs(20));
    let rss = peak_rss(s.pid());
    assert!(rss < 150 << 20, "the server's peak RSS reached {rss} bytes");

    // Entries and decoded bytes as a whole, past the server's configured limits.
    let dirs: Vec<FileEntry> = (0..51)
        .map(|i| entry(format!("/d{i:03}").as_bytes(), FileKind::Dir, None))
        .collect();
    let r = s
        .admin()
        .bytes("POST", &url, &native(&ReportHeader::default(), &dirs))
        .expect(413);
    assert!(r.error().contains("more than 50 entries"), "{}", r.error());
    let big = ReportHeader {
        packages: (0..4000)
            .map(|i| uforge_core::model::Package {
                name: format!("package-with-a-long-name-{i}"),
                version: "1.0".into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let r = s
        .admin()
        .bytes("POST", &url, &native(&big, &[]))
        .expect(413);
    assert!(
        r.error().contains("decompresses to more than 65536 bytes"),
        "{}",
        r.error()
    );
    let mut json_big = Vec::new();
    let mut w = JsonWriter::new(&mut json_big, "test".into());
    w.header(&big).unwrap();
    w.trailer(&ReportTrailer::default()).unwrap();
    drop(w);
    let r = s.admin().bytes("POST", &url, &json_big).expect(413);
    assert!(
        r.error().contains("more than 65536 bytes of JSON"),
        "{}",
        r.error()
    );
    assert_eq!(count_files(&s.data_dir.join("reports")), 0);
}

fn local_repositories_need_an_admin(b: Backend) {
    let mut s = Server::start(b);
    let bob = s.add_user("bob");
    let flat = tempfile::tempdir().unwrap();
    std::fs::write(flat.path().join("Packages"), "").unwrap();
    let file_line = format!("deb [trusted=yes] file:{} ./", flat.path().display());
    let other_users = format!(
        "deb [trusted=yes] file:{}/repos/admin ./",
        s.data_dir.display()
    );
    for (line, needle) in [
        (file_line.as_str(), "file: repositories"),
        (other_users.as_str(), "file: repositories"),
        ("deb [trusted=yes] copy:/etc ./", "copy: repositories"),
        (
            "deb http://127.0.0.1:9/debian bookworm main",
            "127.0.0.1, a loopback address",
        ),
        (
            "deb http://localhost/debian bookworm main",
            "a loopback address",
        ),
        (
            "deb http://169.254.169.254/latest bookworm main",
            "a link-local address",
        ),
        ("deb http://[::1]:8443/x bookworm main", "loopback"),
        (
            "deb http://10.0.0.1/debian bookworm main",
            "a private address",
        ),
    ] {
        let r = s
            .as_bearer(&bob)
            .json("POST", "/repos", json!({ "line": line }))
            .expect(403);
        assert!(r.error().contains(needle), "{line}: {}", r.error());
    }
    assert_eq!(
        s.as_bearer(&bob).get("/repos").expect(200).json(),
        json!([])
    );
    // A public host is anyone's to use; a local one is the administrator's.
    s.as_bearer(&bob)
        .json(
            "POST",
            "/repos",
            json!({"line": "deb http://203.0.113.9/debian bookworm main"}),
        )
        .expect(201);
    s.admin()
        .json("POST", "/repos", json!({ "line": file_line }))
        .expect(201);

    // With --allow-local-repos anyone may; once the server runs without it, fetching the
    // line is refused again (the check is repeated at each fetch).
    s.restart(Options {
        allow_local_repos: true,
        ..Options::default()
    });
    let repo = s
        .as_bearer(&bob)
        .json("POST", "/repos", json!({ "line": file_line }))
        .expect(201)
        .json();
    let rid = repo["id"].as_i64().unwrap();
    s.as_bearer(&bob)
        .call("POST", &format!("/repos/{rid}/sync"))
        .expect(200);
    s.restart(Options::default());
    let r = s
        .as_bearer(&bob)
        .call("POST", &format!("/repos/{rid}/sync"))
        .expect(403);
    assert!(r.error().contains("file: repositories"), "{}", r.error());
    let root = small_root();
    let id = s
        .as_bearer(&bob)
        .json("POST", "/scans", json!({"machine": "m"}))
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    let r = s
        .as_bearer(&bob)
        .bytes(
            "POST",
            &format!("/scans/{id}/report"),
            &std::fs::read(&root.report).unwrap(),
        )
        .expect(403);
    assert!(r.error().contains(&file_line), "{}", r.error());
    s.admin().call("POST", "/repos/2/sync").expect(200);
}

fn concurrent_scan_creation_gives_one_scan(b: Backend) {
    let s = Server::start(b);
    let ids: Vec<Value> = std::thread::scope(|t| {
        let calls: Vec<_> = (0..20)
            .map(|_| {
                t.spawn(|| {
                    s.admin()
                        .json("POST", "/scans", json!({"machine": "race01"}))
                        .expect(201)
                        .json()["id"]
                        .clone()
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    let scans = s.admin().get("/scans?machine=race01").expect(200).json();
    assert_eq!(scans.as_array().unwrap().len(), 1, "{scans}");
}

fn modes(dir: &Path, out: &mut Vec<(String, u32)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        if m.file_type().is_symlink() {
            continue;
        }
        out.push((
            e.path().display().to_string(),
            m.permissions().mode() & 0o7777,
        ));
        if m.is_dir() {
            modes(&e.path(), out);
        }
    }
}

/// Modes under the data directory (its scratch space apart) that give anyone else access.
fn not_private(data: &Path) -> Vec<(String, u32)> {
    let mut all = Vec::new();
    modes(data, &mut all);
    all.retain(|(p, m)| !p.contains("/work/") && m & 0o077 != 0);
    all
}

#[test]
fn stored_data_is_private() {
    let mut s = Server::start(Backend::Sqlite);
    let root = small_root();
    let id = new_scan(&s, "web01");
    let analysis = s
        .admin()
        .bytes(
            "POST",
            &format!("/scans/{id}/report"),
            &std::fs::read(&root.report).unwrap(),
        )
        .expect(200)
        .body;
    let overlay = root.overlay(&root.report, &analysis);
    let done = s
        .admin()
        .bytes("PUT", &format!("/scans/{id}/overlay"), &overlay)
        .expect(200)
        .json();
    assert_eq!(done["recreated"].as_array().unwrap().len(), 1, "{done}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&s.data_dir), 0o700);
    assert!(s.blob_count() > 0);
    assert_eq!(not_private(&s.data_dir), []);

    // What an older version stored readable by all is made private at start.
    let blob = s.data_dir.join("blobs/sha256");
    let first = std::fs::read_dir(&blob)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::set_permissions(&first, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&s.data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let old_image = s.data_dir.join("images/old.qcow2");
    std::fs::write(&old_image, b"image").unwrap();
    std::fs::set_permissions(&old_image, std::fs::Permissions::from_mode(0o644)).unwrap();
    let report = s.data_dir.join(format!("reports/{id}.ufr"));
    std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(!not_private(&s.data_dir).is_empty());
    s.restart(Options::default());
    assert_eq!(not_private(&s.data_dir), []);
    assert_eq!(mode(&old_image), 0o600);
    assert_eq!(mode(&report), 0o600);
    assert_eq!(mode(&s.data_dir), 0o700);
}

/// A body that sends `first` bytes of `data`, then waits until `release` is set.
struct Stalling {
    data: Vec<u8>,
    at: usize,
    first: usize,
    release: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Read for Stalling {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at >= self.first && !self.release.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let end = self.data.len().min(self.at + buf.len().min(64 << 10));
        let end = if self.at < self.first {
            end.min(self.first)
        } else {
            end
        };
        let n = end - self.at;
        buf[..n].copy_from_slice(&self.data[self.at..end]);
        self.at = end;
        Ok(n)
    }
}

#[test]
fn staging_of_a_dead_server_is_removed() {
    let mut s = Server::start(Backend::Sqlite);
    let root = small_root();
    let id = new_scan(&s, "web01");
    let analysis = s
        .admin()
        .bytes(
            "POST",
            &format!("/scans/{id}/report"),
            &std::fs::read(&root.report).unwrap(),
        )
        .expect(200)
        .body;
    let overlay = root.overlay(&root.report, &analysis);
    let release = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let body = Stalling {
        first: overlay.len() * 3 / 4,
        data: overlay,
        at: 0,
        release: release.clone(),
    };
    let agent = s.agent();
    let url = format!("{}/scans/{id}/overlay", s.url);
    let token = s.admin_token.clone();
    let upload = std::thread::spawn(move || {
        let _ = agent
            .put(&url)
            .set("Authorization", &format!("Bearer {token}"))
            .send(body);
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.staged_count() == 0 {
        assert!(Instant::now() < deadline, "nothing was staged");
        std::thread::sleep(Duration::from_millis(50));
    }
    s.kill();
    release.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = upload.join();
    assert!(s.staged_count() > 0);
    s.restart(Options::default());
    assert_eq!(s.staged_count(), 0, "staging left by the dead server");
    assert_eq!(count_files(&s.data_dir.join("blobs/staging")), 0);
    assert!(s.log().contains("removed blob staging"), "{}", s.log());
}

/// Reads an HTTP answer's head and as much body as arrives before `until` shows up.
fn read_answer(tls: &mut impl Read, until: &[u8]) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(until.len()).any(|w| w == until) {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no answer: {e}; got {}", String::from_utf8_lossy(&got)),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn unauthenticated_bodies_are_not_read() {
    let s = Server::start(Backend::Sqlite);
    // A terabyte announced, a kilobyte sent: the 401 comes at once, and the server closes
    // the connection instead of waiting for the rest.
    let mut tls = s.tls_stream();
    write!(
        tls,
        "PUT /api/v1/scans/1/overlay HTTP/1.1\r\nHost: uforge\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 1099511627776\r\n\r\n",
        "0".repeat(64)
    )
    .unwrap();
    tls.write_all(&[0u8; 1024]).unwrap();
    tls.flush().unwrap();
    let start = Instant::now();
    let answer = read_answer(&mut tls, b"token");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(start.elapsed() < Duration::from_secs(10));
    // The read ends with the connection (the read timeout is 30 s).
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "the server kept the connection open, waiting for the body"
    );

    // Limits come before authentication: an oversized body is refused unread, whoever sends it.
    for (method, path, len) in [
        ("POST", "/api/v1/repos", 2u64 << 20),
        ("POST", "/api/v1/scans/1/report", 2u64 << 30),
    ] {
        let mut tls = s.tls_stream();
        write!(
            tls,
            "{method} {path} HTTP/1.1\r\nHost: uforge\r\nContent-Length: {len}\r\n\r\n"
        )
        .unwrap();
        tls.flush().unwrap();
        let answer = read_answer(&mut tls, b"limit");
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains(&format!("body of {len} bytes")), "{answer}");
    }
    // An authenticated client still gets its error answer after sending its whole upload.
    let upload = vec![7u8; 8 << 20];
    s.admin()
        .stream("PUT", "/scans/999/overlay", &upload[..])
        .expect(404);
}

/// Owner, mode, content and neighbours of a host file the attack aims at.
fn host_state(canary: &Path) -> (u32, u32, u32, Vec<u8>, usize) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(canary).unwrap();
    let names = std::fs::read_dir(canary.parent().unwrap()).unwrap().count();
    (
        m.uid(),
        m.gid(),
        m.mode() & 0o7777,
        std::fs::read(canary).unwrap(),
        names,
    )
}

/// Scans `root` (an agent's machine), lets `edit` make its report hostile, adds a real bookworm
/// package set so that the install runs as for any machine, uploads the report and a matching
/// overlay through the API, and runs a tar.gz image job of it to its end.
fn hostile_image_job(
    s: &Server,
    root: &crate::util::roots::Root,
    machine: &str,
    edit: impl FnOnce(&mut uforge_core::model::Report),
) -> Value {
    use uforge_core::model::Report;
    let scanned = root.rescan(&format!("{machine}.ufr"));
    let mut report = Report::load(&scanned).unwrap();
    // A real bookworm package set, from the mirror, so that the install before the reconcile
    // runs as for any machine.
    let fixture = uforge_test_support::fixtures::fixture("drifted");
    let base = uforge_core::scan::scan_to_report(
        &uforge_core::scan::ScanOptions::new(&fixture),
        &uforge_core::progress::NoProgress,
    )
    .unwrap();
    report.header.packages.extend(
        base.header
            .packages
            .into_iter()
            .filter(|p| p.name != "acme-agent"),
    );
    report.header.packages.sort_by(|a, b| a.name.cmp(&b.name));
    edit(&mut report);
    let hostile = root.tmp.path().join(format!("{machine}-hostile.ufr"));
    report.save(&hostile).unwrap();

    let repo = s
        .admin()
        .json(
            "POST",
            "/repos",
            json!({ "line": uforge_test_support::mirror_line() }),
        )
        .expect(201)
        .json();
    s.admin()
        .call("POST", &format!("/repos/{}/sync", repo["id"]))
        .expect(200);
    let id = new_scan(s, machine);
    let analysis = s
        .admin()
        .bytes(
            "POST",
            &format!("/scans/{id}/report"),
            &std::fs::read(&hostile).unwrap(),
        )
        .expect(200)
        .body;
    let overlay = root.overlay(&hostile, &analysis);
    let done = s
        .admin()
        .stream("PUT", &format!("/scans/{id}/overlay"), &overlay[..])
        .expect(200)
        .json();
    assert_eq!(done["status"], "complete", "{done}");

    let job = s
        .admin()
        .json(
            "POST",
            &format!("/scans/{id}/images"),
            json!({"format": "tar.gz"}),
        )
        .expect(202)
        .json();
    let image = job["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    let job = loop {
        let v = s
            .admin()
            .get(&format!("/images/{image}"))
            .expect(200)
            .json();
        if v["status"] == "done" || v["status"] == "failed" {
            break v;
        }
        assert!(Instant::now() < deadline, "{v}\n{}", s.log());
        std::thread::sleep(Duration::from_millis(250));
    };
    job
}

/// The attack of a hostile agent through the API: its report lists `/srv/evil` as a symlink to
/// a host directory and then a file below it, and its overlay (matching that report) carries
/// both. The image job fails naming the entry, and the host directory is untouched.
#[test]
fn an_overlay_cannot_write_through_a_symlink_out_of_the_build() {
    let s = Server::start(Backend::Sqlite);
    let host = tempfile::tempdir_in("/var/tmp").unwrap();
    let canary = host.path().join("canary");
    std::fs::write(&canary, b"host secret\n").unwrap();
    std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o600)).unwrap();
    let before = host_state(&canary);

    // The attacker's machine: `/srv/evil` is a directory when the overlay is read, a symlink
    // to the server's host directory in the report sent.
    let root = small_root();
    std::fs::write(
        root.root.join("etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.root.join("srv/evil")).unwrap();
    std::fs::write(root.root.join("srv/evil/pwned.txt"), b"owned\n").unwrap();
    std::fs::set_permissions(
        root.root.join("srv/evil/pwned.txt"),
        std::fs::Permissions::from_mode(0o4777),
    )
    .unwrap();
    let target = std::os::unix::ffi::OsStrExt::as_bytes(host.path().as_os_str()).to_vec();
    let job = hostile_image_job(&s, &root, "evil01", |report| {
        let evil = report
            .files
            .iter_mut()
            .find(|e| e.path == b"/srv/evil")
            .unwrap();
        evil.kind = FileKind::Symlink;
        evil.mode = 0o777;
        evil.size = target.len() as u64;
        evil.target = Some(target);
    });
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("/srv/evil/pwned.txt"), "{error}");
    assert!(error.contains("/srv/evil is a symbolic link"), "{error}");
    assert_eq!(host_state(&canary), before, "the host directory changed");
    assert!(!host.path().join("pwned.txt").exists());
    assert_eq!(count_files(&s.data_dir.join("images")), 0);
}

/// A hostile machine whose `/run` is a link to a directory of the server's host: tuning mounts a
/// tmpfs on the image's `/run`, and mount(8) would follow the link out of the build. The job
/// fails naming `/run`, and nothing is ever mounted over the host directory.
#[test]
fn a_run_link_cannot_put_a_mount_over_the_host() {
    let s = Server::start(Backend::Sqlite);
    let host = tempfile::tempdir_in("/var/tmp").unwrap();
    let canary = host.path().join("canary");
    std::fs::write(&canary, b"host secret\n").unwrap();
    let before = host_state(&canary);
    let root = small_root();
    std::fs::write(
        root.root.join("etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(root.root.join("run"));
    std::os::unix::fs::symlink(host.path(), root.root.join("run")).unwrap();
    let job = hostile_image_job(&s, &root, "evil02", |_| {});
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("/run") && error.contains("symbolic link"),
        "{error}"
    );
    assert_eq!(host_state(&canary), before, "the host directory changed");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(host.path().to_str().unwrap()),
        "a mount over the host directory: {mounts}"
    );
    assert_eq!(count_files(&s.data_dir.join("images")), 0);
}
