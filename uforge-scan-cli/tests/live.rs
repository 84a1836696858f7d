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
fn server_bin() -> PathBuf {
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

    /// `uforge` as `user`, with `--json`.
    pub fn client(&self, user: &str, token: &str, args: &[&str]) -> Result<Value, String> {
        let out =
            Command::new(Path::new(env!("CARGO_BIN_EXE_uforge-scan")).with_file_name("uforge"))
                .args(["-U", &self.url, "-u", user, "--json"])
                .arg("--cacert")
                .arg(self.cacert())
                .env("UFORGE_TOKEN", token)
                .args(args)
                .output()
                .unwrap();
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).unwrap())
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
}

/// A TCP relay to the server that cuts both directions once `limit` bytes went upstream:
/// an upload broken half way, as a dropped link does.
fn cutting_proxy(upstream: &str, limit: u64) -> String {
    let addr = upstream.trim_start_matches("https://").to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let local = format!("https://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let Ok(server) = TcpStream::connect(&addr) else {
                break;
            };
            let sent = Arc::new(AtomicU64::new(0));
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let counter = sent.clone();
            std::thread::spawn(move || relay(c2, s2, Some((counter, limit))));
            std::thread::spawn(move || relay(server, client, None));
        }
    });
    local
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
    let deb = server
        .data
        .path()
        .join("repos/alice")
        .join(pkgs[0]["file"].as_str().unwrap());
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

#[test]
fn five_step_scan_on_sqlite() {
    five_steps(None);
}

#[test]
fn five_step_scan_on_postgresql() {
    five_steps(Some(postgres_url()));
}
