//! The live five-step scan: the real `uforge-scan run` agent against a real `uforge-server`
//! over TLS on loopback, with the drifted Debian root, on SQLite and on PostgreSQL.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// A scratch directory outside /tmp: the agent runs with a private, empty /tmp.
pub fn outside_tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("uforge-live-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

/// The server binary, built by the same `cargo test --workspace` run (or built here).
pub fn server_bin() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_uforge-scan"))
        .parent()
        .unwrap()
        .to_path_buf();
    let bin = dir.join("uforge-server");
    if !bin.exists() {
        run_ok(
            Command::new(env!("CARGO"))
                .args(["build", "-q", "-p", "uforge-server"])
                .current_dir(repo()),
        );
    }
    bin
}

/// A running server on an ephemeral port, stopped when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    data: tempfile::TempDir,
    db: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn start(db: Option<String>) -> Server {
        let data = outside_tmp();
        let mut cmd = Command::new(server_bin());
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data.path())
            .args(["--listen", "127.0.0.1:0"]);
        if let Some(url) = &db {
            cmd.arg("--database-url").arg(url);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut url = None;
        while url.is_none() && Instant::now() < deadline {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(u) = line.split_whitespace().find(|w| w.starts_with("https://")) {
                url = Some(u.trim_end_matches('/').to_string());
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let url = url.expect("the server printed its URL");
        Server {
            child,
            url,
            data,
            db,
        }
    }

    fn cacert(&self) -> PathBuf {
        self.data.path().join("tls/cert.pem")
    }

    /// Creates a user and returns its token.
    pub fn add_user(&self, name: &str) -> String {
        let mut cmd = Command::new(server_bin());
        cmd.args(["user", "add", name])
            .arg("--data-dir")
            .arg(self.data.path());
        if let Some(url) = &self.db {
            cmd.arg("--database-url").arg(url);
        }
        let out = run_ok(&mut cmd);
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_whitespace().last().expect("a token").to_string()
    }

    /// Creates an administrator and returns its token.
    pub fn add_admin(&self, name: &str) -> String {
        let mut cmd = Command::new(server_bin());
        cmd.args(["user", "add", name, "--admin"])
            .arg("--data-dir")
            .arg(self.data.path());
        if let Some(url) = &self.db {
            cmd.arg("--database-url").arg(url);
        }
        let out = run_ok(&mut cmd);
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_whitespace().last().expect("a token").to_string()
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// `uforge` as `user`, with `--json`.
    pub fn client(&self, user: &str, token: &str, args: &[&str]) -> Result<Value, String> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.client_text(user, token, &all)
            .map(|out| serde_json::from_str(&out).unwrap())
    }

    /// `uforge` as `user`: what it prints.
    pub fn client_text(&self, user: &str, token: &str, args: &[&str]) -> Result<String, String> {
        let out =
            Command::new(Path::new(env!("CARGO_BIN_EXE_uforge-scan")).with_file_name("uforge"))
                .args(["-U", &self.url, "-u", user])
                .arg("--cacert")
                .arg(self.cacert())
                .env("UFORGE_TOKEN", token)
                .args(args)
                .output()
                .unwrap();
        if out.status.success() {
            Ok(String::from_utf8(out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs the agent in a private mount namespace whose /tmp is an empty tmpfs, and returns
    /// its output with whatever it left in /tmp.
    pub fn agent(
        &self,
        url: &str,
        user: &str,
        token: &str,
        name: &str,
        root: &Path,
    ) -> (std::process::Output, String) {
        self.agent_with(url, user, token, name, root, &[])
    }

    /// [`Server::agent`] with more arguments for `run`.
    pub fn agent_with(
        &self,
        url: &str,
        user: &str,
        token: &str,
        name: &str,
        root: &Path,
        extra: &[&str],
    ) -> (std::process::Output, String) {
        // The binary is opened before /tmp is covered: the build tree itself may live in /tmp.
        let script = r#"exec 3<"$1"; shift; mount -t tmpfs tmpfs /tmp && /proc/self/fd/3 "$@"; rc=$?; echo "--- tmp:"; find /tmp -mindepth 1; exit $rc"#;
        let out = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "agent",
            ])
            .arg(env!("CARGO_BIN_EXE_uforge-scan"))
            .args(["run", "-U", url, "-u", user, "-n", name, "--root"])
            .arg(root)
            .arg("--cacert")
            .arg(self.cacert())
            .args(extra)
            .env("UFORGE_TOKEN", token)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let tmp = stdout
            .split("--- tmp:")
            .nth(1)
            .unwrap_or("")
            .trim()
            .to_string();
        (out, tmp)
    }

    /// Starts the agent as [`Server::agent`] does, with its stderr piped to the caller.
    fn spawn_agent(&self, user: &str, token: &str, name: &str, root: &Path) -> Child {
        Command::new(env!("CARGO_BIN_EXE_uforge-scan"))
            .args(["run", "-U", &self.url, "-u", user, "-n", name, "--root"])
            .arg(root)
            .arg("--cacert")
            .arg(self.cacert())
            .env("UFORGE_TOKEN", token)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Pauses (`STOP`) or resumes (`CONT`) the server process.
    fn signal(&self, sig: &str) {
        run_ok(Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]));
    }
}

/// A TCP relay to the server that cuts both directions once `limit` bytes went upstream:
/// an upload broken half way, as a dropped link does.
fn cutting_proxy(upstream: &str, limit: u64) -> String {
    counting_proxy(upstream, limit).0
}

/// A TCP relay to the server that counts the bytes sent upstream over all its connections,
/// and cuts them all once `limit` bytes went.
fn counting_proxy(upstream: &str, limit: u64) -> (String, Arc<AtomicU64>) {
    let addr = upstream.trim_start_matches("https://").to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let local = format!("https://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicU64::new(0));
    let total = sent.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let Ok(server) = TcpStream::connect(&addr) else {
                break;
            };
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let counter = sent.clone();
            std::thread::spawn(move || relay(c2, s2, Some((counter, limit))));
            std::thread::spawn(move || relay(server, client, None));
        }
    });
    (local, total)
}

fn relay(mut from: TcpStream, mut to: TcpStream, limit: Option<(Arc<AtomicU64>, u64)>) {
    let mut buf = [0u8; 16384];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((sent, max)) = &limit {
            if sent.fetch_add(n as u64, Ordering::Relaxed) + n as u64 > *max {
                break;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}

fn snapshot(root: &Path) -> Vec<u8> {
    run_ok(
        Command::new("find")
            .arg(root)
            .args(["-xdev", "-printf", r"%p %C@ %T@ %s %m\0"]),
    )
    .stdout
}

/// The whole product flow on one database.
fn five_steps(db: Option<String>) {
    let server = Server::start(db);
    let alice = server.add_user("alice");
    let bob = server.add_user("bob");

    // The server rebuilds from the real mirror.
    let repo = server
        .client("alice", &alice, &["repo", "add", &mirror_line()])
        .unwrap();
    let id = repo["id"].as_i64().unwrap().to_string();
    let synced = server
        .client("alice", &alice, &["repo", "sync", &id])
        .unwrap();
    assert!(synced["packages"].as_u64().unwrap() > 50_000, "{synced}");

    // A machine of our own to change between scans.
    let work = outside_tmp();
    let root = work.path().join("web01");
    run_ok(
        Command::new("cp")
            .args(["-a", "--sparse=always"])
            .arg(fixture("drifted"))
            .arg(&root),
    );

    // An upload cut half way leaves the scan analysed, never complete.
    let proxy = cutting_proxy(&server.url, 3 << 20);
    let (out, _) = server.agent(&proxy, "alice", &alice, "web01", &root);
    assert!(!out.status.success(), "the cut upload must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/overlay"), "{err}");
    let scans = server.client("alice", &alice, &["scan", "list"]).unwrap();
    assert_eq!(scans.as_array().unwrap().len(), 1);
    assert_eq!(scans[0]["status"], "analyzed", "{scans}");

    // The rerun finishes the same scan; nothing is written on the machine or in /tmp.
    let before = snapshot(&root);
    let (out, tmp) = server.agent(&server.url, "alice", &alice, "web01", &root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tmp, "", "the agent wrote in /tmp");
    assert!(
        before == snapshot(&root),
        "the agent changed the scanned root"
    );
    // Its summary, off a terminal too: the one package no repository has, recreated now.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "  1 packages no public repository has: 1 missing (1 recreated now), 0 recreated \
             by earlier scans, 0 held by earlier scans\n"
        ),
        "{err}"
    );
    assert!(
        err.contains("  recreated acme-agent_2.4.1-1_amd64.deb\n"),
        "{err}"
    );
    let scans = server.client("alice", &alice, &["scan", "list"]).unwrap();
    assert_eq!(scans.as_array().unwrap().len(), 1, "{scans}");
    let first = &scans[0];
    assert_eq!(first["status"], "complete", "{first}");
    assert_eq!(first["summary"]["missing_packages"], 1, "{first}");
    let first_id = first["id"].as_i64().unwrap().to_string();

    // The package no repository has was recreated, and installs in a chroot.
    let pkgs = server
        .client("alice", &alice, &["package", "list"])
        .unwrap();
    assert_eq!(pkgs[0]["name"], "acme-agent", "{pkgs}");
    // The tables: columns as wide as their content, keys aligned, sizes for people.
    let table = server
        .client_text("alice", &alice, &["package", "list"])
        .unwrap();
    let file = pkgs[0]["file"].as_str().unwrap();
    assert_eq!(
        table,
        format!("NAME        VERSION  ARCH   FILE\nacme-agent  2.4.1-1  amd64  {file}\n")
    );
    let show = server
        .client_text("alice", &alice, &["scan", "show", &first_id])
        .unwrap();
    let lines: Vec<&str> = show.lines().collect();
    let column = |l: &str| {
        l.find("  ")
            .map(|i| i + l[i..].len() - l[i..].trim_start().len())
    };
    let at = column(lines[0]);
    assert!(
        lines.iter().all(|l| column(l) == at),
        "values not aligned:\n{show}"
    );
    let bytes = first["summary"]["wanted_bytes"].as_u64().unwrap();
    assert!(bytes > 1 << 10, "{first}");
    let wanted = lines
        .iter()
        .find(|l| l.starts_with("wanted_bytes "))
        .unwrap_or_else(|| panic!("{show}"));
    assert!(
        (wanted.ends_with(" KiB") || wanted.ends_with(" MiB"))
            && !wanted.contains(&bytes.to_string()),
        "{wanted}"
    );
    // Recreated packages are kept per release: repos/USER/<id>-<codename>/.
    let name = pkgs[0]["file"].as_str().unwrap();
    let deb = std::fs::read_dir(server.data.path().join("repos/alice"))
        .unwrap()
        .map(|d| d.unwrap().path().join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is in none of alice's repositories"));
    let chroot = work.path().join("chroot");
    run_ok(
        Command::new("cp")
            .args(["-a", "--sparse=always"])
            .arg(fixture("drifted"))
            .arg(&chroot),
    );
    run_ok(
        Command::new("chroot")
            .arg(&chroot)
            .args(["dpkg", "--purge", "acme-agent"]),
    );
    std::fs::copy(&deb, chroot.join("root/recreated.deb")).unwrap();
    run_ok(
        Command::new("chroot")
            .arg(&chroot)
            .args(["dpkg", "-i", "/root/recreated.deb"]),
    );
    let st = run_ok(Command::new("chroot").arg(&chroot).args([
        "dpkg-query",
        "-W",
        "-f",
        "${Status} ${Version}",
        "acme-agent",
    ]));
    assert_eq!(
        String::from_utf8_lossy(&st.stdout),
        "install ok installed 2.4.1-1"
    );
    assert!(
        chroot.join("var/lib/acme-agent/state").exists(),
        "the postinst ran"
    );
    let sum = |p: &Path| run_ok(Command::new("sha256sum").arg(p)).stdout[..64].to_vec();
    assert_eq!(
        sum(&chroot.join("opt/acme-agent/bin/acme-agent")),
        sum(&root.join("opt/acme-agent/bin/acme-agent"))
    );

    // A second run with the same name ships only what changed.
    std::fs::write(root.join("srv/app/config.ini"), "secret=rotated\n").unwrap();
    let (out, _) = server.agent(&server.url, "alice", &alice, "web01", &root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scans = server
        .client("alice", &alice, &["scan", "list", "--machine", "web01"])
        .unwrap();
    let second = &scans[0];
    assert_eq!(second["status"], "complete");
    assert_eq!(second["summary"]["wanted"], 1, "{second}");
    assert_eq!(
        second["summary"]["missing_packages"], 0,
        "recreated by the first scan: {second}"
    );
    // The agent's summary still counts it among the packages no public repository has.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "  1 packages no public repository has: 0 missing (0 recreated now), 1 recreated \
             by earlier scans, 0 held by earlier scans\n"
        ),
        "{err}"
    );
    let second_id = second["id"].as_i64().unwrap().to_string();
    let cmp = server
        .client("alice", &alice, &["scan", "compare", &first_id, &second_id])
        .unwrap();
    assert_eq!(cmp["files"].as_array().unwrap().len(), 1, "{cmp}");
    assert_eq!(cmp["files"][0]["path"], "/srv/app/config.ini");

    // Other users see nothing; wrong tokens get nothing.
    let err = server
        .client("bob", &bob, &["scan", "show", &first_id])
        .unwrap_err();
    assert!(err.contains("404"), "{err}");
    assert_eq!(
        server.client("bob", &bob, &["scan", "list"]).unwrap(),
        serde_json::json!([])
    );
    let err = server
        .client("alice", "0000", &["scan", "list"])
        .unwrap_err();
    assert!(err.contains("401"), "{err}");
    let (out, _) = server.agent(&server.url, "alice", "wrong-token", "web02", &root);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));

    // Without the server's certificate the agent refuses to talk to it.
    let out = scan_bin()
        .args([
            "run",
            "-U",
            &server.url,
            "-u",
            "alice",
            "-n",
            "web03",
            "--root",
        ])
        .arg(&root)
        .env("UFORGE_TOKEN", &alice)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    let deleted = server.client("alice", &alice, &["scan", "delete", &first_id]);
    assert!(deleted.is_ok(), "{deleted:?}");
}

/// A live machine: files change between the scan and the overlay, and the scan completes with
/// them as they are now. The agent's progress lines say when its scan has ended; the server is
/// paused from the moment the scan starts, so the agent cannot get its analysis (and start the
/// overlay) before the machine has changed.
#[test]
fn files_changing_during_a_live_scan_are_sent_as_they_are_now() {
    let server = Server::start(None);
    let token = server.add_user("carol");
    let repo = server
        .client("carol", &token, &["repo", "add", &mirror_line()])
        .unwrap();
    let id = repo["id"].as_i64().unwrap().to_string();
    server
        .client("carol", &token, &["repo", "sync", &id])
        .unwrap();

    let work = outside_tmp();
    let root = work.path().join("busy01");
    run_ok(
        Command::new("cp")
            .args(["-a", "--sparse=always"])
            .arg(fixture("drifted"))
            .arg(&root),
    );
    let log = root.join("var/log/app/app.log");
    let cache = root.join("root/.cache/build/index.bin");
    let lock = root.join("var/cache/app/job.lock");
    for (p, body) in [
        (&log, &b"started\n"[..]),
        (&cache, &[7u8; 50_000][..]),
        (&lock, b"1234\n"),
    ] {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    let mut agent = server.spawn_agent("carol", &token, "busy01", &root);
    let mut lines = BufReader::new(agent.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut paused = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.starts_with("connect: done") {
            server.signal("STOP");
            paused = true;
        } else if line.starts_with("files: done") {
            assert!(paused, "{seen:?}");
            // Between the scan and the overlay: a log grows, a cache is replaced, a lock goes.
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            f.write_all(b"request served\n").unwrap();
            drop(f);
            let tmp = cache.with_extension("new");
            std::fs::write(&tmp, [9u8; 70_000]).unwrap();
            std::fs::rename(&tmp, &cache).unwrap();
            std::fs::remove_file(&lock).unwrap();
            server.signal("CONT");
            break;
        }
    }
    seen.extend(lines.map(|l| l.unwrap()));
    let status = agent.wait().unwrap();
    let stderr = seen.join("\n");
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "3 files changed on the machine during the scan: 2 sent as they are now, 1 vanished"
        ),
        "{stderr}"
    );
    for (op, p) in [
        ("amended", "/var/log/app/app.log"),
        ("amended", "/root/.cache/build/index.bin"),
        ("vanished", "/var/cache/app/job.lock"),
    ] {
        assert!(
            stderr.contains(&format!("    {op} {p}: ")),
            "{op} {p}: {stderr}"
        );
    }

    let scans = server.client("carol", &token, &["scan", "list"]).unwrap();
    let scan = &scans[0];
    assert_eq!(scan["status"], "complete", "{scan}");
    assert_eq!(scan["summary"]["amended"], 2, "{scan}");
    assert_eq!(scan["summary"]["vanished"], 1, "{scan}");

    // The stored report says what was shipped, and the blob store holds it.
    let id = scan["id"].as_i64().unwrap();
    let stored = server.data.path().join(format!("reports/{id}.ufr"));
    let report = uforge_core::model::Report::load(&stored).unwrap();
    let entry = |p: &str| report.files.iter().find(|e| e.path == p.as_bytes());
    for disk in [&log, &cache] {
        let e = entry(&String::from_utf8(in_root(&root, disk)).unwrap()).unwrap();
        let bytes = std::fs::read(disk).unwrap();
        let sha = sum(disk);
        assert_eq!(e.size, bytes.len() as u64, "{e:?}");
        assert_eq!(uforge_core::blobstore::to_hex(&e.sha256.unwrap()), sha);
        let blob = server
            .data
            .path()
            .join("blobs/sha256")
            .join(&sha[..2])
            .join(&sha);
        assert_eq!(std::fs::read(&blob).unwrap(), bytes, "{}", disk.display());
    }
    assert!(entry("/var/cache/app/job.lock").is_none());
    let vanished: Vec<&[u8]> = report
        .trailer
        .errors
        .iter()
        .filter(|e| e.op == "vanished")
        .map(|e| &e.path[..])
        .collect();
    assert_eq!(vanished, [&b"/var/cache/app/job.lock"[..]]);
    let analysis: Value = serde_json::from_slice(
        &std::fs::read(
            server
                .data
                .path()
                .join(format!("reports/{id}.analysis.json")),
        )
        .unwrap(),
    )
    .unwrap();
    let wanted = analysis["wanted"].to_string();
    assert!(
        !wanted.contains("job.lock") && wanted.contains("app.log"),
        "{wanted}"
    );

    // The next scan of the same machine finds nothing new in what was amended.
    let (out, _) = server.agent(&server.url, "carol", &token, "busy01", &root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scans = server
        .client("carol", &token, &["scan", "list", "--machine", "busy01"])
        .unwrap();
    assert_eq!(scans[0]["summary"]["vanished"], 0, "{}", scans[0]);
    let next = scans[0]["id"].as_i64().unwrap();
    assert_ne!(next, id);
    let analysis = std::fs::read_to_string(
        server
            .data
            .path()
            .join(format!("reports/{next}.analysis.json")),
    )
    .unwrap();
    assert!(
        !analysis.contains("app.log") && !analysis.contains("index.bin"),
        "held by the amended scan: {analysis}"
    );
}

/// Hex SHA-256 of a file, by sha256sum.
fn sum(p: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(p));
    String::from_utf8_lossy(&out.stdout[..64]).into_owned()
}

#[test]
fn five_step_scan_on_sqlite() {
    five_steps(None);
}

#[test]
fn five_step_scan_on_postgresql() {
    five_steps(Some(postgres_url()));
}

/// The summary `uforge-scan run --json` prints.
fn run_summary(out: &std::process::Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no summary: {text}"));
    serde_json::from_str(line).unwrap()
}

/// An upload cut at 60% is finished by a rerun that sends at most the missing 40% plus 5%:
/// what arrived whole stays on the server, the rerun asks what it still lacks and sends only
/// that, and its summary says how much it skipped. The whole overlay's size is measured first
/// by another user, whose blobs do not count for the first.
#[test]
fn an_upload_cut_at_60_percent_is_finished_by_sending_the_rest() {
    let server = Server::start(None);
    let work = outside_tmp();
    let root = work.path().join("web01");
    run_ok(
        Command::new("cp")
            .args(["-a", "--sparse=always"])
            .arg(fixture("drifted"))
            .arg(&root),
    );
    let user = |name: &str| {
        let token = server.add_user(name);
        let repo = server
            .client(name, &token, &["repo", "add", &mirror_line()])
            .unwrap();
        let id = repo["id"].as_i64().unwrap().to_string();
        server.client(name, &token, &["repo", "sync", &id]).unwrap();
        token
    };
    let ok = |out: &std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    // The whole overlay, and what goes upstream before it.
    let measure = user("measure");
    let (proxy, sent) = counting_proxy(&server.url, u64::MAX);
    let (out, _) = server.agent_with(&proxy, "measure", &measure, "web01", &root, &["--json"]);
    ok(&out);
    let whole = run_summary(&out);
    let full = whole["overlay"]["bytes"].as_u64().unwrap();
    assert_eq!(whole["skipped"]["files"], 0, "{whole}");
    assert_eq!(whole["received"]["bytes"], full, "{whole}");
    let before = sent.load(Ordering::Relaxed) - full;
    assert!(full > 4 << 20, "{whole}");

    // Alice's upload is cut at 60% of the overlay.
    let alice = user("alice");
    let limit = before + full * 6 / 10;
    let (proxy, _) = counting_proxy(&server.url, limit);
    let (out, _) = server.agent(&proxy, "alice", &alice, "web01", &root);
    assert!(!out.status.success(), "the cut upload must fail");
    let scans = server.client("alice", &alice, &["scan", "list"]).unwrap();
    assert_eq!(scans[0]["status"], "analyzed", "{scans}");

    // The rerun sends at most the missing 40% plus 5%.
    let (proxy, sent) = counting_proxy(&server.url, u64::MAX);
    let (out, _) = server.agent_with(&proxy, "alice", &alice, "web01", &root, &["--json"]);
    ok(&out);
    let rest = run_summary(&out);
    let bytes = rest["overlay"]["bytes"].as_u64().unwrap();
    assert!(
        bytes * 100 <= full * 45,
        "the rerun sent {bytes} of {full} bytes: {rest}"
    );
    assert_eq!(rest["received"]["bytes"], bytes, "{rest}");
    let upstream = sent.load(Ordering::Relaxed);
    eprintln!(
        "whole overlay {full} bytes; rerun sent {bytes} ({:.1}%), {upstream} upstream in all",
        bytes as f64 * 100.0 / full as f64
    );
    assert!(
        upstream <= before + full * 45 / 100,
        "{upstream} bytes went upstream ({before} before the overlay, of {full}): {rest}"
    );
    let skipped = &rest["skipped"];
    assert!(skipped["files"].as_u64().unwrap() > 0, "{rest}");
    assert_eq!(rest["received"]["held"], skipped["files"], "{rest}");
    assert_eq!(rest["received"]["held_bytes"], skipped["bytes"], "{rest}");
    assert_eq!(
        skipped["bytes"].as_u64().unwrap() + rest["overlay"]["content_bytes"].as_u64().unwrap(),
        whole["overlay"]["content_bytes"].as_u64().unwrap(),
        "{rest}"
    );
    assert_eq!(rest["recreated"], whole["recreated"], "{rest}");
    let err = String::from_utf8_lossy(&out.stderr);
    let line = format!(
        "  {} files ({:.1} MiB) not sent: the server already held their content\n",
        skipped["files"],
        skipped["bytes"].as_u64().unwrap() as f64 / 1048576.0
    );
    assert!(err.contains(&line), "{err}");
    let scans = server.client("alice", &alice, &["scan", "list"]).unwrap();
    assert_eq!(scans.as_array().unwrap().len(), 1, "{scans}");
    assert_eq!(scans[0]["status"], "complete", "{scans}");
    assert_eq!(scans[0]["id"], rest["scan"], "{scans}");
}
