//! The layout of the data directory.
//!
//! ```text
//! DIR/uforge.db               SQLite database (unless --database-url)
//! DIR/tls/cert.pem, key.pem   the generated certificate
//! DIR/blobs/                  overlay contents, by SHA-256
//! DIR/reports/ID.ufr          the native report of scan ID
//! DIR/reports/ID.analysis.json
//! DIR/repos/USER/             the user's recreated packages, a flat repository
//! DIR/cache/                  repository indexes and .deb files
//! DIR/images/ID/NAME.EXT      the image built by image job ID
//! DIR/work/images/ID/         scratch space of image job ID while it builds
//! DIR/work/publications/ID/   resume points of publication ID until it is done
//! DIR/secret.key              the key sealing target credentials (back it up with the rest)
//! DIR/logs/images/ID.log      the whole output of the step that failed image job ID
//! ```
//!
//! Everything in it is private to the server's user: the blobs are scanned machines' files
//! (their `/etc/shadow`, their SSH host keys). Directories are 0700 and files 0600 (0700 when
//! executable), for what is created and, at start, for what an older version left.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Paths inside the data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Creates the directory tree if needed.
    pub fn create(root: &Path) -> Result<Self> {
        let d = DataDir {
            root: root.to_path_buf(),
        };
        for p in [
            d.root.clone(),
            d.reports(),
            d.repos(),
            d.cache(),
            d.tls(),
            d.images(),
            d.image_work_root(),
            d.publication_work_root(),
            d.image_logs(),
        ] {
            std::fs::create_dir_all(&p)
                .with_context(|| format!("cannot create {}", p.display()))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot make {} private", p.display()))?;
        }
        Ok(d)
    }

    /// Takes group and other permissions off everything stored (the scratch space of image
    /// builds excepted: it holds roots being built, with their own modes). Returns how many
    /// entries were changed.
    pub fn make_private(&self) -> Result<usize> {
        let work = self.root.join("work");
        let mut changed = 0;
        private_tree(&self.root, Some(&work), &mut changed)?;
        Ok(changed)
    }

    /// Removes what uploads interrupted by a stop left in the reports directory (uploads being
    /// received, reports and analyses not yet put in place). Call before serving.
    pub fn remove_partial_uploads(&self) -> Result<usize> {
        let dir = self.reports();
        let mut removed = 0;
        for e in
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
        {
            let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") || name.ends_with(".new") {
                std::fs::remove_file(e.path())
                    .with_context(|| format!("cannot remove {}", e.path().display()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes the blob staging batches of processes that are gone: what an overlay upload
    /// cut off by a crash leaves. Call before serving.
    pub fn remove_stale_staging(
        &self,
        blobs: &uforge_core::blobstore::LocalBlobStore,
    ) -> Result<usize> {
        blobs
            .remove_stale_staging()
            .with_context(|| format!("cannot clear {}", self.blobs().join("staging").display()))
    }

    /// The data directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stored reports and analyses.
    pub fn reports(&self) -> PathBuf {
        self.root.join("reports")
    }

    /// The native report of a scan.
    pub fn report(&self, scan: i64) -> PathBuf {
        self.reports().join(format!("{scan}.ufr"))
    }

    /// The analysis of a scan.
    pub fn analysis(&self, scan: i64) -> PathBuf {
        self.reports().join(format!("{scan}.analysis.json"))
    }

    /// Where an upload lands before it is checked.
    pub fn upload(&self, scan: i64) -> PathBuf {
        self.reports().join(format!("{scan}.tmp"))
    }

    /// Every user's repository of recreated packages.
    pub fn repos(&self) -> PathBuf {
        self.root.join("repos")
    }

    /// One user's repository of recreated packages (user names are checked to be plain file
    /// names when users are created).
    pub fn user_repo(&self, user: &str) -> PathBuf {
        self.repos().join(user)
    }

    /// The repository cache.
    pub fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// The blob store.
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// Every built image, one directory per job.
    pub fn images(&self) -> PathBuf {
        self.root.join("images")
    }

    /// The directory holding the image of one job.
    pub fn image_dir(&self, id: i64) -> PathBuf {
        self.images().join(id.to_string())
    }

    /// Scratch space of every image job.
    pub fn image_work_root(&self) -> PathBuf {
        self.root.join("work").join("images")
    }

    /// Scratch space of one image job while it builds.
    pub fn image_work(&self, id: i64) -> PathBuf {
        self.image_work_root().join(id.to_string())
    }

    /// Resume points of every publication.
    pub fn publication_work_root(&self) -> PathBuf {
        self.root.join("work").join("publications")
    }

    /// Resume points of one publication, kept across retries until it is done.
    pub fn publication_work(&self, id: i64) -> PathBuf {
        self.publication_work_root().join(id.to_string())
    }

    /// The key that seals target credentials.
    pub fn secret_key(&self) -> PathBuf {
        self.root.join("secret.key")
    }

    /// The logs of failed image jobs.
    pub fn image_logs(&self) -> PathBuf {
        self.root.join("logs").join("images")
    }

    /// The log of the failing step of image job `id`, kept when the job fails and removed
    /// with the image.
    pub fn image_log(&self, id: i64) -> PathBuf {
        self.image_logs().join(format!("{id}.log"))
    }

    /// The generated TLS certificate and key.
    pub fn tls(&self) -> PathBuf {
        self.root.join("tls")
    }
}

/// Makes `path` and what lies below it private, but for what lies below `skip`; symlinks are
/// left alone.
pub fn private_tree(path: &Path, skip: Option<&Path>, changed: &mut usize) -> Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("cannot stat {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o7777;
    let want = if meta.is_dir() {
        0o700
    } else if meta.is_file() {
        mode & 0o700
    } else {
        return Ok(());
    };
    if mode != want && (meta.is_dir() || mode & 0o7077 != 0) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(want))
            .with_context(|| format!("cannot make {} private", path.display()))?;
        *changed += 1;
    }
    if meta.is_dir() {
        if skip == Some(path) {
            return Ok(());
        }
        for e in
            std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
        {
            let p = e
                .with_context(|| format!("cannot list {}", path.display()))?
                .path();
            private_tree(&p, skip, changed)?;
        }
    }
    Ok(())
}
