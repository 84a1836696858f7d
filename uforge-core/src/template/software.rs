//! My Software: the components installed on top of the packages, and the contents they refer
//! to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::forms;
use crate::model::{FileKind, RawPath};
use crate::rawpath;

/// Where the bytes of a file, script or package come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Content {
    /// Bytes kept in a blob store, named by their SHA-256 (in a template directory:
    /// `files/HEX`).
    Blob {
        /// SHA-256 of the bytes.
        sha256: [u8; 32],
        /// Number of bytes.
        size: u64,
    },
    /// A file beside the template, relative to its `files/` directory (`motd`,
    /// `nginx/site.conf`): how a person adds a file by hand. Storing the template
    /// ([`super::file::store_sources`]) turns it into a [`Content::Blob`].
    Source(String),
}

impl Content {
    /// The blob digest, for content already stored.
    pub fn sha256(&self) -> Option<&[u8; 32]> {
        match self {
            Content::Blob { sha256, .. } => Some(sha256),
            Content::Source(_) => None,
        }
    }
}

/// The `sha256` + `size` or `source` fields that spell a [`Content`] in the file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ContentFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "forms::opt_sha256"
    )]
    pub sha256: Option<[u8; 32]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl ContentFields {
    pub fn of(c: Option<&Content>) -> Self {
        match c {
            None => ContentFields::default(),
            Some(Content::Blob { sha256, size }) => ContentFields {
                size: Some(*size),
                sha256: Some(*sha256),
                source: None,
            },
            Some(Content::Source(s)) => ContentFields {
                source: Some(s.clone()),
                ..ContentFields::default()
            },
        }
    }

    /// The content these fields name; `what` names the entry in errors.
    pub fn content(self, what: &str) -> Result<Option<Content>, String> {
        match (self.sha256, self.size, self.source) {
            (None, None, None) => Ok(None),
            (Some(sha256), Some(size), None) => Ok(Some(Content::Blob { sha256, size })),
            (None, None, Some(s)) => {
                check_source(&s).map_err(|m| format!("{what}: source {s:?} {m}"))?;
                Ok(Some(Content::Source(s)))
            }
            (Some(_), None, None) => Err(format!("{what}: sha256 needs size")),
            (None, Some(_), None) => Err(format!("{what}: size needs sha256")),
            (_, _, Some(_)) => Err(format!(
                "{what}: give either sha256 and size, or source, not both"
            )),
        }
    }

    /// Like [`ContentFields::content`] for entries that must have content.
    pub fn required(self, what: &str) -> Result<Content, String> {
        self.content(what)?
            .ok_or_else(|| format!("{what}: needs sha256 and size, or source"))
    }
}

/// A `source` must stay inside `files/`: relative, without `..`.
fn check_source(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("is empty");
    }
    if s.starts_with('/') {
        return Err("must be relative to the template's files/ directory");
    }
    if s.split('/').any(|c| c == "..") {
        return Err("must not contain `..`");
    }
    Ok(())
}

/// A named, versioned set of files installed after the packages, with the packages it brings
/// and the scripts that finish its installation (UForge's My Software; hammr's `bundles`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Name (`overlay`, `acme-app`).
    pub name: String,
    /// Version.
    pub version: String,
    /// Files, directories, links and special files, with their metadata; in path order.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "forms::flow_items"
    )]
    pub files: Vec<SoftwareFile>,
    /// Packages that no repository carries, installed from their own `.deb`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "forms::flow_items"
    )]
    pub ospkgs: Vec<OsPkg>,
    /// Scripts run as root in the image once the files are in place, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<InstallScript>,
    /// Paths the packages install that the component removes (files deleted on the scanned
    /// machine).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "forms::raw_paths"
    )]
    pub removed: Vec<RawPath>,
}

/// One filesystem object of a component.
///
/// Ownership is by name where the image has that user or group, else by number (`uid`,
/// `gid`): package scripts may number system accounts differently from the source machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FileLine", into = "FileLine")]
pub struct SoftwareFile {
    /// Absolute path in the image.
    pub path: RawPath,
    /// Kind of object (`file`, `dir`, `symlink`, `hardlink`, `fifo`, `char`, `block`).
    pub kind: FileKind,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    /// Owner name, if the source had one for the id.
    pub owner: Option<String>,
    /// Owner id.
    pub uid: u32,
    /// Group name, if the source had one for the id.
    pub group: Option<String>,
    /// Group id.
    pub gid: u32,
    /// Modification time, seconds since the epoch (`None`: the time of the build).
    pub mtime: Option<i64>,
    /// Contents of a regular file.
    pub content: Option<Content>,
    /// Target of a symlink, or for a hard link the path of the first name of the file.
    pub target: Option<RawPath>,
    /// Device number `(major, minor)` of a character or block device.
    pub rdev: Option<(u32, u32)>,
    /// Extended attributes (`security.capability` included), name to raw value.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// How a [`SoftwareFile`] is spelled: one flow mapping per line.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLine {
    #[serde(with = "forms::raw_path")]
    path: RawPath,
    #[serde(rename = "type")]
    kind: FileKind,
    #[serde(with = "forms::octal")]
    mode: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    #[serde(default, skip_serializing_if = "forms::is_zero")]
    uid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    #[serde(default, skip_serializing_if = "forms::is_zero")]
    gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mtime: Option<i64>,
    #[serde(flatten)]
    content: ContentFields,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "forms::opt_raw_path"
    )]
    target: Option<RawPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rdev: Option<[u32; 2]>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "forms::xattrs"
    )]
    xattrs: BTreeMap<String, Vec<u8>>,
}

impl TryFrom<FileLine> for SoftwareFile {
    type Error = String;

    fn try_from(l: FileLine) -> Result<Self, String> {
        let what = format!("file {}", rawpath::display(&l.path));
        if !l.path.starts_with(b"/") {
            return Err(format!("{what}: the path must be absolute"));
        }
        let content = l.content.content(&what)?;
        match l.kind {
            FileKind::File if content.is_none() => {
                return Err(format!("{what}: a file needs sha256 and size, or source"))
            }
            FileKind::File => {}
            _ if content.is_some() => {
                return Err(format!("{what}: only a regular file has content"))
            }
            FileKind::Symlink | FileKind::Hardlink if l.target.is_none() => {
                return Err(format!("{what}: a {} needs a target", l.kind.as_str()))
            }
            FileKind::Char | FileKind::Block if l.rdev.is_none() => {
                return Err(format!("{what}: a device needs rdev: [major, minor]"))
            }
            _ => {}
        }
        if l.mode > 0o7777 {
            return Err(format!("{what}: mode {:o} has bits beyond 07777", l.mode));
        }
        Ok(SoftwareFile {
            path: l.path,
            kind: l.kind,
            mode: l.mode,
            owner: l.owner,
            uid: l.uid,
            group: l.group,
            gid: l.gid,
            mtime: l.mtime,
            content,
            target: l.target,
            rdev: l.rdev.map(|[a, b]| (a, b)),
            xattrs: l.xattrs,
        })
    }
}

impl From<SoftwareFile> for FileLine {
    fn from(f: SoftwareFile) -> Self {
        FileLine {
            content: ContentFields::of(f.content.as_ref()),
            path: f.path,
            kind: f.kind,
            mode: f.mode,
            owner: f.owner,
            uid: f.uid,
            group: f.group,
            gid: f.gid,
            mtime: f.mtime,
            target: f.target,
            rdev: f.rdev.map(|(a, b)| [a, b]),
            xattrs: f.xattrs,
        }
    }
}

/// A package no repository carries, installed from its own `.deb` (UForge's OS package in My
/// Software): the packages an import recreates from the scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "OsPkgLine", into = "OsPkgLine")]
pub struct OsPkg {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Architecture.
    pub arch: String,
    /// The `.deb`.
    pub deb: Content,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OsPkgLine {
    name: String,
    version: String,
    arch: String,
    #[serde(flatten)]
    content: ContentFields,
}

impl TryFrom<OsPkgLine> for OsPkg {
    type Error = String;

    fn try_from(l: OsPkgLine) -> Result<Self, String> {
        let what = format!("ospkg {}", l.name);
        Ok(OsPkg {
            deb: l.content.required(&what)?,
            name: l.name,
            version: l.version,
            arch: l.arch,
        })
    }
}

impl From<OsPkg> for OsPkgLine {
    fn from(p: OsPkg) -> Self {
        OsPkgLine {
            content: ContentFields::of(Some(&p.deb)),
            name: p.name,
            version: p.version,
            arch: p.arch,
        }
    }
}

/// A script that finishes a component's installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ScriptLine", into = "ScriptLine")]
pub struct InstallScript {
    /// Name, for logs (`enable-app.sh`).
    pub name: String,
    /// The script (run with its own interpreter line).
    pub content: Content,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptLine {
    name: String,
    #[serde(flatten)]
    content: ContentFields,
}

impl TryFrom<ScriptLine> for InstallScript {
    type Error = String;

    fn try_from(l: ScriptLine) -> Result<Self, String> {
        Ok(InstallScript {
            content: l.content.required(&format!("script {}", l.name))?,
            name: l.name,
        })
    }
}

impl From<InstallScript> for ScriptLine {
    fn from(s: InstallScript) -> Self {
        ScriptLine {
            content: ContentFields::of(Some(&s.content)),
            name: s.name,
        }
    }
}
