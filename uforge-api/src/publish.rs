//! Publish targets and publication jobs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Credentials of a target, as given to `POST /targets` and `PUT /targets/{id}/credentials`.
/// They are sealed at rest and never appear in an answer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TargetCredentials {
    /// No credentials (a local directory, libvirt's unix socket, an open registry).
    #[default]
    None,
    /// User name and password: registry Basic or token auth, libvirt SASL.
    Password {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// A bearer token (a registry token issued beforehand).
    Token {
        /// The token.
        token: String,
    },
    /// An S3 access key pair.
    AccessKey {
        /// The access key id.
        access_key_id: String,
        /// The secret access key.
        secret_access_key: String,
        /// The session token of temporary credentials.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_token: Option<String>,
    },
}

impl std::fmt::Debug for TargetCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret half.
        match self {
            TargetCredentials::None => f.write_str("None"),
            TargetCredentials::Password { username, .. } => write!(f, "Password({username})"),
            TargetCredentials::Token { .. } => f.write_str("Token(***)"),
            TargetCredentials::AccessKey { access_key_id, .. } => {
                write!(f, "AccessKey({access_key_id})")
            }
        }
    }
}

/// `POST /targets` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTarget {
    /// Name, unique among the caller's targets: a letter, then letters, digits, `.`, `_`, `-`.
    #[cfg_attr(feature = "openapi", schema(example = "prod-registry"))]
    pub name: String,
    /// `registry`, `s3`, `directory` or `libvirt`; when given, it must match the URL.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The endpoint: `oci://HOST[:PORT]/NAMESPACE`, `s3://BUCKET/PREFIX/`, `dir:///PATH`,
    /// `libvirt:///system` (the forms of `uforge image publish --to`, without a name).
    #[cfg_attr(
        feature = "openapi",
        schema(example = "oci://registry.example.com/team")
    )]
    pub url: String,
    /// Options of the URL's kind (`endpoint`, `region`, `pool`, `type`, `forward`, `insecure`,
    /// `chunk`, `part`...), as in the URL's query.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// PEM certificates to trust for the endpoint besides the system's (a private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// Credentials; none when absent.
    #[serde(default)]
    pub credentials: TargetCredentials,
}

/// A publish target. Its credentials are never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Target {
    /// Target id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// `registry`, `s3`, `directory` or `libvirt`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The endpoint URL as given.
    pub url: String,
    /// The options as given.
    pub options: BTreeMap<String, String>,
    /// How errors name the target (kind and endpoint).
    pub description: String,
    /// Whether a private CA is trusted for it.
    pub ca_pem_set: bool,
    /// Whether credentials are stored for it.
    pub credentials_set: bool,
    /// Image formats the target takes.
    pub formats: Vec<String>,
    /// Whether machines can be started from what it holds (`deploy`).
    pub provisions: bool,
    /// Creation time (RFC 3339).
    pub created_at: String,
}

/// `POST /images/{id}/publications` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewPublication {
    /// The target's name (or id).
    pub target: String,
    /// Name at the target: a registry repository (`web`, `web:v1`), an object or file name,
    /// a volume name. Default: the image's file name (a registry: its host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Registry tag (default `latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Start a machine from the image (libvirt): a deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<bool>,
    /// The machine's memory in MiB (default 1024); implies `start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// The machine's virtual CPUs (default 1); implies `start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// `auto` (default), `bios` or `uefi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
}

/// How far a publication is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublicationProgress {
    /// Bytes sent in the phase (in `upload`: of the image).
    pub bytes: i64,
    /// Bytes the phase sends, when known.
    pub total_bytes: Option<i64>,
    /// Of the phase, when its total is known; 100 once done.
    pub percent: Option<i64>,
}

/// A machine started from a publication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deployed {
    /// The domain's name.
    pub name: String,
    /// `bios` or `uefi`.
    pub firmware: String,
    /// Memory in MiB.
    pub memory: u64,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Host port forwards to it.
    pub forwards: Vec<String>,
}

/// A publication job: an image sent to a target (and a machine started, for a deployment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Publication {
    /// Publication id.
    pub id: i64,
    /// The image published; null once that image is deleted.
    pub image: Option<i64>,
    /// The target's name.
    pub target: String,
    /// The name at the target asked for.
    pub name: Option<String>,
    /// Whether a machine is started from it.
    pub deploy: bool,
    /// Where the job is (`queued`, `running`, `done`, `failed`).
    pub status: crate::ImageStatus,
    /// The phase running or last reached: check, hash, upload, commit, provision.
    pub phase: Option<String>,
    /// Progress of the phase.
    pub progress: PublicationProgress,
    /// Why a failed job failed, naming the target.
    pub error: Option<String>,
    /// The kind of failure: `unauthorized`, `unreachable`, `no-space`, `not-found`...
    pub error_kind: Option<String>,
    /// Where the image is: a path, `REGISTRY/REPO:TAG@DIGEST`, `s3://BUCKET/KEY`, `POOL/VOLUME`.
    pub location: Option<String>,
    /// `sha256:HEX` of the file (of the manifest for a registry).
    pub digest: Option<String>,
    /// Bytes of the image at the target.
    pub size: Option<u64>,
    /// Bytes this publication sent (less than `size` when it resumed or found them there).
    pub sent: Option<u64>,
    /// The machine started.
    pub instance: Option<Deployed>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// When a worker took it.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
}
