//! The file form of a template: a directory with `template.yml` and `files/`.
//!
//! `template.yml` is a YAML document `{format: uforge-template, version: 1, stack: ...}`
//! (documented by `schema/uforge-template-v1.schema.json`). It is written in canonical order
//! ([`Template::normalize`]) with one package, file, `.deb` and group per line, so that edits
//! show as small diffs; reading what was written and writing it again gives the same bytes.
//!
//! Contents are kept by SHA-256: the bytes of a file whose `sha256` is `HEX` are
//! `files/HEX`. A person adding a file by hand may instead write `source: NAME` and put the
//! file at `files/NAME`; [`store_sources`] (what importing a template into a store does)
//! replaces it with its digest.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::forms::hex;
use super::{Content, Template};
use crate::blobstore::{BlobStaging, BlobStore};
use crate::{Error, Result};

/// The `format` value of `template.yml`.
pub const FORMAT: &str = "uforge-template";
/// The version of the file form this library writes and reads.
pub const VERSION: u32 = 1;
/// Name of the document in a template directory.
pub const TEMPLATE_FILE: &str = "template.yml";
/// Name of the contents directory in a template directory.
pub const FILES_DIR: &str = "files";
/// Largest `template.yml` read: a component of a million files makes about 200 MB.
const MAX_YAML: u64 = 512 << 20;

/// The parser's limits, sized for templates of a whole machine (the defaults stop at a few
/// tens of thousands of files) while keeping its defences against alias expansion.
fn parse_options() -> serde_saphyr::Options {
    let bytes = MAX_YAML as usize;
    let mut budget = serde_saphyr::Budget::default();
    budget.max_reader_input_bytes = Some(bytes);
    budget.max_events = bytes / 2;
    budget.max_nodes = bytes / 2;
    budget.max_total_scalar_bytes = bytes;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    format: String,
    version: u32,
    stack: Template,
}

fn invalid(what: &str, message: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{what}: {message}"))
}

/// The YAML text of a template, in canonical order.
pub fn to_yaml(t: &Template) -> Result<String> {
    let mut stack = t.clone();
    stack.normalize();
    let doc = Document {
        format: FORMAT.into(),
        version: VERSION,
        stack,
    };
    serde_saphyr::to_string(&doc).map_err(|e| invalid(&t.name, format!("cannot write YAML: {e}")))
}

/// Reads the YAML text of a template; `what` names it in errors, which give the line and
/// column of the mistake.
pub fn from_yaml(text: &str, what: &str) -> Result<Template> {
    if text.len() as u64 > MAX_YAML {
        return Err(invalid(what, format!("larger than {MAX_YAML} bytes")));
    }
    let doc: Document =
        serde_saphyr::from_str_with_options(text, parse_options()).map_err(|e| invalid(what, e))?;
    if doc.format != FORMAT || doc.version != VERSION {
        return Err(invalid(
            what,
            format!(
                "format {:?} version {} is not {FORMAT:?} version {VERSION}",
                doc.format, doc.version
            ),
        ));
    }
    doc.stack.validate()?;
    Ok(doc.stack)
}

/// Writes the template to `dir` (created if needed): `files/HEX` for every blob it refers to,
/// copied from `blobs`, then `template.yml`, so that a directory with a `template.yml` is
/// complete. Contents still given by `source` must be stored first ([`store_sources`]).
pub fn export(t: &Template, blobs: &dyn BlobStore, dir: &Path) -> Result<()> {
    let files = dir.join(FILES_DIR);
    std::fs::create_dir_all(&files).map_err(|e| Error::io("create", &files, e))?;
    for c in t.contents() {
        let (sha256, size) = match c {
            Content::Blob { sha256, size } => (sha256, *size),
            Content::Source(s) => {
                return Err(invalid(
                    &t.name,
                    format!("content {s:?} is given by source: store the template first"),
                ))
            }
        };
        let dest = files.join(hex(sha256));
        if std::fs::metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == size) {
            continue;
        }
        let tmp = files.join(format!(".{}.tmp", hex(sha256)));
        let mut out = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        let copied = std::io::copy(&mut blobs.open(sha256)?, &mut out)
            .map_err(|e| Error::io("write", &tmp, e))?;
        if copied != size {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::BlobMismatch {
                sha256: hex(sha256),
                message: format!("the store holds {copied} bytes, the template says {size}"),
            });
        }
        out.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
        std::fs::rename(&tmp, &dest).map_err(|e| Error::io("rename", &tmp, e))?;
    }
    let path = dir.join(TEMPLATE_FILE);
    let tmp = dir.join(format!(".{TEMPLATE_FILE}.tmp"));
    let mut out = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    out.write_all(to_yaml(t)?.as_bytes())
        .and_then(|()| out.sync_all())
        .map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &tmp, e))
}

/// Reads the template of directory `dir` and checks that every content it refers to is in
/// `files/` (blobs with the size the template gives; `source` files as regular files inside
/// `files/`). The returned store reads the blobs from there.
pub fn load(dir: &Path) -> Result<(Template, DirBlobs)> {
    let path = dir.join(TEMPLATE_FILE);
    let f = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
    let mut text = String::new();
    f.take(MAX_YAML + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::io("read", &path, e))?;
    let t = from_yaml(&text, &path.display().to_string())?;
    let what = path.display().to_string();
    let blobs = DirBlobs {
        files: dir.join(FILES_DIR),
    };
    for c in t.contents() {
        match c {
            Content::Blob { sha256, size } => {
                let p = blobs.files.join(hex(sha256));
                match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.is_file() && m.len() == *size => {}
                    Ok(m) if m.is_file() => {
                        return Err(invalid(
                            &what,
                            format!(
                                "{} has {} bytes, the template says {size}",
                                p.display(),
                                m.len()
                            ),
                        ))
                    }
                    _ => {
                        return Err(invalid(
                            &what,
                            format!("refers to {}, which is not a file", p.display()),
                        ))
                    }
                }
            }
            Content::Source(s) => {
                blobs.source(s)?;
            }
        }
    }
    Ok((t, blobs))
}

/// Replaces every `source` content of `t` with the digest of the file it names under
/// `files` (a template directory's `files/`), storing the bytes in `blobs` in one batch:
/// on error nothing is stored and `t` is unchanged.
pub fn store_sources(t: &mut Template, files: &Path, blobs: &dyn BlobStore) -> Result<()> {
    let dir = DirBlobs {
        files: files.to_path_buf(),
    };
    let mut staging: Option<Box<dyn BlobStaging>> = None;
    let mut done: std::collections::HashMap<String, Content> = Default::default();
    let mut out = t.clone();
    let contents = out
        .software
        .iter_mut()
        .flat_map(|c| {
            let files = c.files.iter_mut().filter_map(|f| f.content.as_mut());
            let debs = c.ospkgs.iter_mut().map(|p| &mut p.deb);
            let scripts = c.scripts.iter_mut().map(|s| &mut s.content);
            files.chain(debs).chain(scripts)
        })
        .chain(out.boot_scripts.iter_mut().map(|b| &mut b.content));
    for c in contents {
        let Content::Source(s) = c else { continue };
        let s = s.clone();
        if let Some(stored) = done.get(s.as_str()) {
            *c = stored.clone();
            continue;
        }
        let path = dir.source(&s)?;
        let (sha256, size) = digest_file(&path)?;
        let st = match &mut staging {
            Some(st) => st,
            None => staging.insert(blobs.stage()?),
        };
        let mut f = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        st.put(&sha256, size, &mut f)?;
        let stored = Content::Blob { sha256, size };
        done.insert(s, stored.clone());
        *c = stored;
    }
    if let Some(st) = staging {
        st.commit()?;
    }
    *t = out;
    Ok(())
}

fn digest_file(path: &Path) -> Result<([u8; 32], u64)> {
    let mut f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut h = Sha256::new();
    let size = std::io::copy(&mut f, &mut h).map_err(|e| Error::io("read", path, e))?;
    Ok((h.finalize().into(), size))
}

/// The `files/` directory of a template directory, read as a blob store. It is read-only:
/// templates are imported into a real store with [`store_sources`] and a copy of the blobs.
#[derive(Debug, Clone)]
pub struct DirBlobs {
    files: PathBuf,
}

impl DirBlobs {
    /// The directory read.
    pub fn dir(&self) -> &Path {
        &self.files
    }

    /// The file a `source` names, checked to be a regular file inside `files/` (no link
    /// leads out of it).
    pub fn source(&self, s: &str) -> Result<PathBuf> {
        let base = self
            .files
            .canonicalize()
            .map_err(|e| Error::io("open", &self.files, e))?;
        let p = self.files.join(s);
        let real = p.canonicalize().map_err(|e| Error::io("open", &p, e))?;
        if !real.starts_with(&base) || !real.is_file() {
            return Err(Error::Invalid(format!(
                "source {s:?} is not a regular file inside {}",
                self.files.display()
            )));
        }
        Ok(real)
    }
}

impl BlobStore for DirBlobs {
    fn has(&self, sha256: &[u8; 32]) -> Result<bool> {
        Ok(std::fs::symlink_metadata(self.files.join(hex(sha256))).is_ok_and(|m| m.is_file()))
    }

    fn open(&self, sha256: &[u8; 32]) -> Result<Box<dyn Read + Send>> {
        let p = self.files.join(hex(sha256));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)
            .map_err(|e| Error::io("open", &p, e))?;
        Ok(Box::new(f))
    }

    fn stage(&self) -> Result<Box<dyn BlobStaging>> {
        Err(Error::Invalid(format!(
            "{} is a template's files directory, not a store to write to",
            self.files.display()
        )))
    }
}

/// A template directory opened for checking or generating: its `files/`, and a writable
/// store beside them holding the contents its `source` entries name (the directory itself is
/// never written to).
pub struct WorkingBlobs {
    dir: DirBlobs,
    added: crate::blobstore::LocalBlobStore,
}

/// Reads the template of `dir` ([`load`]) and stores its `source` contents in a store under
/// `work` ([`store_sources`]), so that the returned template refers to blobs only and the
/// returned store reads all of them.
pub fn open_working(dir: &Path, work: &Path) -> Result<(Template, WorkingBlobs)> {
    let (mut t, _) = load(dir)?;
    let blobs = working(&mut t, &dir.join(FILES_DIR), work)?;
    Ok((t, blobs))
}

/// The store of a template whose contents are in `files` (a template directory's `files/`),
/// with its `source` contents stored under `work` and replaced by their digests in `t`.
pub fn working(t: &mut Template, files: &Path, work: &Path) -> Result<WorkingBlobs> {
    let blobs = WorkingBlobs {
        added: crate::blobstore::LocalBlobStore::open(work)?,
        dir: DirBlobs {
            files: files.to_path_buf(),
        },
    };
    store_sources(t, files, &blobs.added)?;
    Ok(blobs)
}

impl BlobStore for WorkingBlobs {
    fn has(&self, sha256: &[u8; 32]) -> Result<bool> {
        Ok(self.added.has(sha256)? || self.dir.has(sha256)?)
    }

    fn open(&self, sha256: &[u8; 32]) -> Result<Box<dyn Read + Send>> {
        if self.added.has(sha256)? {
            self.added.open(sha256)
        } else {
            self.dir.open(sha256)
        }
    }

    fn stage(&self) -> Result<Box<dyn BlobStaging>> {
        self.added.stage()
    }
}
