//! Target descriptions: what the server stores as a `/targets` object (type, endpoint,
//! options; the credentials are kept apart, encrypted) and what `--to` URLs parse into.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::image::Format;

/// The kinds of target. Later kinds (OpenStack Glance, AWS AMI import, Azure page blobs,
/// GCE, vCenter) are added here with their [`TargetKind::formats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TargetKind {
    /// A directory on the host or a mounted share.
    Directory,
    /// A container registry speaking the Docker registry HTTP API v2 (OCI distribution).
    Registry,
    /// An S3-compatible object store.
    S3,
    /// A libvirt host: a storage pool, and domains started from the volume.
    Libvirt,
}

impl TargetKind {
    /// The name used in URLs, the API and messages.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Directory => "directory",
            TargetKind::Registry => "registry",
            TargetKind::S3 => "s3",
            TargetKind::Libvirt => "libvirt",
        }
    }

    /// The image formats the kind takes. Directories and object stores take any file; a
    /// registry takes container images; libvirt runs qcow2 and raw disks.
    pub fn formats(self) -> &'static [Format] {
        match self {
            TargetKind::Directory | TargetKind::S3 => &Format::ALL,
            TargetKind::Registry => &[Format::Oci, Format::DockerArchive],
            TargetKind::Libvirt => &[Format::Qcow2, Format::Raw],
        }
    }

    /// Whether the kind can start machines from what it holds (`image deploy`).
    pub fn provisions(self) -> bool {
        self == TargetKind::Libvirt
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the certificate of a TLS endpoint is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSettings {
    /// PEM certificates trusted besides the platform roots (a private CA). Stored as text so
    /// a server-side target does not depend on a file of the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// Accept any certificate. For tests and first contact only: it defeats TLS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
}

/// A directory target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryTarget {
    /// The directory; it must exist (a missing mount must not fill the mount point).
    pub path: PathBuf,
}

/// A registry target: images go to `REGISTRY/NAMESPACE/REPOSITORY:TAG`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryTarget {
    /// `host[:port]`, or a base URL (`http://` only for registries without TLS).
    pub registry: String,
    /// Repository path before the image's own name (`team/images`), may be empty.
    #[serde(default)]
    pub namespace: String,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsSettings,
    /// Size of the PATCH requests large blobs go up in; 0 for the default (32 MiB).
    #[serde(default)]
    pub chunk_size: u64,
}

/// An S3-compatible store target: objects go to `s3://BUCKET/PREFIX/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Target {
    /// The endpoint URL (`https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:3900`).
    pub endpoint: String,
    /// The region the endpoint signs for (`us-east-1`; Garage's default is `garage`).
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// Key prefix, without leading or trailing `/`; may be empty.
    #[serde(default)]
    pub prefix: String,
    /// Path-style addressing (`ENDPOINT/BUCKET/KEY`), which most stores other than AWS need;
    /// otherwise virtual-host style (`BUCKET.ENDPOINT/KEY`).
    #[serde(default = "yes")]
    pub path_style: bool,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsSettings,
    /// Multipart part size; 0 for the default (16 MiB, more for files over 160 GiB).
    #[serde(default)]
    pub part_size: u64,
    /// Parts sent at once; 0 for the default (4).
    #[serde(default)]
    pub concurrency: usize,
}

fn yes() -> bool {
    true
}

/// How a provisioned domain is connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum LibvirtNetwork {
    /// A libvirt virtual network (`default`).
    Network {
        /// The network's name.
        name: String,
    },
    /// A host bridge (`br0`).
    Bridge {
        /// The bridge's name.
        name: String,
    },
    /// QEMU user-mode networking with host port forwards (`tcp:127.0.0.1:8080-:80`), set up
    /// on QEMU's command line: needs no privileges, so it is what tests use.
    User {
        /// The guest network (`192.0.2.0/24`), when the image has a static address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        net: Option<String>,
        /// Host forwards, QEMU `hostfwd` syntax.
        #[serde(default)]
        forwards: Vec<String>,
    },
}

/// A libvirt target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibvirtTarget {
    /// The libvirt connection URI (`qemu:///system`, `qemu+ssh://host/system`).
    pub uri: String,
    /// The storage pool volumes are uploaded to.
    pub pool: String,
    /// How domains are connected.
    pub network: LibvirtNetwork,
    /// The domain type: `kvm`, or `qemu` (software emulation) where KVM is unusable.
    #[serde(default = "kvm")]
    pub domain_type: String,
}

fn kvm() -> String {
    "kvm".into()
}

/// A target: its kind and everything but its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TargetSpec {
    /// A directory.
    Directory(DirectoryTarget),
    /// A container registry.
    Registry(RegistryTarget),
    /// An S3-compatible store.
    S3(S3Target),
    /// A libvirt host.
    Libvirt(LibvirtTarget),
}

impl TargetSpec {
    /// The kind.
    pub fn kind(&self) -> TargetKind {
        match self {
            TargetSpec::Directory(_) => TargetKind::Directory,
            TargetSpec::Registry(_) => TargetKind::Registry,
            TargetSpec::S3(_) => TargetKind::S3,
            TargetSpec::Libvirt(_) => TargetKind::Libvirt,
        }
    }

    /// How errors and records name the target: kind and endpoint, never credentials.
    pub fn display(&self) -> String {
        match self {
            TargetSpec::Directory(d) => format!("directory {}", d.path.display()),
            TargetSpec::Registry(r) => {
                let base = r.registry.trim_end_matches('/');
                if r.namespace.is_empty() {
                    format!("registry {base}")
                } else {
                    format!("registry {base}/{}", r.namespace.trim_matches('/'))
                }
            }
            TargetSpec::S3(s) => {
                let mut out = format!("s3://{}", s.bucket);
                if !s.prefix.is_empty() {
                    out.push('/');
                    out.push_str(s.prefix.trim_matches('/'));
                }
                format!("{out} at {}", super::error::redact_url(&s.endpoint))
            }
            TargetSpec::Libvirt(l) => {
                format!(
                    "libvirt {} pool {}",
                    super::error::redact_url(&l.uri),
                    l.pool
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_and_names() {
        let json = r#"{"type":"s3","endpoint":"http://127.0.0.1:3900","region":"garage",
                       "bucket":"b","prefix":"images"}"#;
        let t: TargetSpec = serde_json::from_str(json).unwrap();
        let TargetSpec::S3(s) = &t else { panic!() };
        assert!(s.path_style && s.part_size == 0);
        assert_eq!(t.display(), "s3://b/images at http://127.0.0.1:3900");
        assert_eq!(t.kind().name(), "s3");
        assert!(TargetKind::Registry.formats().contains(&Format::Oci));
        assert!(!TargetKind::Libvirt.formats().contains(&Format::Vmdk));
        let l = TargetSpec::Libvirt(LibvirtTarget {
            uri: "qemu:///system?socket=/tmp/s".into(),
            pool: "default".into(),
            network: LibvirtNetwork::Network {
                name: "default".into(),
            },
            domain_type: kvm(),
        });
        assert_eq!(l.display(), "libvirt qemu:///system pool default");
        let back: TargetSpec = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l);
    }
}
