//! The directory target: `DIR/NAME` and its manifest `DIR/NAME.sha256` (`sha256sum -c`
//! format), each written under a temporary name, synced, renamed, and the directory synced,
//! so that a reader never sees a partial image and a crash leaves either the old state or
//! the new one.
//!
//! A cut copy leaves `DIR/.NAME.partial`; the next attempt checks that its bytes are the
//! image's first bytes and goes on from there.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::{local_io, ErrorKind, Result, TargetError};
use super::io::{check_sha256, hash_range, image_io, open_image, sha256_of, FileRange, BUF};
use super::{DirectoryTarget, Publication, PublishRequest, Published, Publisher, TargetSpec};
use crate::progress::{NoProgress, Progress};

/// Publishes to a directory.
#[derive(Debug)]
pub struct DirectoryPublisher {
    spec: TargetSpec,
    dir: PathBuf,
    name: String,
}

impl DirectoryPublisher {
    /// A publisher writing into `target.path`.
    pub fn new(target: DirectoryTarget) -> Self {
        let dir = target.path.clone();
        let spec = TargetSpec::Directory(target);
        let name = spec.display();
        DirectoryPublisher { spec, dir, name }
    }

    fn err(&self, kind: ErrorKind, message: impl Into<String>) -> TargetError {
        TargetError::new(&self.name, kind, message)
    }

    fn io(&self, op: &str, path: &Path, e: std::io::Error) -> TargetError {
        local_io(&self.name, op, path, &e)
    }

    /// Writes `data` to `path` through a temporary name, synced before the rename.
    fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<()> {
        let tmp = hidden(path, "tmp");
        let res = File::create(&tmp)
            .and_then(|mut f| f.write_all(data).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.io("write", path, e));
        }
        Ok(())
    }

    fn sync_dir(&self) -> Result<()> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io("sync", &self.dir, e))
    }

    /// How many leading bytes of `partial` are the image's, and the hash state over them.
    fn resumable(&self, partial: &Path, src: &File, size: u64) -> (u64, Sha256) {
        let Ok(part) = File::open(partial) else {
            return (0, Sha256::new());
        };
        let len = part.metadata().map_or(0, |m| m.len());
        if len == 0 || len > size {
            return (0, Sha256::new());
        }
        let (mut a, mut b) = (Sha256::new(), Sha256::new());
        let same = hash_range(&mut a, src, 0, len, &NoProgress).is_ok()
            && hash_range(&mut b, &part, 0, len, &NoProgress).is_ok()
            && a.clone().finalize() == b.finalize();
        if same {
            (len, a)
        } else {
            (0, Sha256::new())
        }
    }
}

/// `DIR/.NAME.EXT`: beside the final name, hidden from listings of images.
fn hidden(path: &Path, ext: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{}.{ext}", name.unwrap_or_default()))
}

fn manifest_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_os_string();
    s.push(".sha256");
    PathBuf::from(s)
}

/// Checks that a name stays inside the directory.
pub(crate) fn check_name(target: &str, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(TargetError::new(
            target,
            ErrorKind::Invalid,
            format!("`{name}` is not a file name (no `/`, not `.` or `..`)"),
        ));
    }
    Ok(())
}

impl Publisher for DirectoryPublisher {
    fn target(&self) -> &TargetSpec {
        &self.spec
    }

    fn publish(&self, req: &PublishRequest<'_>, progress: &dyn Progress) -> Result<Publication> {
        progress.phase("check", None);
        let name = req.file_name();
        check_name(&self.name, &name)?;
        match std::fs::metadata(&self.dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(self.err(ErrorKind::Invalid, "not a directory")),
            Err(e) => return Err(self.io("open", &self.dir, e)),
        }
        let (src, size) = open_image(&self.name, req.image)?;
        let dest = self.dir.join(&name);
        let manifest = manifest_path(&dest);
        let partial = hidden(&dest, "partial");
        let publication = |sha: &str, sent: u64| Publication {
            kind: self.spec.kind(),
            target: self.name.clone(),
            location: dest.display().to_string(),
            digest: format!("sha256:{sha}"),
            size,
            sent,
            items: vec![
                Published::File { path: dest.clone() },
                Published::File {
                    path: manifest.clone(),
                },
            ],
            instance: None,
        };
        progress.finish();

        // Already there: the manifest names this image and the file has its size.
        if let (Ok(text), Ok(meta)) = (std::fs::read_to_string(&manifest), dest.metadata()) {
            if meta.len() == size {
                let sha = match &req.sha256 {
                    Some(s) => s.trim_start_matches("sha256:").to_ascii_lowercase(),
                    None => sha256_of(&self.name, req.image, &src, size, progress)?,
                };
                if text.split_whitespace().next() == Some(sha.as_str()) {
                    return Ok(publication(&sha, 0));
                }
            }
        }

        let (offset, mut hasher) = self.resumable(&partial, &src, size);
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(offset == 0)
            .open(&partial)
            .map_err(|e| self.io("create", &partial, e))?;
        progress.phase("upload", Some(size - offset));
        let copied = (|| -> Result<()> {
            use std::io::Seek;
            out.seek(std::io::SeekFrom::Start(offset))
                .map_err(|e| self.io("seek", &partial, e))?;
            let mut r = FileRange::new(&src, offset, size - offset);
            let mut buf = vec![0u8; BUF];
            loop {
                req.check_cancel(&self.name)?;
                let n = r
                    .read(&mut buf)
                    .map_err(|e| image_io(&self.name, "read", req.image, &e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])
                    .map_err(|e| self.io("write", &partial, e))?;
                progress.advance(0, n as u64);
            }
            out.sync_all().map_err(|e| self.io("sync", &partial, e))
        })();
        if let Err(e) = copied {
            // A full disk keeps nothing; other cuts keep the partial file to resume from.
            if e.kind == ErrorKind::NoSpace {
                let _ = std::fs::remove_file(&partial);
            }
            return Err(e);
        }
        progress.finish();
        let sha = crate::blobstore::to_hex(&hasher.finalize().into());
        if let Err(e) = check_sha256(&self.name, req.image, req.sha256.as_deref(), &sha) {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }

        progress.phase("commit", None);
        std::fs::rename(&partial, &dest).map_err(|e| self.io("rename", &partial, e))?;
        self.write_atomic(&manifest, format!("{sha}  {name}\n").as_bytes())?;
        self.sync_dir()?;
        progress.finish();
        Ok(publication(&sha, size - offset))
    }

    fn delete(&self, publication: &Publication) -> Result<()> {
        for item in &publication.items {
            if let Published::File { path } = item {
                if path.parent() != Some(self.dir.as_path()) {
                    return Err(self.err(
                        ErrorKind::Invalid,
                        format!("{} is not in this directory", path.display()),
                    ));
                }
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(self.io("remove", path, e)),
                }
            }
        }
        self.sync_dir()
    }
}
