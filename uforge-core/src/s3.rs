//! A synchronous client of S3-compatible object stores (AWS S3, Garage, MinIO, Ceph RGW):
//! what publishing needs and what a blob store on S3 needs — HEAD, ranged GET, PUT, DELETE,
//! listing, and multipart uploads that can be listed and resumed, where nothing is visible
//! under the key until the upload is completed.
//!
//! Requests are signed by `rusty-s3` (SigV4 in the query string, so bodies stream without
//! being hashed first) and sent with core's ureq agent. Path-style addressing and any region
//! name work, which stores other than AWS need (Garage: region `garage`, path style).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::ops::Range;
use std::time::Duration;

use rusty_s3::actions::{
    AbortMultipartUpload, CompleteMultipartUpload, CreateMultipartUpload, DeleteObject, GetObject,
    HeadObject, ListObjectsV2, ListParts, PutObject, UploadPart,
};
use rusty_s3::{Bucket, S3Action, UrlStyle};
use serde::Deserialize;

use crate::publish::error::{redact_url, ErrorKind, Result, TargetError};
use crate::publish::http::{body_text, Body, Http};
use crate::publish::{Credentials, TlsSettings};

/// How long a signed request stays valid: it only has to start within this time.
const SIGNED_FOR: Duration = Duration::from_secs(3600);

/// Where a bucket is.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The endpoint URL (`https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:3900`).
    pub endpoint: String,
    /// The region requests are signed for.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// Path-style addressing (`ENDPOINT/BUCKET/KEY`) rather than virtual-host style.
    pub path_style: bool,
    /// TLS settings.
    pub tls: TlsSettings,
}

/// What HEAD tells of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// The ETag, without quotes.
    pub etag: String,
    /// User metadata (`x-amz-meta-NAME`), by lower-case NAME.
    pub metadata: BTreeMap<String, String>,
}

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    /// Its key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// The ETag, without quotes.
    pub etag: String,
}

/// A stored part of an unfinished multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    /// Part number, from 1.
    pub number: u16,
    /// Size in bytes.
    pub size: u64,
    /// The ETag, without quotes (the part's MD5 in hex, on stores without encryption).
    pub etag: String,
}

/// An unfinished multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    /// The key it will complete to.
    pub key: String,
    /// Its id.
    pub upload_id: String,
    /// When it started (RFC 3339, as the store says).
    pub initiated: String,
}

/// A connection to one bucket.
pub struct S3Client {
    http: Http,
    bucket: Bucket,
    credentials: Option<rusty_s3::Credentials>,
}

impl std::fmt::Debug for S3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Client")
            .field("target", &self.http.target)
            .finish_non_exhaustive()
    }
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('"').to_string()
}

impl S3Client {
    /// A client of `config.bucket`, named `target` in errors, with an access key (or none,
    /// for a public bucket).
    pub fn new(target: &str, config: &S3Config, credentials: &Credentials) -> Result<Self> {
        let bad = |m: String| TargetError::new(target, ErrorKind::Invalid, m);
        let endpoint = config
            .endpoint
            .parse()
            .map_err(|e| bad(format!("endpoint {}: {e}", redact_url(&config.endpoint))))?;
        let style = if config.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            endpoint,
            style,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| bad(format!("bucket {}: {e}", config.bucket)))?;
        let credentials = match credentials {
            Credentials::None => None,
            Credentials::AccessKey {
                access_key_id,
                secret_access_key,
                session_token,
            } => Some(match session_token {
                Some(t) => rusty_s3::Credentials::new_with_token(
                    access_key_id,
                    secret_access_key.expose(),
                    t.expose(),
                ),
                None => rusty_s3::Credentials::new(access_key_id, secret_access_key.expose()),
            }),
            other => {
                return Err(bad(format!(
                    "S3 takes an access key, not {} credentials",
                    other.kind()
                )))
            }
        };
        Ok(S3Client {
            http: Http::new(target, &config.tls)?,
            bucket,
            credentials,
        })
    }

    /// The target's name, as errors give it.
    pub fn target(&self) -> &str {
        &self.http.target
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        self.bucket.name()
    }

    fn request(&self, method: &str, url: &url::Url) -> ureq::Request {
        self.http.agent.request_url(method, url)
    }

    /// Sends a signed request and returns the successful answer; an S3 error answer becomes a
    /// [`TargetError`] classified by its code.
    fn exchange(
        &self,
        method: &str,
        url: url::Url,
        headers: &[(&str, &str)],
        body: Body<'_>,
        what: &str,
    ) -> Result<ureq::Response> {
        let mut req = self.request(method, &url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        match self.http.send(req, body, what)? {
            Ok(r) => Ok(r),
            Err(r) => Err(self.error(what, r)),
        }
    }

    /// The error of an S3 error answer: `<Error><Code>…</Code><Message>…</Message>`.
    fn error(&self, what: &str, resp: ureq::Response) -> TargetError {
        let status = resp.status();
        let body = body_text(resp, 64 << 10);
        let code = xml_field(&body, "Code").unwrap_or_default();
        let message = xml_field(&body, "Message").unwrap_or_default();
        let mut e = self.http.status_error(
            what,
            status,
            &[code.as_str(), message.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(": "),
        );
        let text = format!("{code} {message}").to_ascii_lowercase();
        e.kind = match code.as_str() {
            "AccessDenied"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "AuthorizationHeaderMalformed"
            | "InvalidToken"
            | "ExpiredToken"
                if !text.contains("quota") =>
            {
                ErrorKind::Unauthorized
            }
            "NoSuchBucket" | "NoSuchKey" | "NoSuchUpload" => ErrorKind::NotFound,
            "EntityTooLarge" | "QuotaExceeded" | "InsufficientStorage" | "StorageFull" => {
                ErrorKind::NoSpace
            }
            _ if text.contains("quota") => ErrorKind::NoSpace,
            "SlowDown" | "InternalError" | "ServiceUnavailable" => ErrorKind::Server,
            _ => e.kind,
        };
        e
    }

    /// What HEAD says of `key`, or `None` when there is no such object.
    pub fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let what = format!("HEAD {key}");
        let url = HeadObject::new(&self.bucket, self.credentials.as_ref(), key).sign(SIGNED_FOR);
        let resp = match self
            .http
            .send(self.request("HEAD", &url), Body::Empty, &what)?
        {
            Ok(r) => r,
            Err(r) if r.status() == 404 => return Ok(None),
            // A HEAD answer has no body to say why: ask again with a GET of one byte, whose
            // error document names the problem (a wrong region, say).
            Err(r) => {
                let status = r.status();
                return Err(match self.get(key, Some(0..1)) {
                    Err(e) => e,
                    Ok(_) => self.http.status_error(&what, status, ""),
                });
            }
        };
        let size = resp
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let metadata = resp
            .headers_names()
            .into_iter()
            .filter_map(|h| {
                let name = h
                    .to_ascii_lowercase()
                    .strip_prefix("x-amz-meta-")?
                    .to_string();
                Some((name, resp.header(&h)?.to_string()))
            })
            .collect();
        Ok(Some(ObjectInfo {
            size,
            etag: resp.header("etag").map(unquote).unwrap_or_default(),
            metadata,
        }))
    }

    /// Reads `key`, or the bytes `range` of it, as a stream.
    pub fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Box<dyn Read + Send>> {
        let what = format!("GET {key}");
        let url = GetObject::new(&self.bucket, self.credentials.as_ref(), key).sign(SIGNED_FOR);
        let header;
        let mut headers = Vec::new();
        if let Some(r) = &range {
            if r.is_empty() {
                return Ok(Box::new(std::io::empty()));
            }
            header = format!("bytes={}-{}", r.start, r.end - 1);
            headers.push(("Range", header.as_str()));
        }
        let resp = self.exchange("GET", url, &headers, Body::Empty, &what)?;
        if range.is_some() && resp.status() != 206 {
            return Err(TargetError::new(
                self.target(),
                ErrorKind::Rejected,
                format!(
                    "{what}: the store ignored the byte range (HTTP {})",
                    resp.status()
                ),
            ));
        }
        Ok(Box::new(resp.into_reader()))
    }

    /// Stores `len` bytes from `body` as `key` in one request, with user metadata; returns
    /// the ETag. Stores limit this to 5 GiB: larger objects go up in parts.
    pub fn put(
        &self,
        key: &str,
        body: &mut dyn Read,
        len: u64,
        metadata: &[(&str, &str)],
    ) -> Result<String> {
        let what = format!("PUT {key}");
        let mut action = PutObject::new(&self.bucket, self.credentials.as_ref(), key);
        let meta = meta_headers(&mut action, metadata);
        let headers: Vec<(&str, &str)> =
            meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let url = action.sign(SIGNED_FOR);
        let resp = self.exchange("PUT", url, &headers, Body::Stream(body, len), &what)?;
        Ok(resp.header("etag").map(unquote).unwrap_or_default())
    }

    /// Deletes `key`; deleting what is not there succeeds (as S3 itself answers).
    pub fn delete(&self, key: &str) -> Result<()> {
        let what = format!("DELETE {key}");
        let url = DeleteObject::new(&self.bucket, self.credentials.as_ref(), key).sign(SIGNED_FOR);
        match self
            .http
            .send(self.request("DELETE", &url), Body::Empty, &what)?
        {
            Ok(_) => Ok(()),
            Err(r) if r.status() == 404 => Ok(()),
            Err(r) => Err(self.error(&what, r)),
        }
    }

    /// Every object whose key starts with `prefix`, in key order (all pages).
    pub fn list(&self, prefix: &str) -> Result<Vec<ObjectEntry>> {
        let what = format!("listing {prefix}*");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = ListObjectsV2::new(&self.bucket, self.credentials.as_ref());
            action.with_prefix(prefix.to_string());
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let url = action.sign(SIGNED_FOR);
            let text = read_text(self.exchange("GET", url, &[], Body::Empty, &what)?);
            let page = ListObjectsV2::parse_response(&text)
                .map_err(|e| self.malformed(&what, &e.to_string()))?;
            out.extend(page.contents.into_iter().map(|c| ObjectEntry {
                key: c.key,
                size: c.size,
                etag: unquote(&c.etag),
            }));
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    fn malformed(&self, what: &str, why: &str) -> TargetError {
        TargetError::new(
            self.target(),
            ErrorKind::Rejected,
            format!("{what}: unreadable answer: {why}"),
        )
    }

    /// Starts a multipart upload to `key` with user metadata; returns its id.
    pub fn create_multipart(&self, key: &str, metadata: &[(&str, &str)]) -> Result<String> {
        let what = format!("starting the upload of {key}");
        let mut action = CreateMultipartUpload::new(&self.bucket, self.credentials.as_ref(), key);
        let meta = meta_headers(&mut action, metadata);
        let headers: Vec<(&str, &str)> =
            meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let url = action.sign(SIGNED_FOR);
        let text = read_text(self.exchange("POST", url, &headers, Body::Empty, &what)?);
        let resp = CreateMultipartUpload::parse_response(&text)
            .map_err(|e| self.malformed(&what, &e.to_string()))?;
        Ok(resp.upload_id().to_string())
    }

    /// Sends part `number` (from 1) of an upload: `len` bytes from `body`. Returns its ETag.
    pub fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u16,
        body: &mut dyn Read,
        len: u64,
    ) -> Result<String> {
        let what = format!("sending part {number} of {key}");
        let url = UploadPart::new(
            &self.bucket,
            self.credentials.as_ref(),
            key,
            number,
            upload_id,
        )
        .sign(SIGNED_FOR);
        let resp = self.exchange("PUT", url, &[], Body::Stream(body, len), &what)?;
        Ok(resp.header("etag").map(unquote).unwrap_or_default())
    }

    /// The parts an unfinished upload holds, by number (all pages).
    pub fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<PartInfo>> {
        let what = format!("listing the parts of {key}");
        let mut out = Vec::new();
        let mut marker = None;
        loop {
            let mut action =
                ListParts::new(&self.bucket, self.credentials.as_ref(), key, upload_id);
            if let Some(m) = marker {
                action.set_part_number_marker(m);
            }
            let url = action.sign(SIGNED_FOR);
            let text = read_text(self.exchange("GET", url, &[], Body::Empty, &what)?);
            let page = ListParts::parse_response(&text)
                .map_err(|e| self.malformed(&what, &e.to_string()))?;
            out.extend(page.parts.into_iter().map(|p| PartInfo {
                number: p.number,
                size: p.size,
                etag: unquote(&p.etag),
            }));
            match page.next_part_number_marker {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        out.sort_by_key(|p| p.number);
        Ok(out)
    }

    /// Unfinished uploads to keys starting with `prefix` (the first 1,000).
    pub fn list_uploads(&self, prefix: &str) -> Result<Vec<UploadInfo>> {
        let what = format!("listing unfinished uploads of {prefix}*");
        let action = ListUploads {
            bucket: &self.bucket,
            credentials: self.credentials.as_ref(),
            prefix,
            query: rusty_s3::Map::new(),
            headers: rusty_s3::Map::new(),
        };
        let url = action.sign(SIGNED_FOR);
        let text = read_text(self.exchange("GET", url, &[], Body::Empty, &what)?);
        let parsed: ListUploadsResult =
            quick_xml::de::from_str(&text).map_err(|e| self.malformed(&what, &e.to_string()))?;
        Ok(parsed
            .uploads
            .into_iter()
            .map(|u| UploadInfo {
                key: u.key,
                upload_id: u.upload_id,
                initiated: u.initiated.unwrap_or_default(),
            })
            .collect())
    }

    /// Completes an upload from its parts 1..=N (their ETags in order); returns the object's
    /// ETag. Only now does the object appear under its key.
    pub fn complete(&self, key: &str, upload_id: &str, etags: &[String]) -> Result<String> {
        let what = format!("completing the upload of {key}");
        let action = CompleteMultipartUpload::new(
            &self.bucket,
            self.credentials.as_ref(),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(SIGNED_FOR);
        let body = action.body();
        let text =
            read_text(self.exchange("POST", url, &[], Body::Bytes(body.as_bytes()), &what)?);
        // S3 may answer 200 and report the failure in the body.
        if text.contains("<Error>") {
            let code = xml_field(&text, "Code").unwrap_or_default();
            let message = xml_field(&text, "Message").unwrap_or_default();
            let kind = if code == "EntityTooLarge" || message.to_ascii_lowercase().contains("quota")
            {
                ErrorKind::NoSpace
            } else {
                ErrorKind::Rejected
            };
            return Err(TargetError::new(
                self.target(),
                kind,
                format!("{what}: {code}: {message}"),
            ));
        }
        Ok(xml_field(&text, "ETag")
            .map(|e| unquote(&e.replace("&quot;", "\"")))
            .unwrap_or_default())
    }

    /// Abandons an upload and frees its parts.
    pub fn abort(&self, key: &str, upload_id: &str) -> Result<()> {
        let what = format!("abandoning the upload of {key}");
        let url =
            AbortMultipartUpload::new(&self.bucket, self.credentials.as_ref(), key, upload_id)
                .sign(SIGNED_FOR);
        match self
            .http
            .send(self.request("DELETE", &url), Body::Empty, &what)?
        {
            Ok(_) => Ok(()),
            Err(r) if r.status() == 404 => Ok(()),
            Err(r) => Err(self.error(&what, r)),
        }
    }
}

/// `x-amz-meta-NAME` headers of user metadata, signed into `action` and returned to be sent.
fn meta_headers<'a, A: S3Action<'a>>(
    action: &mut A,
    metadata: &[(&str, &str)],
) -> Vec<(String, String)> {
    let headers: Vec<(String, String)> = metadata
        .iter()
        .map(|(k, v)| {
            (
                format!("x-amz-meta-{}", k.to_ascii_lowercase()),
                v.to_string(),
            )
        })
        .collect();
    for (k, v) in &headers {
        action.headers_mut().insert(k.clone(), v.clone());
    }
    headers
}

fn read_text(resp: ureq::Response) -> String {
    body_text(resp, 16 << 20)
}

/// The text of the first `<NAME>…</NAME>` in an XML answer.
fn xml_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].to_string())
}

/// `GET /BUCKET?uploads&prefix=P`, which rusty-s3 has no action for.
struct ListUploads<'a> {
    bucket: &'a Bucket,
    credentials: Option<&'a rusty_s3::Credentials>,
    prefix: &'a str,
    query: rusty_s3::Map<'a>,
    headers: rusty_s3::Map<'a>,
}

impl<'a> S3Action<'a> for ListUploads<'a> {
    const METHOD: rusty_s3::Method = rusty_s3::Method::Get;

    fn query_mut(&mut self) -> &mut rusty_s3::Map<'a> {
        &mut self.query
    }

    fn headers_mut(&mut self) -> &mut rusty_s3::Map<'a> {
        &mut self.headers
    }

    fn sign_with_time(&self, expires_in: Duration, time: &jiff::Timestamp) -> url::Url {
        let url = self.bucket.base_url().clone();
        let query = [("prefix", self.prefix), ("uploads", "")];
        match self.credentials {
            Some(c) => rusty_s3::signing::sign(
                time,
                Self::METHOD,
                url,
                c.key(),
                c.secret(),
                c.token(),
                self.bucket.region(),
                expires_in.as_secs(),
                query.into_iter(),
                std::iter::empty(),
            ),
            None => {
                let mut url = url;
                url.query_pairs_mut().extend_pairs(query);
                url
            }
        }
    }
}

#[derive(Deserialize)]
struct ListUploadsResult {
    #[serde(rename = "Upload", default)]
    uploads: Vec<ListedUpload>,
}

#[derive(Deserialize)]
struct ListedUpload {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "UploadId")]
    upload_id: String,
    #[serde(rename = "Initiated")]
    initiated: Option<String>,
}

/// A streaming writer to one object through a multipart upload: bytes are gathered into
/// parts of `part_size` in memory (so memory stays at one part) and sent as each fills.
/// [`MultipartWriter::finish`] completes the upload; dropping the writer unfinished abandons
/// it, so a failed write leaves nothing under the key.
pub struct MultipartWriter<'a> {
    client: &'a S3Client,
    key: String,
    upload_id: String,
    part_size: usize,
    buf: Vec<u8>,
    etags: Vec<String>,
    done: bool,
}

impl<'a> MultipartWriter<'a> {
    /// Starts an upload to `key` with user metadata, in parts of `part_size` bytes (S3 wants
    /// at least 5 MiB for all but the last).
    pub fn new(
        client: &'a S3Client,
        key: &str,
        part_size: usize,
        metadata: &[(&str, &str)],
    ) -> Result<Self> {
        let upload_id = client.create_multipart(key, metadata)?;
        Ok(MultipartWriter {
            client,
            key: key.to_string(),
            upload_id,
            part_size: part_size.max(5 << 20),
            buf: Vec::new(),
            etags: Vec::new(),
            done: false,
        })
    }

    fn flush_part(&mut self) -> Result<()> {
        let number = u16::try_from(self.etags.len() + 1).map_err(|_| {
            TargetError::new(
                self.client.target(),
                ErrorKind::Invalid,
                format!("{}: more than 10,000 parts; use larger parts", self.key),
            )
        })?;
        let len = self.buf.len() as u64;
        let etag = self.client.upload_part(
            &self.key,
            &self.upload_id,
            number,
            &mut self.buf.as_slice(),
            len,
        )?;
        self.etags.push(etag);
        self.buf.clear();
        Ok(())
    }

    /// Sends what is left and completes the upload: the object appears under its key.
    /// Returns the object's ETag.
    pub fn finish(mut self) -> Result<String> {
        if !self.buf.is_empty() || self.etags.is_empty() {
            self.flush_part()?;
        }
        let etag = self
            .client
            .complete(&self.key, &self.upload_id, &self.etags)?;
        self.done = true;
        Ok(etag)
    }
}

impl Write for MultipartWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(self.part_size);
        }
        let n = data.len().min(self.part_size - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.part_size {
            self.flush_part().map_err(std::io::Error::other)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for MultipartWriter<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.client.abort(&self.key, &self.upload_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read() {
        let xml = "<?xml version=\"1.0\"?><ListMultipartUploadsResult><Bucket>b</Bucket>\
                   <Upload><Key>images/a.qcow2</Key><UploadId>u1</UploadId>\
                   <Initiated>2024-01-01T00:00:00Z</Initiated></Upload>\
                   <Upload><Key>images/b</Key><UploadId>u2</UploadId></Upload>\
                   </ListMultipartUploadsResult>";
        let r: ListUploadsResult = quick_xml::de::from_str(xml).unwrap();
        assert_eq!(r.uploads.len(), 2);
        assert_eq!(
            (r.uploads[1].key.as_str(), r.uploads[1].upload_id.as_str()),
            ("images/b", "u2")
        );
        let none: ListUploadsResult =
            quick_xml::de::from_str("<ListMultipartUploadsResult></ListMultipartUploadsResult>")
                .unwrap();
        assert!(none.uploads.is_empty());
        let err = "<Error><Code>NoSuchBucket</Code><Message>Bucket not found: x</Message></Error>";
        assert_eq!(xml_field(err, "Code").as_deref(), Some("NoSuchBucket"));
        assert_eq!(unquote("\"abc\""), "abc");
        let c = S3Client::new(
            "s3://b at http://127.0.0.1:1",
            &S3Config {
                endpoint: "http://127.0.0.1:1".into(),
                region: "garage".into(),
                bucket: "b".into(),
                path_style: true,
                tls: TlsSettings::default(),
            },
            &Credentials::access_key("GKid", "very-secret"),
        )
        .unwrap();
        let a = ListUploads {
            bucket: &c.bucket,
            credentials: c.credentials.as_ref(),
            prefix: "images/",
            query: rusty_s3::Map::new(),
            headers: rusty_s3::Map::new(),
        };
        let url = a.sign(SIGNED_FOR).to_string();
        assert!(url.starts_with("http://127.0.0.1:1/b/?"), "{url}");
        assert!(
            url.contains("uploads=") && url.contains("prefix=images%2F"),
            "{url}"
        );
        assert!(!url.contains("very-secret"));
        assert!(!format!("{c:?}").contains("very-secret"));
        // Nothing listens on port 1.
        let e = c.head("k").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
        assert!(
            e.to_string()
                .starts_with("s3://b at http://127.0.0.1:1: HEAD k"),
            "{e}"
        );
    }
}
