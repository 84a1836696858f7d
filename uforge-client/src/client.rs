//! An authenticated HTTPS client for the uforge server API (`docs/api.md`).
//!
//! Answers are the API's types (`uforge-api`), except the analysis, which is decoded into
//! core's [`Analysis`]. Request bodies that can be large (reports, overlays) are
//! streamed from any `Read`, and so are downloads (images) to a file.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uforge_api::{
    Comparison, Health, Image, ImageFile, Machine, NewImage, NewPublication, NewRepo, NewScan,
    NewTarget, OverlayResult, OverlayWanted, Package, Publication, Repo, Scan, Target,
    TargetCredentials, TuningLog,
};
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

    /// A request whose answer is a JSON body of type `T`.
    fn json<T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        body: Body<'_>,
    ) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let resp = self.call(method, path, body)?;
        resp.into_json().map_err(|e| ClientError::Protocol {
            url,
            message: format!("not the API's JSON: {e}"),
        })
    }

    /// A request answered with no body (`204`).
    fn empty(&self, method: &'static str, path: &str) -> Result<(), ClientError> {
        self.call(method, path, Body::None).map(drop)
    }

    /// A JSON request body.
    fn body(value: &impl serde::Serialize) -> Body<'static> {
        Body::Json(serde_json::to_value(value).expect("API bodies encode"))
    }

    /// Checks the connection and the credentials.
    pub fn health(&self) -> Result<Health, ClientError> {
        self.json("GET", "/health", Body::None)
    }

    /// Creates a scan of a machine (or resumes its unfinished one).
    pub fn create_scan(&self, machine: &str) -> Result<Scan, ClientError> {
        let new = NewScan {
            machine: machine.to_string(),
        };
        self.json("POST", "/scans", Self::body(&new))
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
    pub fn put_overlay(
        &self,
        scan: i64,
        overlay: &mut dyn Read,
    ) -> Result<OverlayResult, ClientError> {
        self.json(
            "PUT",
            &format!("/scans/{scan}/overlay"),
            Body::Stream(overlay),
        )
    }

    /// What a scan's overlay still has to carry: the wanted paths it may leave out because a
    /// scan of the user holds their content, with the totals.
    pub fn overlay_wanted(&self, scan: i64) -> Result<OverlayWanted, ClientError> {
        self.json("GET", &format!("/scans/{scan}/overlay/wanted"), Body::None)
    }

    /// The user's scans, newest first, optionally of one machine.
    pub fn scans(&self, machine: Option<&str>) -> Result<Vec<Scan>, ClientError> {
        match machine {
            Some(m) => self.json("GET", &format!("/scans?machine={}", encode(m)), Body::None),
            None => self.json("GET", "/scans", Body::None),
        }
    }

    /// One scan.
    pub fn scan(&self, id: i64) -> Result<Scan, ClientError> {
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
    pub fn compare(&self, a: i64, b: i64) -> Result<Comparison, ClientError> {
        self.json("GET", &format!("/scans/{a}/compare/{b}"), Body::None)
    }

    /// Deletes a scan.
    pub fn delete_scan(&self, id: i64) -> Result<(), ClientError> {
        self.empty("DELETE", &format!("/scans/{id}"))
    }

    /// The user's machines.
    pub fn machines(&self) -> Result<Vec<Machine>, ClientError> {
        self.json("GET", "/machines", Body::None)
    }

    /// Registers a repository by its sources.list line.
    pub fn repo_add(&self, line: &str) -> Result<Repo, ClientError> {
        let new = NewRepo {
            line: line.to_string(),
        };
        self.json("POST", "/repos", Self::body(&new))
    }

    /// Fetches and verifies a repository's index now.
    pub fn repo_sync(&self, id: i64) -> Result<Repo, ClientError> {
        self.json("POST", &format!("/repos/{id}/sync"), Body::None)
    }

    /// The user's repositories.
    pub fn repos(&self) -> Result<Vec<Repo>, ClientError> {
        self.json("GET", "/repos", Body::None)
    }

    /// Removes a repository.
    pub fn repo_delete(&self, id: i64) -> Result<(), ClientError> {
        self.empty("DELETE", &format!("/repos/{id}"))
    }

    /// The packages the server recreated for the user.
    pub fn packages(&self) -> Result<Vec<Package>, ClientError> {
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
    ) -> Result<Image, ClientError> {
        let new = NewImage {
            format: format.to_string(),
            target: target.map(str::to_string),
            network: network.map(str::to_string),
            allow_upgrades: false,
        };
        self.queue_image(scan, &new)
    }

    /// Queues an image of a complete scan as `new` describes (see [`Client::create_image`]).
    pub fn queue_image(&self, scan: i64, new: &NewImage) -> Result<Image, ClientError> {
        self.json("POST", &format!("/scans/{scan}/images"), Self::body(new))
    }

    /// The user's image jobs, newest first, optionally those of one scan.
    pub fn list_images(&self, scan: Option<i64>) -> Result<Vec<Image>, ClientError> {
        match scan {
            Some(s) => self.json("GET", &format!("/images?scan={s}"), Body::None),
            None => self.json("GET", "/images", Body::None),
        }
    }

    /// One image job: status, phase, progress, error, size, SHA-256...
    pub fn image(&self, id: i64) -> Result<Image, ClientError> {
        self.json("GET", &format!("/images/{id}"), Body::None)
    }

    /// The tuning log of a finished image: every change the build made to the scanned files.
    pub fn tuning_log(&self, id: i64) -> Result<TuningLog, ClientError> {
        self.json("GET", &format!("/images/{id}/tuning-log"), Body::None)
    }

    /// Copies the log a failed image job kept (the whole output of the step that failed) to
    /// `out`; the bytes written.
    pub fn image_log(&self, id: i64, out: &mut dyn Write) -> Result<u64, ClientError> {
        let route = format!("/images/{id}/log");
        let url = format!("{}{route}", self.base);
        let resp = self.call("GET", &route, Body::None)?;
        std::io::copy(&mut resp.into_reader(), out).map_err(|e| ClientError::Transport {
            url,
            message: format!("the log broke off: {e}"),
        })
    }

    /// Puts a finished image at `path` without copying it, when this process runs on the
    /// server's host, can read the server's file and `path` is on the same filesystem: a
    /// reflink (a copy-on-write clone, which writing to leaves the server's file alone) where
    /// the filesystem has them, a hard link (the very bytes the server serves) elsewhere.
    /// Fails, saying which condition does not hold, otherwise.
    pub fn link_image(&self, id: i64, path: &Path) -> Result<Linked, ClientError> {
        use std::os::unix::fs::MetadataExt;
        let f: ImageFile = self.json("GET", &format!("/images/{id}/file"), Body::None)?;
        let server = Path::new(&f.path);
        let unusable = |why: String| {
            ClientError::Core(uforge_core::Error::Invalid(format!(
                "cannot link image {id} to {}: {why}; download it without --link",
                path.display()
            )))
        };
        let meta = std::fs::metadata(server).map_err(|e| {
            unusable(format!(
                "the server's file {} is not reachable from here ({e}): the client must run on \
                 the server's host, as a user that can read its data directory",
                f.path
            ))
        })?;
        if (meta.dev(), meta.ino(), meta.len()) != (f.device, f.inode, f.size) {
            return Err(unusable(format!(
                "{} here is not the server's file: the client runs on another host",
                f.path
            )));
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let dest_dev = std::fs::metadata(dir)
            .map_err(|e| ClientError::Core(uforge_core::Error::io("stat", dir, e)))?
            .dev();
        if dest_dev != meta.dev() {
            return Err(unusable(format!(
                "it is on another filesystem than the server's data directory ({})",
                f.path
            )));
        }
        match reflink(server, path) {
            Ok(()) => return Ok(Linked::Reflink),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                return Err(ClientError::Core(uforge_core::Error::io("create", path, e)))
            }
            // No clones on this filesystem: a hard link, then.
            Err(_) => {}
        }
        std::fs::hard_link(server, path)
            .map_err(|e| unusable(format!("linking to {} failed: {e}", f.path)))?;
        Ok(Linked::HardLink)
    }

    /// Downloads a finished image to `path` and returns its size. The bytes go to
    /// `PATH.partial`, which becomes `path` only once every byte the server announced has
    /// arrived and is on disk; on any error it is removed, so `path` never holds half an
    /// image.
    pub fn download_image(&self, id: i64, path: &Path) -> Result<u64, ClientError> {
        self.download_image_with(id, path, &uforge_core::progress::NoProgress)
    }

    /// [`Client::download_image`], reporting a `download` phase (the image's size as its total)
    /// and the bytes as they arrive to `progress`.
    pub fn download_image_with(
        &self,
        id: i64,
        path: &Path,
        progress: &dyn uforge_core::progress::Progress,
    ) -> Result<u64, ClientError> {
        let meta = self.image(id)?;
        let route = format!("/images/{id}/download");
        let url = format!("{}{route}", self.base);
        let resp = self.call("GET", &route, Body::None)?;
        let announced = resp
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let expected = meta.size.and_then(|s| u64::try_from(s).ok()).or(announced);
        let partial = partial_path(path);
        let result = (|| {
            progress.phase("download", expected);
            let received = save(resp.into_reader(), &partial, &url, progress)?;
            progress.finish();
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
        self.empty("DELETE", &format!("/images/{id}"))
    }

    /// Adds a publish target; its credentials are sealed by the server and never returned.
    pub fn add_target(&self, target: &NewTarget) -> Result<Target, ClientError> {
        self.json("POST", "/targets", Self::body(target))
    }

    /// The user's targets, by name.
    pub fn targets(&self) -> Result<Vec<Target>, ClientError> {
        self.json("GET", "/targets", Body::None)
    }

    /// One target, by name or id.
    pub fn target(&self, name: &str) -> Result<Target, ClientError> {
        self.json("GET", &format!("/targets/{}", segment(name)), Body::None)
    }

    /// Replaces a target's credentials.
    pub fn set_target_credentials(
        &self,
        name: &str,
        credentials: &TargetCredentials,
    ) -> Result<Target, ClientError> {
        self.json(
            "PUT",
            &format!("/targets/{}/credentials", segment(name)),
            Self::body(credentials),
        )
    }

    /// Deletes a target (refused while publications to it are recorded).
    pub fn delete_target(&self, name: &str) -> Result<(), ClientError> {
        self.empty("DELETE", &format!("/targets/{}", segment(name)))
    }

    /// Queues the publication of a finished image (a deployment, with `start`, `memory` or
    /// `cpus` on a libvirt target).
    pub fn publish_image(
        &self,
        image: i64,
        request: &NewPublication,
    ) -> Result<Publication, ClientError> {
        self.json(
            "POST",
            &format!("/images/{image}/publications"),
            Self::body(request),
        )
    }

    /// The user's publications, newest first, optionally those of one image.
    pub fn publications(&self, image: Option<i64>) -> Result<Vec<Publication>, ClientError> {
        match image {
            Some(i) => self.json("GET", &format!("/publications?image={i}"), Body::None),
            None => self.json("GET", "/publications", Body::None),
        }
    }

    /// One publication: status, phase, bytes sent, error, location and digest.
    pub fn publication(&self, id: i64) -> Result<Publication, ClientError> {
        self.json("GET", &format!("/publications/{id}"), Body::None)
    }

    /// Queues a failed publication again; it resumes.
    pub fn retry_publication(&self, id: i64) -> Result<Publication, ClientError> {
        self.json("POST", &format!("/publications/{id}/retry"), Body::None)
    }

    /// Deletes a publication and what it pushed (the server answers 502 naming the target
    /// if the target refuses).
    pub fn delete_publication(&self, id: i64) -> Result<(), ClientError> {
        self.empty("DELETE", &format!("/publications/{id}"))
    }
}

/// A path segment: target names are a safe alphabet, but a name typed by a user may not be.
fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How [`Client::link_image`] put the image in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linked {
    /// A copy-on-write clone: its own file, sharing blocks until written.
    Reflink,
    /// A second name of the server's file: writing to it changes the server's image.
    HardLink,
}

/// Clones `from` as a new file `to` (`FICLONE`); on failure nothing is left at `to`.
fn reflink(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let src = File::open(from)?;
    let dest = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)?;
    // SAFETY: both descriptors are open for the duration of the call; FICLONE takes the
    // source descriptor as its argument and writes nothing to memory.
    let r = unsafe { libc::ioctl(dest.as_raw_fd(), libc::FICLONE as _, src.as_raw_fd()) };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    drop(dest);
    let _ = std::fs::remove_file(to);
    Err(e)
}

/// `PATH.partial`, beside `path`.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".partial");
    PathBuf::from(name)
}

/// Copies a download into a new file at `dest`, synced to disk; the bytes written. Errors
/// say whether the network (`url`) or the file failed.
fn save(
    mut from: impl Read,
    dest: &Path,
    url: &str,
    progress: &dyn uforge_core::progress::Progress,
) -> Result<u64, ClientError> {
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
        progress.advance(0, n as u64);
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
