//! The registry target: container images pushed with the Docker registry HTTP API v2 (what
//! Docker Hub, Harbor, GitLab, ECR and the CNCF distribution registry speak) to
//! `REGISTRY/NAMESPACE/REPO:TAG` as an image manifest and its blobs.
//!
//! - Authentication follows the `/v2/` challenge: Basic, or a Bearer token for the
//!   repository's `pull,push` scope from the token service the registry names.
//! - A blob the repository has (HEAD) is not sent again. Small blobs go up in one request;
//!   large ones in PATCH chunks, each a checkpoint (the upload's newest `Location` and offset).
//!   A cut upload resumes after the last chunk the registry confirmed; when the registry
//!   holds more than that (a chunk cut half way: the CNCF registry keeps its bytes but every
//!   `Location` it handed out names the old offset, so it refuses to go on), that blob starts
//!   again with a new upload.
//! - The manifest is pushed as the archive holds it (for a docker-archive, an OCI manifest
//!   of its config and uncompressed layers), and the digest the registry reports, then the
//!   one its tag resolves to, must be the manifest's.

mod archive;
mod auth;

use std::fs::File;
use std::io::Read;
use std::sync::Mutex;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use self::archive::{Blob, Data, Image};
use self::auth::Challenge;
use super::error::{ErrorKind, Result, TargetError};
use super::http::{body_text, Body, Http};
use super::io::FileRange;
use super::{
    Credentials, Publication, PublishRequest, Published, Publisher, RegistryTarget, TargetSpec,
};
use crate::progress::Progress;

const DEFAULT_CHUNK: u64 = 32 << 20;

/// Publishes container images to a registry.
pub struct RegistryPublisher {
    spec: TargetSpec,
    t: RegistryTarget,
    http: Http,
    /// `https://host:port`.
    base: String,
    /// `host:port`, as references name it.
    host: String,
    credentials: Credentials,
    /// The `Authorization` header in use, once the challenge was answered.
    authorization: Mutex<Option<String>>,
}

/// Where a chunked upload of one blob stands.
#[derive(Serialize, Deserialize)]
struct Checkpoint {
    location: String,
    offset: u64,
}

/// A checked `NAMESPACE/REPO` and tag.
struct Reference {
    repository: String,
    tag: String,
}

fn valid_repository(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 255
        && r.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
        })
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && (t.as_bytes()[0].is_ascii_alphanumeric() || t.as_bytes()[0] == b'_')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Appends `digest=D` to an upload location.
fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={}", digest.replace(':', "%3A"))
}

/// What a registry request carries; a stream is made anew for each try.
enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    Stream(&'a dyn Fn() -> Box<dyn Read + 'a>, u64),
}

/// Counts a request body into the progress. A cancel takes effect between chunks, never in
/// one: a chunk cut half way would spoil the registry's upload session.
struct Sending<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for Sending<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(0, n as u64);
        Ok(n)
    }
}

impl RegistryPublisher {
    /// A publisher for `target`, with a user name and password, a token, or nothing.
    pub fn new(target: RegistryTarget, credentials: Credentials) -> Result<Self> {
        let spec = TargetSpec::Registry(target.clone());
        let name = spec.display();
        if matches!(credentials, Credentials::AccessKey { .. }) {
            return Err(TargetError::new(
                &name,
                ErrorKind::Invalid,
                "a registry takes a user name and password or a token, not an access key",
            ));
        }
        let raw = target.registry.trim_end_matches('/');
        let (base, host) = if let Some(h) = raw.strip_prefix("https://") {
            (raw.to_string(), h.to_string())
        } else if let Some(h) = raw.strip_prefix("http://") {
            (raw.to_string(), h.to_string())
        } else if raw == "docker.io" || raw == "index.docker.io" {
            (
                "https://registry-1.docker.io".to_string(),
                "docker.io".to_string(),
            )
        } else {
            (format!("https://{raw}"), raw.to_string())
        };
        if host.is_empty() || host.contains('/') {
            return Err(TargetError::new(
                &name,
                ErrorKind::Invalid,
                format!("`{raw}` is not a registry host"),
            ));
        }
        Ok(RegistryPublisher {
            http: Http::new(&name, &target.tls)?,
            spec,
            t: target,
            base,
            host,
            credentials,
            authorization: Mutex::new(None),
        })
    }

    fn err(&self, kind: ErrorKind, msg: impl Into<String>) -> TargetError {
        TargetError::new(&self.http.target, kind, msg)
    }

    fn reference(&self, req: &PublishRequest<'_>, image: &Image) -> Result<Reference> {
        let (repo, tag) = match &req.name {
            Some(n) => match n.rsplit_once(':') {
                Some((r, t)) if !t.contains('/') => (r.to_string(), Some(t.to_string())),
                _ => (n.clone(), None),
            },
            None => (
                image.name.clone().unwrap_or_else(|| "uforge-image".into()),
                None,
            ),
        };
        let tag = tag
            .or_else(|| image.tag.clone())
            .unwrap_or_else(|| "latest".into());
        let ns = self.t.namespace.trim_matches('/');
        let mut repository = if ns.is_empty() {
            repo
        } else {
            format!("{ns}/{repo}")
        };
        if self.host == "docker.io" && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        if !valid_repository(&repository) {
            return Err(self.err(
                ErrorKind::Invalid,
                format!("`{repository}` is not a repository name (lower-case letters, digits, `._-`, `/` between parts)"),
            ));
        }
        if !valid_tag(&tag) {
            return Err(self.err(ErrorKind::Invalid, format!("`{tag}` is not a tag")));
        }
        Ok(Reference { repository, tag })
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        }
    }

    /// Answers the registry's challenge for `repository` and keeps the header.
    fn authorize(&self, repository: &str) -> Result<()> {
        let what = "checking the registry (GET /v2/)";
        let probe =
            |auth: Option<&str>| -> Result<std::result::Result<ureq::Response, ureq::Response>> {
                let mut r = self.http.agent.get(&self.url("/v2/"));
                if let Some(a) = auth {
                    r = r.set("Authorization", a);
                }
                self.http.send(r, Body::Empty, what)
            };
        let challenge = match probe(None)? {
            Ok(_) => {
                *self.authorization.lock().expect("not poisoned") = None;
                return Ok(());
            }
            Err(r) if r.status() == 401 => {
                let h = r.header("www-authenticate").unwrap_or_default().to_string();
                auth::parse_challenge(&h).ok_or_else(|| {
                    self.err(
                        ErrorKind::Unauthorized,
                        format!("the registry asks for `{h}`, which uforge cannot answer"),
                    )
                })?
            }
            Err(r) => {
                let status = r.status();
                return Err(self.http.status_error(what, status, &body_text(r, 4096)));
            }
        };
        let header = match (challenge, &self.credentials) {
            (_, Credentials::Token { token }) => format!("Bearer {}", token.expose()),
            (Challenge::Basic, Credentials::Password { username, password }) => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()))
            ),
            (Challenge::Basic, _) => {
                return Err(self.err(
                    ErrorKind::Unauthorized,
                    "the registry asks for a user name and password",
                ))
            }
            (Challenge::Bearer { realm, service }, creds) => {
                self.token(&realm, service.as_deref(), repository, creds)?
            }
        };
        match probe(Some(&header))? {
            Ok(_) => {}
            Err(r) if r.status() == 401 || r.status() == 403 => {
                let who = match &self.credentials {
                    Credentials::Password { username, .. } => format!("the password of {username}"),
                    Credentials::Token { .. } => "the token".to_string(),
                    _ => "anonymous access".to_string(),
                };
                return Err(self.err(
                    ErrorKind::Unauthorized,
                    format!("the registry refused {who} (HTTP {})", r.status()),
                ));
            }
            Err(r) => {
                let status = r.status();
                return Err(self.http.status_error(what, status, &body_text(r, 4096)));
            }
        }
        *self.authorization.lock().expect("not poisoned") = Some(header);
        Ok(())
    }

    /// A Bearer token from the token service `realm`.
    fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        repository: &str,
        creds: &Credentials,
    ) -> Result<String> {
        let what = "getting a token from the registry's token service";
        let mut r = self
            .http
            .agent
            .get(realm)
            .query("scope", &format!("repository:{repository}:pull,push"));
        if let Some(s) = service {
            r = r.query("service", s);
        }
        if let Credentials::Password { username, password } = creds {
            r = r.set(
                "Authorization",
                &format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{}", password.expose()))
                ),
            );
        }
        let resp = match self.http.send(r, Body::Empty, what)? {
            Ok(r) => r,
            Err(r) if r.status() == 401 || r.status() == 403 => {
                let who = match creds {
                    Credentials::Password { username, .. } => format!("the password of {username}"),
                    _ => "anonymous access".to_string(),
                };
                return Err(self.err(
                    ErrorKind::Unauthorized,
                    format!("the token service refused {who} (HTTP {})", r.status()),
                ));
            }
            Err(r) => {
                let status = r.status();
                return Err(self.http.status_error(what, status, &body_text(r, 4096)));
            }
        };
        let v: serde_json::Value =
            serde_json::from_str(&body_text(resp, 1 << 20)).map_err(|e| {
                self.err(
                    ErrorKind::Rejected,
                    format!("{what}: unreadable answer: {e}"),
                )
            })?;
        let token = v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .unwrap_or_default();
        if token.is_empty() {
            return Err(self.err(
                ErrorKind::Rejected,
                format!("{what}: the answer holds no token"),
            ));
        }
        Ok(format!("Bearer {token}"))
    }

    /// Sends a request with the current authorization; on a 401 (an expired token), answers
    /// the challenge again and sends it once more.
    fn call(
        &self,
        repository: &str,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
        what: &str,
    ) -> Result<std::result::Result<ureq::Response, ureq::Response>> {
        for attempt in 0..2 {
            let mut r = self.http.agent.request(method, &self.url(url));
            if let Some(a) = self.authorization.lock().expect("not poisoned").as_deref() {
                r = r.set("Authorization", a);
            }
            for (k, v) in headers {
                r = r.set(k, v);
            }
            let mut reader;
            let body = match &payload {
                Payload::Empty => Body::Empty,
                Payload::Bytes(b) => Body::Bytes(b),
                Payload::Stream(make, len) => {
                    reader = make();
                    Body::Stream(&mut *reader, *len)
                }
            };
            match self.http.send(r, body, what)? {
                Err(resp) if resp.status() == 401 && attempt == 0 => self.authorize(repository)?,
                other => return Ok(other),
            }
        }
        unreachable!("the loop returns")
    }

    /// The error of a registry error answer: `{"errors":[{"code":…,"message":…}]}`.
    fn error(&self, what: &str, resp: ureq::Response) -> TargetError {
        let status = resp.status();
        let body = body_text(resp, 64 << 10);
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                let e = v["errors"].as_array()?.first()?.clone();
                Some(format!(
                    "{}: {}",
                    e["code"].as_str()?,
                    e["message"].as_str().unwrap_or_default()
                ))
            })
            .unwrap_or_default();
        let mut e = self.http.status_error(what, status, &detail);
        if detail.starts_with("DIGEST_INVALID") || detail.starts_with("SIZE_INVALID") {
            e.kind = ErrorKind::Mismatch;
        }
        e
    }

    fn blob_present(&self, repository: &str, blob: &Blob) -> Result<bool> {
        let what = format!("HEAD blob {}", blob.digest);
        match self.call(
            repository,
            "HEAD",
            &format!("/v2/{repository}/blobs/{}", blob.digest),
            &[],
            Payload::Empty,
            &what,
        )? {
            Ok(r) => Ok(r.header("content-length").and_then(|l| l.parse().ok()) == Some(blob.size)),
            Err(r) if r.status() == 404 => Ok(false),
            Err(r) => Err(self.error(&what, r)),
        }
    }

    /// A new upload session: its location.
    fn start_upload(&self, repository: &str, digest: &str) -> Result<String> {
        let what = format!("starting the upload of {digest}");
        match self.call(
            repository,
            "POST",
            &format!("/v2/{repository}/blobs/uploads/"),
            &[("Content-Length", "0")],
            Payload::Empty,
            &what,
        )? {
            Ok(r) if r.status() == 202 => {
                r.header("location").map(str::to_string).ok_or_else(|| {
                    self.err(
                        ErrorKind::Rejected,
                        format!("{what}: no Location in the answer"),
                    )
                })
            }
            Ok(r) => Err(self.err(ErrorKind::Rejected, format!("{what}: HTTP {}", r.status()))),
            Err(r) => Err(self.error(&what, r)),
        }
    }

    /// Where a saved upload session stands, if the registry still has it at that offset.
    fn upload_status(&self, repository: &str, cp: &Checkpoint) -> Result<Option<String>> {
        let what = "checking an unfinished upload";
        match self.call(repository, "GET", &cp.location, &[], Payload::Empty, what)? {
            Ok(r) if r.status() == 204 => {
                let end: Option<u64> = r
                    .header("range")
                    .and_then(|v| v.rsplit_once('-'))
                    .and_then(|(_, e)| e.parse().ok());
                let have = end.map_or(0, |e| e + 1);
                let location = r.header("location").unwrap_or(&cp.location).to_string();
                Ok((have == cp.offset).then_some(location))
            }
            Ok(_) => Ok(None),
            // Unknown or invalid (the registry moved past the offset): start again.
            Err(r) if matches!(r.status(), 400 | 404 | 416) => Ok(None),
            Err(r) => Err(self.error(what, r)),
        }
    }

    /// Pushes one blob unless the repository has it; returns the bytes sent.
    fn push_blob(
        &self,
        repository: &str,
        file: &File,
        blob: &Blob,
        req: &PublishRequest<'_>,
        progress: &dyn Progress,
    ) -> Result<u64> {
        if self.blob_present(repository, blob)? {
            return Ok(0);
        }
        let key = format!("registry {} {repository} {}", self.host, blob.digest);
        let chunk = if self.t.chunk_size == 0 {
            DEFAULT_CHUNK
        } else {
            self.t.chunk_size
        };
        let saved: Option<Checkpoint> = req
            .checkpoints
            .load(&key)
            .and_then(|s| serde_json::from_str(&s).ok());
        let (mut location, mut offset) = match saved {
            Some(cp) if cp.offset < blob.size => match self.upload_status(repository, &cp)? {
                Some(loc) => (loc, cp.offset),
                None => (self.start_upload(repository, &blob.digest)?, 0),
            },
            _ => (self.start_upload(repository, &blob.digest)?, 0),
        };
        let reader = |off: u64, len: u64| -> Box<dyn Read + '_> {
            let inner: Box<dyn Read + '_> = match &blob.data {
                Data::Member(at) => Box::new(FileRange::new(file, at + off, len)),
                Data::Memory(b) => Box::new(&b[off as usize..(off + len) as usize]),
            };
            Box::new(Sending { inner, progress })
        };
        let mut sent = 0;
        // Small blobs go in the closing PUT; large ones in PATCH chunks first.
        while offset < blob.size && (offset > 0 || blob.size > chunk) {
            req.check_cancel(&self.http.target)?;
            let len = chunk.min(blob.size - offset);
            let range = format!("{offset}-{}", offset + len - 1);
            let what = format!("sending bytes {range} of blob {}", blob.digest);
            let make = || reader(offset, len);
            let resp = self.call(
                repository,
                "PATCH",
                &location,
                &[
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Range", &range),
                ],
                Payload::Stream(&make, len),
                &what,
            );
            let resp = match resp {
                Err(e) => {
                    req.check_cancel(&self.http.target)?;
                    return Err(e);
                }
                Ok(Err(r)) => return Err(self.error(&what, r)),
                Ok(Ok(r)) => r,
            };
            let confirmed: Option<u64> = resp
                .header("range")
                .and_then(|v| v.rsplit_once('-'))
                .and_then(|(_, e)| e.parse().ok());
            if confirmed != Some(offset + len - 1) {
                req.checkpoints.remove(&key);
                return Err(self.err(
                    ErrorKind::Mismatch,
                    format!(
                        "blob {}: the registry holds {confirmed:?} after bytes {range}",
                        blob.digest
                    ),
                ));
            }
            location = resp.header("location").unwrap_or(&location).to_string();
            offset += len;
            sent += len;
            let cp = serde_json::to_string(&Checkpoint {
                location: location.clone(),
                offset,
            })
            .expect("serializable");
            let _ = req.checkpoints.save(&key, &cp);
        }
        let rest = blob.size - offset;
        let what = format!("completing blob {}", blob.digest);
        let make = || reader(offset, rest);
        let payload = if rest == 0 {
            Payload::Empty
        } else {
            Payload::Stream(&make, rest)
        };
        let mut headers = vec![("Content-Type", "application/octet-stream")];
        if rest == 0 {
            headers.push(("Content-Length", "0"));
        }
        let resp = self.call(
            repository,
            "PUT",
            &with_digest(&location, &blob.digest),
            &headers,
            payload,
            &what,
        );
        req.checkpoints.remove(&key);
        match resp {
            Err(e) => {
                req.check_cancel(&self.http.target)?;
                Err(e)
            }
            Ok(Err(r)) => Err(self.error(&what, r)),
            Ok(Ok(_)) => Ok(sent + rest),
        }
    }
}

impl Publisher for RegistryPublisher {
    fn target(&self) -> &TargetSpec {
        &self.spec
    }

    fn publish(&self, req: &PublishRequest<'_>, progress: &dyn Progress) -> Result<Publication> {
        progress.phase("check", None);
        let (file, image) = archive::open(&self.http.target, req.image, req.format)?;
        let r = self.reference(req, &image)?;
        self.authorize(&r.repository)?;
        progress.finish();
        let total: u64 = image.blobs.iter().map(|b| b.size).sum();
        progress.phase("upload", Some(total));
        let mut sent = 0;
        for blob in &image.blobs {
            sent += self.push_blob(&r.repository, &file, blob, req, progress)?;
        }
        progress.finish();

        progress.phase("commit", None);
        let digest = format!(
            "sha256:{}",
            crate::blobstore::to_hex(&Sha256::digest(&image.manifest).into())
        );
        let what = format!("pushing the manifest of {}:{}", r.repository, r.tag);
        let path = format!("/v2/{}/manifests/{}", r.repository, r.tag);
        let resp = self.call(
            &r.repository,
            "PUT",
            &path,
            &[("Content-Type", &image.media_type)],
            Payload::Bytes(&image.manifest),
            &what,
        )?;
        let pushed = match resp {
            Ok(r) => r.header("docker-content-digest").map(str::to_string),
            Err(resp) => return Err(self.error(&what, resp)),
        };
        let what = format!("checking {}:{}", r.repository, r.tag);
        let resolved = match self.call(
            &r.repository,
            "HEAD",
            &path,
            &[("Accept", &image.media_type)],
            Payload::Empty,
            &what,
        )? {
            Ok(resp) => resp.header("docker-content-digest").map(str::to_string),
            Err(resp) => return Err(self.error(&what, resp)),
        };
        for (who, d) in [
            ("the registry stored", pushed),
            ("the tag resolves to", resolved),
        ] {
            if let Some(d) = d {
                if d != digest {
                    return Err(self.err(
                        ErrorKind::Mismatch,
                        format!(
                            "{}:{}: {who} {d}, not the manifest's {digest}",
                            r.repository, r.tag
                        ),
                    ));
                }
            }
        }
        progress.finish();
        Ok(Publication {
            kind: self.spec.kind(),
            target: self.http.target.clone(),
            location: format!("{}/{}:{}@{digest}", self.host, r.repository, r.tag),
            digest: digest.clone(),
            size: total + image.manifest.len() as u64,
            sent,
            items: vec![Published::Manifest {
                repository: r.repository,
                digest,
            }],
            instance: None,
        })
    }

    fn delete(&self, publication: &Publication) -> Result<()> {
        for item in &publication.items {
            if let Published::Manifest { repository, digest } = item {
                self.authorize(repository)?;
                let what = format!("deleting {repository}@{digest}");
                match self.call(
                    repository,
                    "DELETE",
                    &format!("/v2/{repository}/manifests/{digest}"),
                    &[],
                    Payload::Empty,
                    &what,
                )? {
                    Ok(_) => {}
                    Err(r) if r.status() == 404 => {}
                    Err(r) if r.status() == 405 => {
                        return Err(self.err(
                            ErrorKind::Unsupported,
                            format!("{what}: the registry does not allow deletes"),
                        ))
                    }
                    Err(r) => return Err(self.error(&what, r)),
                }
            }
        }
        Ok(())
    }
}
