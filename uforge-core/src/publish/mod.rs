//! Publishing finished images to targets, and provisioning machines from them.
//!
//! A [`Publisher`] takes an image file of any format uforge writes and a target description
//! ([`TargetSpec`], with [`Credentials`] handed in as values), streams the file with progress
//! (bytes sent), resumes a cut transfer, and returns a [`Publication`]: where the image went
//! (path, reference and digest, object key, volume), its size, and what to delete to take it
//! back. Targets:
//!
//! | kind | where | formats | resume |
//! |---|---|---|---|
//! | [`directory`] | `DIR/NAME` + `DIR/NAME.sha256`, written atomically | all | the partial file, prefix checked |
//! | [`registry`] | `REGISTRY/NAMESPACE/REPO:TAG`, Docker registry API v2 | `oci`, `docker-archive` | blobs present are skipped; chunked uploads continue after the last stored chunk |
//! | [`s3`](s3) | `s3://BUCKET/PREFIX/NAME`, multipart, SHA-256 as metadata | all | the parts the store lists |
//! | [`libvirt`] | a volume in a storage pool; with an [`InstanceSpec`], a started domain | `qcow2`, `raw` | uploaded length in a checkpoint |
//!
//! Later kinds (OpenStack Glance, AWS AMI import, Azure page blobs, GCE, vCenter) fit the
//! same shape: a [`TargetKind`] with the formats it takes, an endpoint and options in a
//! [`TargetSpec`] variant, credentials of one of the [`Credentials`] kinds, and an import step
//! after the upload the way libvirt provisions after its upload.
//!
//! Everything is synchronous; [`publish`] retries what can be retried and resumes each time.
//! [`destination::parse`] reads the `--to` URLs of `uforge image publish`.

pub mod checkpoint;
pub mod credentials;
pub mod destination;
pub mod directory;
pub mod error;
pub mod hardware;
#[cfg(feature = "http")]
pub(crate) mod http;
mod io;
pub mod libvirt;
#[cfg(feature = "http")]
pub mod registry;
#[cfg(feature = "http")]
mod s3;
pub mod sniff;
pub mod target;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::image::Format;
use crate::progress::Progress;

pub use checkpoint::{Checkpoints, DirCheckpoints, MemoryCheckpoints, NoCheckpoints};
pub use credentials::{Credentials, Secret};
pub use error::{ErrorKind, Result, TargetError};
pub use hardware::{BootModes, Firmware};
pub use target::{
    DirectoryTarget, LibvirtNetwork, LibvirtTarget, RegistryTarget, S3Target, TargetKind,
    TargetSpec, TlsSettings,
};

/// The phases a publication reports, in order (a target skips those it has no use for):
/// checking the image and the target, hashing the file, the upload (its total is the bytes
/// to send), making the upload visible (manifest, multipart completion, rename), and
/// starting the machine.
pub const PHASES: [&str; 5] = ["check", "hash", "upload", "commit", "provision"];

/// A machine to start from the published image (libvirt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// The domain's name; the image's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Firmware; [`Firmware::Auto`] picks one the image boots with.
    #[serde(default)]
    pub firmware: Firmware,
}

/// What to publish.
pub struct PublishRequest<'a> {
    /// The finished image file.
    pub image: &'a Path,
    /// Its format.
    pub format: Format,
    /// The name at the target: file or object name, `REPO[:TAG]` in a registry, volume name.
    /// Defaults to the image file's name (a registry: the image's own name and `latest`).
    pub name: Option<String>,
    /// The image's SHA-256 (hex) when known, as a build records it: saves a pass over the
    /// file, and is checked against what is sent.
    pub sha256: Option<String>,
    /// The firmware the image boots with, when known from its build; read from its
    /// partition table otherwise.
    pub boot: Option<BootModes>,
    /// A machine to start from the image, for targets that provision.
    pub instance: Option<InstanceSpec>,
    /// Where resume points are kept between attempts and runs.
    pub checkpoints: &'a dyn Checkpoints,
    /// Set to stop at the next chunk boundary (what was sent stays resumable).
    pub cancel: Option<&'a AtomicBool>,
    /// How often [`publish`] tries again after an error that may pass.
    pub retries: u32,
}

impl<'a> PublishRequest<'a> {
    /// A request for `image` in `format`, with no checkpoints kept and 3 retries.
    pub fn new(image: &'a Path, format: Format) -> Self {
        PublishRequest {
            image,
            format,
            name: None,
            sha256: None,
            boot: None,
            instance: None,
            checkpoints: &NoCheckpoints,
            cancel: None,
            retries: 3,
        }
    }

    /// The name at the target: the request's, or the image file's name.
    pub(crate) fn file_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.image
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".into())
        })
    }

    /// Fails with [`ErrorKind::Cancelled`] once the caller asked to stop.
    pub(crate) fn check_cancel(&self, target: &str) -> Result<()> {
        if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(TargetError::new(
                target,
                ErrorKind::Cancelled,
                "publishing was cancelled; publishing again resumes",
            ));
        }
        Ok(())
    }
}

/// One thing a publication put at its target, so that it can be deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Published {
    /// A file (the image or its manifest).
    File {
        /// Its path.
        path: PathBuf,
    },
    /// An image manifest in a registry repository (deleting it removes its tags; the
    /// registry's garbage collection frees blobs no manifest uses).
    Manifest {
        /// The repository (`ns/app`).
        repository: String,
        /// Its digest.
        digest: String,
    },
    /// An object in a bucket.
    Object {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// A volume in a libvirt storage pool.
    Volume {
        /// The pool.
        pool: String,
        /// The volume's name.
        name: String,
    },
    /// A libvirt domain.
    Domain {
        /// Its name.
        name: String,
    },
}

/// A machine started from a publication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// The domain's name.
    pub name: String,
    /// The firmware it boots with.
    pub firmware: Firmware,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Host port forwards to it (user-mode networking).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwards: Vec<String>,
}

/// Where an image went: the record a publication job keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    /// The target's kind.
    pub kind: TargetKind,
    /// The target, as [`TargetSpec::display`] names it.
    pub target: String,
    /// Where the image is: a path, `REGISTRY/REPO:TAG@DIGEST`, `s3://BUCKET/KEY`, or
    /// `POOL/VOLUME`.
    pub location: String,
    /// `sha256:HEX`: of the file, or of the manifest for a registry.
    pub digest: String,
    /// Bytes of the image at the target (a registry: of its blobs and manifest).
    pub size: u64,
    /// Bytes this publication sent; less than `size` when it resumed or found them there.
    pub sent: u64,
    /// What to delete to take the publication back, in order.
    pub items: Vec<Published>,
    /// The machine started, for a deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<Instance>,
}

/// Pushes images to one target.
pub trait Publisher: Send + Sync {
    /// The target it publishes to.
    fn target(&self) -> &TargetSpec;

    /// Publishes `request.image` (one attempt: [`publish`] retries), resuming what an earlier
    /// attempt left. Progress: the [`PHASES`], with the upload's bytes as they are sent.
    fn publish(&self, request: &PublishRequest<'_>, progress: &dyn Progress)
        -> Result<Publication>;

    /// Deletes what `publication` put at the target (stopping a machine it started). What
    /// is already gone is not an error.
    fn delete(&self, publication: &Publication) -> Result<()>;
}

/// The publisher of `target`, with its credentials.
pub fn publisher(target: &TargetSpec, credentials: Credentials) -> Result<Box<dyn Publisher>> {
    let name = target.display();
    let with_none = |what: &str| -> Result<()> {
        if matches!(credentials, Credentials::None) {
            Ok(())
        } else {
            Err(TargetError::new(
                &name,
                ErrorKind::Invalid,
                format!("{what} takes no credentials, got {}", credentials.kind()),
            ))
        }
    };
    match target {
        TargetSpec::Directory(d) => {
            with_none("a directory")?;
            Ok(Box::new(directory::DirectoryPublisher::new(d.clone())))
        }
        TargetSpec::Libvirt(l) => Ok(Box::new(libvirt::LibvirtPublisher::new(
            l.clone(),
            credentials,
        )?)),
        #[cfg(feature = "http")]
        TargetSpec::Registry(r) => Ok(Box::new(registry::RegistryPublisher::new(
            r.clone(),
            credentials,
        )?)),
        #[cfg(feature = "http")]
        TargetSpec::S3(s) => Ok(Box::new(s3::S3Publisher::new(s.clone(), credentials)?)),
        #[cfg(not(feature = "http"))]
        TargetSpec::Registry(_) | TargetSpec::S3(_) => Err(TargetError::new(
            name,
            ErrorKind::Unsupported,
            "this build of uforge has no HTTP support (feature `http` disabled)",
        )),
    }
}

/// Publishes `request.image` to `target`: checks the target takes the format, then tries
/// up to `1 + request.retries` times while the error is [`ErrorKind::retryable`], waiting
/// 1, 2, 4… seconds in between; each attempt resumes what the one before left (resume points
/// are kept in memory as well as in `request.checkpoints`).
pub fn publish(
    target: &TargetSpec,
    credentials: Credentials,
    request: &PublishRequest<'_>,
    progress: &dyn Progress,
) -> Result<Publication> {
    let name = target.display();
    if !target.kind().formats().contains(&request.format) {
        let takes: Vec<&str> = target.kind().formats().iter().map(|f| f.name()).collect();
        return Err(TargetError::new(
            name,
            ErrorKind::Unsupported,
            format!(
                "a {} target takes {} images, not {}",
                target.kind(),
                takes.join(", "),
                request.format
            ),
        ));
    }
    let p = publisher(target, credentials)?;
    let tee = Tee {
        memory: MemoryCheckpoints::default(),
        outer: request.checkpoints,
    };
    let attempt_request = PublishRequest {
        checkpoints: &tee,
        name: request.name.clone(),
        sha256: request.sha256.clone(),
        instance: request.instance.clone(),
        ..*request
    };
    let mut attempt = 0;
    loop {
        match p.publish(&attempt_request, progress) {
            Err(e) if e.kind.retryable() && attempt < request.retries => {
                std::thread::sleep(Duration::from_secs(1 << attempt.min(5)));
                attempt += 1;
                request.check_cancel(&name)?;
            }
            other => return other,
        }
    }
}

/// Checkpoints kept in memory and in the caller's store: retries in one call resume even when
/// the caller keeps none.
struct Tee<'a> {
    memory: MemoryCheckpoints,
    outer: &'a dyn Checkpoints,
}

impl Checkpoints for Tee<'_> {
    fn load(&self, key: &str) -> Option<String> {
        self.memory.load(key).or_else(|| self.outer.load(key))
    }
    fn save(&self, key: &str, value: &str) -> std::io::Result<()> {
        self.memory.save(key, value)?;
        self.outer.save(key, value)
    }
    fn remove(&self, key: &str) {
        self.memory.remove(key);
        self.outer.remove(key);
    }
}
