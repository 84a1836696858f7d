//! The S3 target: the image goes to `s3://BUCKET/PREFIX/NAME` as a multipart upload, parts
//! sent side by side straight from the file, each checked against the MD5 the store returns
//! as its ETag; the image's SHA-256 is the object's `x-amz-meta-sha256`. Nothing appears
//! under the key until the upload is completed.
//!
//! Resuming needs no local state: the store lists the unfinished uploads of the key and
//! their parts; parts whose size and MD5 match the image are kept, the rest are sent.

use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use md5::{Digest, Md5};
use sha2::Sha256;

use super::error::{ErrorKind, Result, TargetError};
use super::io::{check_sha256, hash_range, image_io, open_image, sha256_of, FileRange};
use super::{Credentials, Publication, PublishRequest, Published, Publisher, S3Target, TargetSpec};
use crate::progress::{NoProgress, Progress};
use crate::s3::{S3Client, S3Config};

const DEFAULT_PART: u64 = 16 << 20;
const MIN_PART: u64 = 5 << 20;
const MAX_PARTS: u64 = 10_000;
const DEFAULT_CONCURRENCY: usize = 4;

/// Publishes to an S3-compatible store.
pub struct S3Publisher {
    spec: TargetSpec,
    t: S3Target,
    client: S3Client,
    name: String,
}

impl S3Publisher {
    /// A publisher for `target` with an access key.
    pub fn new(target: S3Target, credentials: Credentials) -> Result<Self> {
        let spec = TargetSpec::S3(target.clone());
        let name = spec.display();
        let client = S3Client::new(
            &name,
            &S3Config {
                endpoint: target.endpoint.clone(),
                region: target.region.clone(),
                bucket: target.bucket.clone(),
                path_style: target.path_style,
                tls: target.tls.clone(),
            },
            &credentials,
        )?;
        Ok(S3Publisher {
            spec,
            t: target,
            client,
            name,
        })
    }

    fn key(&self, name: &str) -> String {
        let prefix = self.t.prefix.trim_matches('/');
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        }
    }

    /// Part size for a file of `size` bytes: the configured one, grown so that the file fits
    /// in 10,000 parts.
    fn part_size(&self, size: u64) -> u64 {
        let want = if self.t.part_size == 0 {
            DEFAULT_PART
        } else {
            self.t.part_size
        };
        let fit = size.div_ceil(MAX_PARTS).next_multiple_of(1 << 20);
        want.max(fit).max(MIN_PART)
    }

    /// Parts `1..=count` already stored by an unfinished upload of `key` that match the
    /// image: the upload's id and the ETags of the matching parts. Uploads of other data
    /// under the key are abandoned.
    fn resumable(
        &self,
        key: &str,
        file: &File,
        size: u64,
        part: u64,
    ) -> Result<Option<(String, Vec<Option<String>>)>> {
        let count = size.div_ceil(part).max(1) as usize;
        let uploads = self.client.list_uploads(key)?;
        let mut found = None;
        for u in uploads.into_iter().filter(|u| u.key == key).rev() {
            if found.is_some() {
                self.client.abort(key, &u.upload_id)?;
                continue;
            }
            let mut etags = vec![None; count];
            let mut ours = true;
            for p in self.client.list_parts(key, &u.upload_id)? {
                let n = usize::from(p.number);
                let (off, len) = part_range(n, part, size);
                if n == 0 || n > count || p.size != len {
                    ours = false;
                    break;
                }
                let mut h = Md5::new();
                let mut r = FileRange::new(file, off, len);
                std::io::copy(&mut r, &mut HashWriter(&mut h))
                    .map_err(|e| image_io(&self.name, "read", std::path::Path::new(key), &e))?;
                if !etag_matches(&p.etag, &h.finalize()) {
                    ours = false;
                    break;
                }
                etags[n - 1] = Some(p.etag);
            }
            if ours {
                found = Some((u.upload_id, etags));
            } else {
                self.client.abort(key, &u.upload_id)?;
            }
        }
        Ok(found)
    }
}

/// Offset and length of part `n` (from 1).
fn part_range(n: usize, part: u64, size: u64) -> (u64, u64) {
    let off = (n as u64 - 1) * part;
    (off, part.min(size.saturating_sub(off)))
}

/// Whether an ETag is the MD5 `md5`; ETags that are not an MD5 (encrypted stores) are not
/// held against the part.
fn etag_matches(etag: &str, md5: &[u8]) -> bool {
    if etag.len() != 32 || !etag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return true;
    }
    let hex: String = md5.iter().map(|b| format!("{b:02x}")).collect();
    etag.eq_ignore_ascii_case(&hex)
}

struct HashWriter<'a, D: Digest>(&'a mut D);

impl<D: Digest> std::io::Write for HashWriter<'_, D> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads through, hashing MD5 and counting into the progress.
struct PartReader<'a> {
    inner: FileRange<'a>,
    md5: Md5,
    progress: &'a dyn Progress,
    stop: &'a AtomicBool,
    cancel: Option<&'a AtomicBool>,
}

impl Read for PartReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.load(Ordering::Relaxed)
            || self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(std::io::Error::other("cancelled"));
        }
        let n = self.inner.read(buf)?;
        self.md5.update(&buf[..n]);
        self.progress.advance(0, n as u64);
        Ok(n)
    }
}

impl Publisher for S3Publisher {
    fn target(&self) -> &TargetSpec {
        &self.spec
    }

    fn publish(&self, req: &PublishRequest<'_>, progress: &dyn Progress) -> Result<Publication> {
        progress.phase("check", None);
        let name = req.file_name();
        if name.is_empty() || name.starts_with('/') {
            return Err(TargetError::new(
                &self.name,
                ErrorKind::Invalid,
                format!("`{name}` cannot name an object"),
            ));
        }
        let key = self.key(&name);
        let (file, size) = open_image(&self.name, req.image)?;
        let publication = |sha: &str, sent: u64| Publication {
            kind: self.spec.kind(),
            target: self.name.clone(),
            location: format!("s3://{}/{key}", self.t.bucket),
            digest: format!("sha256:{sha}"),
            size,
            sent,
            items: vec![Published::Object {
                bucket: self.t.bucket.clone(),
                key: key.clone(),
            }],
            instance: None,
        };
        let existing = self.client.head(&key)?;
        progress.finish();
        // With a known digest the hash is checked while the parts go up; otherwise it is
        // needed first, for the upload's metadata.
        let known = req
            .sha256
            .as_ref()
            .map(|s| s.trim_start_matches("sha256:").to_ascii_lowercase());
        let sha = match &known {
            Some(s) => s.clone(),
            None => sha256_of(&self.name, req.image, &file, size, progress)?,
        };
        if let Some(o) = existing {
            if o.size == size && o.metadata.get("sha256") == Some(&sha) {
                return Ok(publication(&sha, 0));
            }
        }

        let part = self.part_size(size);
        let count = size.div_ceil(part).max(1) as usize;
        let (upload_id, mut etags) = match self.resumable(&key, &file, size, part)? {
            Some(found) => found,
            None => (
                self.client.create_multipart(&key, &[("sha256", &sha)])?,
                vec![None; count],
            ),
        };
        let todo: Vec<usize> = (1..=count).filter(|n| etags[n - 1].is_none()).collect();
        let to_send: u64 = todo.iter().map(|&n| part_range(n, part, size).1).sum();
        progress.phase("upload", Some(to_send));
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let failure: Mutex<Option<TargetError>> = Mutex::new(None);
        let sent_etags: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
        let workers = if self.t.concurrency == 0 {
            DEFAULT_CONCURRENCY
        } else {
            self.t.concurrency
        };
        let hashed = std::thread::scope(|s| {
            let hasher = known.is_some().then(|| {
                s.spawn(|| {
                    let mut h = Sha256::new();
                    hash_range(&mut h, &file, 0, size, &NoProgress)
                        .map(|()| crate::blobstore::to_hex(&h.finalize().into()))
                        .map_err(|e| image_io(&self.name, "read", req.image, &e))
                })
            });
            for _ in 0..workers.min(todo.len()).max(1) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&n) = todo.get(i) else { break };
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let (off, len) = part_range(n, part, size);
                    let mut r = PartReader {
                        inner: FileRange::new(&file, off, len),
                        md5: Md5::new(),
                        progress,
                        stop: &stop,
                        cancel: req.cancel,
                    };
                    let res = self
                        .client
                        .upload_part(&key, &upload_id, n as u16, &mut r, len)
                        .and_then(|etag| {
                            if etag_matches(&etag, &r.md5.clone().finalize()) {
                                Ok(etag)
                            } else {
                                Err(TargetError::new(
                                    &self.name,
                                    ErrorKind::Mismatch,
                                    format!("part {n} of {key} was stored as {etag}, not the MD5 of what was sent"),
                                ))
                            }
                        });
                    match res {
                        Ok(etag) => sent_etags.lock().expect("not poisoned").push((n, etag)),
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            let mut f = failure.lock().expect("not poisoned");
                            if f.is_none() {
                                *f = Some(e);
                            }
                            break;
                        }
                    }
                });
            }
            hasher.map(|h| h.join().expect("the hash thread does not panic"))
        });
        if let Some(e) = failure.into_inner().expect("not poisoned") {
            req.check_cancel(&self.name)?;
            return Err(e);
        }
        progress.finish();
        if let Some(h) = hashed {
            if let Err(e) =
                h.and_then(|got| check_sha256(&self.name, req.image, known.as_deref(), &got))
            {
                let _ = self.client.abort(&key, &upload_id);
                return Err(e);
            }
        }
        for (n, etag) in sent_etags.into_inner().expect("not poisoned") {
            etags[n - 1] = Some(etag);
        }
        let etags: Vec<String> = etags
            .into_iter()
            .map(|e| e.expect("every part sent"))
            .collect();

        progress.phase("commit", None);
        self.client.complete(&key, &upload_id, &etags)?;
        match self.client.head(&key)? {
            Some(o) if o.size == size && o.metadata.get("sha256") == Some(&sha) => {}
            other => {
                return Err(TargetError::new(
                    &self.name,
                    ErrorKind::Mismatch,
                    format!(
                        "{key} is {} after completing the upload of {size} bytes with sha256 {sha}",
                        match other {
                            Some(o) => format!(
                                "{} bytes with sha256 {:?}",
                                o.size,
                                o.metadata.get("sha256")
                            ),
                            None => "missing".into(),
                        }
                    ),
                ))
            }
        }
        progress.finish();
        Ok(publication(&sha, to_send))
    }

    fn delete(&self, publication: &Publication) -> Result<()> {
        for item in &publication.items {
            if let Published::Object { bucket, key } = item {
                if bucket != &self.t.bucket {
                    return Err(TargetError::new(
                        &self.name,
                        ErrorKind::Invalid,
                        format!("{key} is in bucket {bucket}, not this target's"),
                    ));
                }
                for u in self.client.list_uploads(key)? {
                    if &u.key == key {
                        self.client.abort(key, &u.upload_id)?;
                    }
                }
                self.client.delete(key)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_file() {
        assert_eq!(part_range(1, 10, 25), (0, 10));
        assert_eq!(part_range(3, 10, 25), (20, 5));
        let p = S3Publisher::new(
            S3Target {
                endpoint: "http://127.0.0.1:1".into(),
                region: "r".into(),
                bucket: "b".into(),
                prefix: "/images/".into(),
                path_style: true,
                tls: Default::default(),
                part_size: 0,
                concurrency: 0,
            },
            Credentials::access_key("k", "s"),
        )
        .unwrap();
        assert_eq!(p.key("a.qcow2"), "images/a.qcow2");
        assert_eq!(p.part_size(1 << 30), DEFAULT_PART);
        // 1 TiB needs parts of 105 MiB to stay within 10,000.
        assert_eq!(p.part_size(1 << 40), 105 << 20);
        let md5 = Md5::digest(b"abc");
        assert!(etag_matches("900150983cd24fb0d6963f7d28e17f72", &md5));
        assert!(!etag_matches("900150983cd24fb0d6963f7d28e17f73", &md5));
        assert!(etag_matches("not-an-md5-etag", &md5));
    }
}
