//! An authenticated HTTPS client for the uforge server API (`docs/api.md`).
//!
//! Answers are returned as JSON values in the documented shapes, except the analysis, which is
//! decoded into core's [`Analysis`]. Request bodies that can be large (reports, overlays) are
//! streamed from any `Read`, and so are downloads (images) to a file.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use uforge_core::analysis::Analysis;

use crate::error::ClientError;
use crate::tls::TlsOptions;

/// Who the client is: a token, and the user name it belongs to when known.
#[derive(Clone)]
pub struct Credentials {
    /// The user name (sent with the token as HTTP Basic credentials), if given.
    pub user: Option<String>,
    /// The API token.
    pub token: String,
}

impl std::fmt::Debug for Credentials {
    // The token must never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A connection to a uforge server.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

impl Client {
    /// A client for the server at `url` (`https://host:8443`).
    pub fn new(
        url: &str,
        credentials: &Credentials,
        tls: &TlsOptions,
    ) -> Result<Self, ClientError> {
        if !url.starts_with("https://") {
            return Err(ClientError::Tls(format!(
                "{url}: the server must be reached over https://"
            )));
        }
        let agent = ureq::AgentBuilder::new()
            .tls_config(tls.client_config()?)
            .timeout_connect(Duration::from_secs(30))
            .build();
        let auth = match &credentials.user {
            Some(u) => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{u}:{}", credentials.token))
            ),
            None => format!("Bearer {}", credentials.token),
        };
        Ok(Client {
            agent,
            base: format!("{}/api/v1", url.trim_end_matches('/')),
            auth,
        })
    }

    fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Body<'_>,
    ) -> Result<ureq::Response, ClientError> {
        let url = format!("{}{path}", self.base);
        let req = self
            .agent
            .request(method, &url)
            .set("Authorization", &self.auth);
        let result = match body {
            Body::None => req.call(),
            Body::Json(v) => req.send_json(v),
            Body::Stream(r) => req.set("Content-Type", "application/octet-stream").send(r),
        };
        match result {
            Ok(resp) => Ok(resp),
            Err(ureq::Error::Status(status, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                let message = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or(text);
                Err(ClientError::Http {
                    method,
                    url,
                    status,
                    message,
                })
            }
            Err(ureq::Error::Transport(t)) => {
                // ureq's text starts with the URL, which the error already names.
                let text = t.to_string();
                let message = text
                    .strip_prefix(&format!("{url}: "))
                    .unwrap_or(&text)
                    .to_string();
                Err(ClientError::Transport { url, message })
            }
        }
    }

    fn json(&self, method: &'static str, path: &str, body: Body<'_>) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let resp = self.call(method, path, body)?;
        if resp.status() == 204 {
            return Ok(Value::Null);
        }
        resp.into_json().map_err(|e| ClientError::Protocol {
            url,
            message: format!("not JSON: {e}"),
        })
    }

    /// Checks the connection and the credentials: `{"status", "version", "user"}`.
    pub fn health(&self) -> Result<Value, ClientError> {
        self.json("GET", "/health", Body::None)
    }

    /// Creates a scan of a machine (or resumes its unfinished one).
    pub fn create_scan(&self, machine: &str) -> Result<Value, ClientError> {
        self.json(
            "POST",
            "/scans",
            Body::Json(serde_json::json!({ "machine": machine })),
        )
    }

    /// Uploads a scan's report (native or JSON, streamed) and returns the server's analysis.
    pub fn post_report(&self, scan: i64, report: &mut dyn Read) -> Result<Analysis, ClientError> {
        let path = format!("/scans/{scan}/report");
        let resp = self.call("POST", &path, Body::Stream(report))?;
        Ok(Analysis::read_json(
            resp.into_reader(),
            &format!("from {}{path}", self.base),
        )?)
    }

    /// Streams a scan's overlay tar; the answer tells what was stored and recreated.
    pub fn put_overlay(&self, scan: i64, overlay: &mut dyn Read) -> Result<Value, ClientError> {
        self.json(
            "PUT",
            &format!("/scans/{scan}/overlay"),
            Body::Stream(overlay),
        )
    }

    /// The user's scans, newest first, optionally of one machine.
    pub fn scans(&self, machine: Option<&str>) -> Result<Value, ClientError> {
        match machine {
            Some(m) => self.json("GET", &format!("/scans?machine={}", encode(m)), Body::None),
            None => self.json("GET", "/scans", Body::None),
        }
    }

    /// One scan.
    pub fn scan(&self, id: i64) -> Result<Value, ClientError> {
        self.json("GET", &format!("/scans/{id}"), Body::None)
    }

    /// The stored analysis of a scan.
    pub fn analysis(&self, id: i64) -> Result<Analysis, ClientError> {
        let path = format!("/scans/{id}/analysis");
        let resp = self.call("GET", &path, Body::None)?;
        Ok(Analysis::read_json(
            resp.into_reader(),
            &format!("from {}{path}", self.base),
        )?)
    }

    /// Differences between two scans.
    pub fn compare(&self, a: i64, b: i64) -> Result<Value, ClientError> {
        self.json("GET", &format!("/scans/{a}/compare/{b}"), Body::None)
    }

    /// Deletes a scan.
    pub fn delete_scan(&self, id: i64) -> Result<(), ClientError> {
        self.json("DELETE", &format!("/scans/{id}"), Body::None)
            .map(drop)
    }

    /// The user's machines.
    pub fn machines(&self) -> Result<Value, ClientError> {
        self.json("GET", "/machines", Body::None)
    }

    /// Registers a repository by its sources.list line.
    pub fn repo_add(&self, line: &str) -> Result<Value, ClientError> {
        self.json(
            "POST",
            "/repos",
            Body::Json(serde_json::json!({ "line": line })),
        )
    }

    /// Fetches and verifies a repository's index now.
    pub fn repo_sync(&self, id: i64) -> Result<Value, ClientError> {
        self.json("POST", &format!("/repos/{id}/sync"), Body::None)
    }

    /// The user's repositories.
    pub fn repos(&self) -> Result<Value, ClientError> {
        self.json("GET", "/repos", Body::None)
    }

    /// Removes a repository.
    pub fn repo_delete(&self, id: i64) -> Result<(), ClientError> {
        self.json("DELETE", &format!("/repos/{id}"), Body::None)
            .map(drop)
    }

    /// The packages the server recreated for the user.
    pub fn packages(&self) -> Result<Value, ClientError> {
        self.json("GET", "/packages", Body::None)
    }

    /// Queues an image of a complete scan in `format` (`qcow2`, `vmdk`, `oci`...), for
    /// `target` (`kvm`, `aws`...; the format's usual platform if `None`), with `network`
    /// (`keep` or `dhcp`; `keep` if `None`). The answer is the queued image job.
    pub fn create_image(
        &self,
        scan: i64,
        format: &str,
        target: Option<&str>,
        network: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut body = serde_json::json!({ "format": format });
        if let Some(t) = target {
            body["target"] = t.into();
        }
        if let Some(n) = network {
            body["network"] = n.into();
        }
        self.json("POST", &format!("/scans/{scan}/images"), Body::Json(body))
    }

    /// The user's image jobs, newest first, optionally those of one scan.
    pub fn list_images(&self, scan: Option<i64>) -> Result<Value, ClientError> {
        match scan {
            Some(s) => self.json("GET", &format!("/images?scan={s}"), Body::None),
            None => self.json("GET", "/images", Body::None),
        }
    }

    /// One image job: status, phase, progress, error, size, SHA-256...
    pub fn image(&self, id: i64) -> Result<Value, ClientError> {
        self.json("GET", &format!("/images/{id}"), Body::None)
    }

    /// The tuning log of a finished image: every change the build made to the scanned files.
    pub fn tuning_log(&self, id: i64) -> Result<Value, ClientError> {
        self.json("GET", &format!("/images/{id}/tuning-log"), Body::None)
    }

    /// Downloads a finished image to `path` and returns its size. The bytes go to
    /// `PATH.partial`, which becomes `path` only once every byte the server announced has
    /// arrived and is on disk; on any error it is removed, so `path` never holds half an
    /// image.
    pub fn download_image(&self, id: i64, path: &Path) -> Result<u64, ClientError> {
        let meta = self.image(id)?;
        let route = format!("/images/{id}/download");
        let url = format!("{}{route}", self.base);
        let resp = self.call("GET", &route, Body::None)?;
        let announced = resp
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let expected = meta["size"].as_u64().or(announced);
        let partial = partial_path(path);
        let result = (|| {
            let received = save(resp.into_reader(), &partial, &url)?;
            for want in [announced, expected].into_iter().flatten() {
                if received != want {
                    return Err(ClientError::Protocol {
                        url: url.clone(),
                        message: format!(
                            "received {received} bytes of an image of {want}; {} is not kept",
                            path.display()
                        ),
                    });
                }
            }
            std::fs::rename(&partial, path)
                .map_err(|e| uforge_core::Error::io("rename", &partial, e))?;
            Ok(received)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    /// Deletes an image job and its file (refused while it is being built).
    pub fn delete_image(&self, id: i64) -> Result<(), ClientError> {
        self.json("DELETE", &format!("/images/{id}"), Body::None)
            .map(drop)
    }
}

/// `PATH.partial`, beside `path`.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".partial");
    PathBuf::from(name)
}

/// Copies a download into a new file at `dest`, synced to disk; the bytes written. Errors
/// say whether the network (`url`) or the file failed.
fn save(mut from: impl Read, dest: &Path, url: &str) -> Result<u64, ClientError> {
    let io = |op: &'static str| move |e| ClientError::Core(uforge_core::Error::io(op, dest, e));
    let mut file = File::create(dest).map_err(io("create"))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(ClientError::Transport {
                    url: url.to_string(),
                    message: format!("the download broke off after {total} bytes: {e}"),
                })
            }
        };
        file.write_all(&buf[..n]).map_err(io("write"))?;
        total += n as u64;
    }
    file.sync_all().map_err(io("sync"))?;
    Ok(total)
}

enum Body<'a> {
    None,
    Json(Value),
    Stream(&'a mut dyn Read),
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
