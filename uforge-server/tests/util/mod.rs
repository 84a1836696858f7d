//! Helpers for the integration tests: the real server binary on a free port with a fresh data
//! directory (on SQLite or on the test support's PostgreSQL), a TLS client that trusts exactly
//! the certificate it generated, and small roots to scan.

#![allow(dead_code)]

pub mod roots;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Which database a server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// A database of our own PostgreSQL cluster (or of `UFORGE_TEST_PG`).
    Postgres,
}

/// Generates `sqlite` and `postgres` tests running `$name(Backend)`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::util::Backend::Sqlite)
            }
            #[test]
            fn postgres() {
                super::$name($crate::util::Backend::Postgres)
            }
        }
    )*};
}

/// The server binary.
pub fn server_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_uforge-server"))
}

/// A running server, stopped when dropped.
pub struct Server {
    child: Child,
    backend: Backend,
    /// Holds the data directory and the log.
    pub tmp: tempfile::TempDir,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--database-url`, when not SQLite.
    pub database_url: Option<String>,
    /// `https://127.0.0.1:PORT/api/v1` (the server prints the part before `/api/v1`).
    pub url: String,
    /// The fingerprint it printed.
    pub fingerprint: String,
    /// The admin token it printed.
    pub admin_token: String,
    agent: ureq::Agent,
}

/// Options of [`Server::start_with`].
#[derive(Default, Clone)]
pub struct Options {
    /// `--max-report-bytes`.
    pub max_report_bytes: Option<u64>,
    /// `--image-workers`.
    pub image_workers: Option<usize>,
    /// `--max-report-entries`.
    pub max_report_entries: Option<u64>,
    /// `--max-report-expanded`.
    pub max_report_expanded: Option<u64>,
    /// `--allow-local-repos`.
    pub allow_local_repos: bool,
}

/// What a server prints when it starts.
struct Started {
    child: Child,
    url: String,
    fingerprint: String,
    admin_token: Option<String>,
}

impl Server {
    /// Starts a server with defaults on a fresh data directory and database.
    pub fn start(backend: Backend) -> Server {
        Self::start_with(backend, Options::default())
    }

    /// Starts a server.
    pub fn start_with(backend: Backend, opts: Options) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let database_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(uforge_test_support::postgres::fresh_database()),
        };
        let started = launch(
            tmp.path(),
            &data_dir,
            database_url.as_deref(),
            backend,
            &opts,
        );
        let cert = data_dir.join("tls/cert.pem");
        let agent = agent_trusting(&cert);
        Server {
            child: started.child,
            backend,
            tmp,
            data_dir,
            database_url,
            url: started.url,
            fingerprint: started.fingerprint,
            admin_token: started.admin_token.expect("an admin token line"),
            agent,
        }
    }

    /// Stops the server (SIGKILL: nothing it runs gets to wind down) and starts another on the
    /// same data directory and database.
    pub fn restart(&mut self, opts: Options) {
        self.kill();
        let started = launch(
            self.tmp.path(),
            &self.data_dir,
            self.database_url.as_deref(),
            self.backend,
            &opts,
        );
        assert!(
            started.admin_token.is_none(),
            "a restarted server created its admin again"
        );
        self.child = started.child;
        self.url = started.url;
        self.fingerprint = started.fingerprint;
    }

    /// Starts a second server process on this one's data directory and database, as a
    /// deployment with several processes does; it logs to a directory of its own.
    pub fn another_process(&self, opts: Options) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let started = launch(
            tmp.path(),
            &self.data_dir,
            self.database_url.as_deref(),
            self.backend,
            &opts,
        );
        Server {
            child: started.child,
            backend: self.backend,
            tmp,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            url: started.url,
            fingerprint: started.fingerprint,
            admin_token: self.admin_token.clone(),
            agent: agent_trusting(&self.data_dir.join("tls/cert.pem")),
        }
    }

    /// An HTTPS agent trusting this server, without credentials.
    pub fn agent(&self) -> ureq::Agent {
        self.agent.clone()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A raw TLS connection to the server, for requests no HTTP client sends (a body that
    /// never comes).
    pub fn tls_stream(&self) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
        let cert = self.data_dir.join("tls/cert.pem");
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&cert).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let addr = self
            .url
            .strip_prefix("https://")
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name.to_owned()).unwrap();
        let tcp = std::net::TcpStream::connect(&addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        rustls::StreamOwned::new(conn, tcp)
    }

    /// Kills the server and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Runs SQL statements on the server's database, behind its back.
    pub fn sql(&self, statements: &str) {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let result = match &self.database_url {
            Some(url) => diesel::PgConnection::establish(url)
                .unwrap()
                .batch_execute(statements),
            None => {
                let db = self.data_dir.join("uforge.db");
                let mut c = diesel::SqliteConnection::establish(db.to_str().unwrap()).unwrap();
                c.batch_execute("PRAGMA busy_timeout = 15000;")
                    .and_then(|_| c.batch_execute(statements))
            }
        };
        result.unwrap_or_else(|e| panic!("{statements}: {e}"));
    }

    /// The database's spelling of "now, in UTC" and of "an hour ago, in UTC", for [`Self::sql`].
    pub fn sql_now(&self) -> (&'static str, &'static str) {
        match self.backend {
            Backend::Sqlite => ("datetime('now')", "datetime('now', '-1 hour')"),
            Backend::Postgres => (
                "(now() AT TIME ZONE 'UTC')",
                "(now() AT TIME ZONE 'UTC' - interval '1 hour')",
            ),
        }
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("server.log")).unwrap_or_default()
    }

    /// `uforge-server user add NAME` on this server's storage; returns the token.
    pub fn add_user(&self, name: &str) -> String {
        let mut cmd = server_bin();
        cmd.args(["user", "add", name, "--data-dir"])
            .arg(&self.data_dir)
            .env_remove("UFORGE_DATABASE_URL");
        if let Some(u) = &self.database_url {
            cmd.args(["--database-url", u]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "user add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        text.split("keep it): ")
            .nth(1)
            .expect("a token")
            .trim()
            .to_string()
    }

    /// A request as the admin (Bearer).
    pub fn admin(&self) -> Client<'_> {
        self.as_bearer(&self.admin_token.clone())
    }

    /// A request with a Bearer token.
    pub fn as_bearer(&self, token: &str) -> Client<'_> {
        Client {
            server: self,
            auth: Some(format!("Bearer {token}")),
        }
    }

    /// A request with Basic credentials.
    pub fn as_basic(&self, user: &str, token: &str) -> Client<'_> {
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
        Client {
            server: self,
            auth: Some(format!("Basic {b}")),
        }
    }

    /// A request without credentials.
    pub fn anonymous(&self) -> Client<'_> {
        Client {
            server: self,
            auth: None,
        }
    }

    /// Files under the blob store's committed area.
    pub fn blob_count(&self) -> usize {
        count_files(&self.data_dir.join("blobs/sha256"))
    }

    /// Files under the blob store's staging area.
    pub fn staged_count(&self) -> usize {
        count_files(&self.data_dir.join("blobs/staging"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `uforge-server serve` and reads what it prints until it listens. The log (stderr) is
/// appended to `tmp/server.log`.
fn launch(
    tmp: &Path,
    data_dir: &Path,
    database_url: Option<&str>,
    backend: Backend,
    opts: &Options,
) -> Started {
    let log_path = tmp.join("server.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap();
    let mut cmd = server_bin();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("UFORGE_CONFIG")
        .env_remove("UFORGE_DATABASE_URL")
        .env_remove("UFORGE_IMAGE_WORKERS")
        .env("UFORGE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    if let Some(u) = database_url {
        cmd.args(["--database-url", u]);
    }
    if let Some(n) = opts.max_report_bytes {
        cmd.args(["--max-report-bytes", &n.to_string()]);
    }
    if let Some(n) = opts.image_workers {
        cmd.args(["--image-workers", &n.to_string()]);
    }
    if let Some(n) = opts.max_report_entries {
        cmd.args(["--max-report-entries", &n.to_string()]);
    }
    if let Some(n) = opts.max_report_expanded {
        cmd.args(["--max-report-expanded", &n.to_string()]);
    }
    if opts.allow_local_repos {
        cmd.arg("--allow-local-repos");
    }
    let mut child = cmd.spawn().expect("start uforge-server");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut url, mut fingerprint, mut admin_token) = (None, None, None);
    while url.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "the server did not start: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                )
            });
        if let Some(f) = line.split("SHA-256 fingerprint: ").nth(1) {
            fingerprint = Some(f.trim().to_string());
        } else if let Some(t) = line.split("keep it): ").nth(1) {
            admin_token = Some(t.trim().to_string());
        } else if let Some(u) = line.split("listening on ").nth(1) {
            let base = u.split_whitespace().next().unwrap();
            url = Some(format!("{base}/api/v1"));
        }
    }
    let database = match backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    };
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains(&format!("database=\"{database} ")),
        "not on {database}: {log}"
    );
    Started {
        child,
        url: url.unwrap(),
        fingerprint: fingerprint.expect("a fingerprint line"),
        admin_token,
    }
}

/// Regular files under a directory, recursively.
pub fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.map(|e| {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            count_files(&e.path())
        } else {
            1
        }
    })
    .sum()
}

/// An HTTPS agent whose only trusted root is the server's certificate.
fn agent_trusting(cert: &Path) -> ureq::Agent {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    ureq::AgentBuilder::new()
        .tls_config(Arc::new(config))
        .timeout(Duration::from_secs(300))
        .build()
}

/// SHA-256 of the certificate in a PEM file, as the server prints it.
pub fn pem_fingerprint(cert: &Path) -> String {
    let der = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An answer.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// `WWW-Authenticate`, if any.
    pub www_authenticate: Option<String>,
    /// `Content-Length`, if any.
    pub content_length: Option<u64>,
    /// `Content-Disposition`, if any.
    pub content_disposition: Option<String>,
    /// Body.
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `error` message of an error answer.
    pub fn error(&self) -> String {
        let v = self.json();
        v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {v}"))
            .to_string()
    }

    /// Asserts the status, showing the body otherwise.
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }
}

/// Requests with given credentials.
pub struct Client<'a> {
    server: &'a Server,
    auth: Option<String>,
}

impl Client<'_> {
    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let mut r = self
            .server
            .agent
            .request(method, &format!("{}{path}", self.server.url));
        if let Some(a) = &self.auth {
            r = r.set("Authorization", a);
        }
        r
    }

    fn finish(result: Result<ureq::Response, ureq::Error>) -> Resp {
        let r = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("request failed: {e}"),
        };
        let status = r.status();
        let content_type = r.header("Content-Type").unwrap_or_default().to_string();
        let www_authenticate = r.header("WWW-Authenticate").map(str::to_string);
        let content_length = r.header("Content-Length").and_then(|v| v.parse().ok());
        let content_disposition = r.header("Content-Disposition").map(str::to_string);
        let mut body = Vec::new();
        r.into_reader().read_to_end(&mut body).unwrap();
        Resp {
            status,
            content_type,
            www_authenticate,
            content_length,
            content_disposition,
            body,
        }
    }

    /// A request without a body.
    pub fn call(&self, method: &str, path: &str) -> Resp {
        Self::finish(self.request(method, path).call())
    }

    /// `GET`.
    pub fn get(&self, path: &str) -> Resp {
        self.call("GET", path)
    }

    /// A JSON body.
    pub fn json(&self, method: &str, path: &str, body: Value) -> Resp {
        Self::finish(
            self.request(method, path)
                .set("Content-Type", "application/json")
                .send_string(&body.to_string()),
        )
    }

    /// A body with a `Content-Length`.
    pub fn bytes(&self, method: &str, path: &str, body: &[u8]) -> Resp {
        Self::finish(
            self.request(method, path)
                .set("Content-Type", "application/octet-stream")
                .send_bytes(body),
        )
    }

    /// A streamed body (chunked).
    pub fn stream(&self, method: &str, path: &str, body: impl Read) -> Resp {
        Self::finish(
            self.request(method, path)
                .set("Content-Type", "application/octet-stream")
                .send(body),
        )
    }
}
