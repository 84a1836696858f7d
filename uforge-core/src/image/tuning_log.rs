//! The tuning log: every change the image build made to the scanned machine's files, by step.
//!
//! It is stored inside the image (at [`TuningLog::IN_IMAGE`]) and beside it, so that
//! `uforge image verify` can tell a tuning change from a migration fault.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use base64::Engine;

use crate::model::RawPath;
use crate::rawpath::{to_text, TextPath, B64};

/// One change to one path. In JSON the path is `path` when it is UTF-8 and `path_b64`
/// otherwise, as in reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "WireChange", try_from = "WireChange")]
pub struct TuningChange {
    /// In-root path.
    pub path: RawPath,
    /// `added`, `removed` or `modified`.
    pub status: String,
    /// For `modified`: what differs (`content`, `mode`, `owner`, `mtime`...).
    pub what: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct WireChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path_b64: Option<String>,
    status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    what: Vec<String>,
}

impl From<TuningChange> for WireChange {
    fn from(c: TuningChange) -> Self {
        let (path, path_b64) = match to_text(&c.path) {
            TextPath::Utf8(s) => (Some(s.to_string()), None),
            TextPath::Base64(b) => (None, Some(b)),
        };
        WireChange {
            path,
            path_b64,
            status: c.status,
            what: c.what,
        }
    }
}

impl TryFrom<WireChange> for TuningChange {
    type Error = String;
    fn try_from(w: WireChange) -> Result<Self, String> {
        let path = match (w.path, w.path_b64) {
            (Some(p), None) => p.into_bytes(),
            (None, Some(b)) => B64
                .decode(b.as_bytes())
                .map_err(|e| format!("path_b64: {e}"))?,
            _ => return Err("a change needs exactly one of path and path_b64".into()),
        };
        Ok(TuningChange {
            path,
            status: w.status,
            what: w.what,
        })
    }
}

/// A package a tuning step installed (`from` is none), removed (`to` is none) or changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TuningPackage {
    /// `name:arch`.
    pub package: String,
    /// The version before the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The version after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// One tuning step and the changes it made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TuningStep {
    /// Short name (`fstab`, `network`, `kernel`, `bootloader`...).
    pub name: String,
    /// What was done and why, for people.
    pub description: String,
    /// Packages installed by the step (`name=version`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// Every package the step installed, upgraded, downgraded or removed, with both versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub package_changes: Vec<TuningPackage>,
    /// Every path the step added, removed or modified.
    pub changes: Vec<TuningChange>,
}

/// Everything the build changed, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TuningLog {
    /// Format the image was written in.
    pub format: String,
    /// Target it was tuned for.
    pub target: String,
    /// Steps, in the order they ran.
    pub steps: Vec<TuningStep>,
}

impl TuningLog {
    /// Where the log is stored inside images that have a root filesystem.
    pub const IN_IMAGE: &'static str = "/var/lib/uforge/tuning-log.json";

    /// The step that last changed each path, for explaining differences.
    pub fn explained(&self) -> HashMap<&[u8], &TuningStep> {
        let mut out = HashMap::new();
        for step in &self.steps {
            for c in &step.changes {
                out.insert(c.path.as_slice(), step);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_as_text_or_base64() {
        let log = TuningLog {
            format: "qcow2".into(),
            target: "kvm".into(),
            steps: vec![TuningStep {
                name: "network".into(),
                description: "d".into(),
                packages: vec![],
                package_changes: vec![],
                changes: vec![
                    TuningChange {
                        path: b"/etc/fstab".to_vec(),
                        status: "modified".into(),
                        what: vec!["content".into()],
                    },
                    TuningChange {
                        path: b"/srv/caf\xe9".to_vec(),
                        status: "added".into(),
                        what: vec![],
                    },
                ],
            }],
        };
        let json = serde_json::to_value(&log).unwrap();
        let changes = &json["steps"][0]["changes"];
        assert_eq!(changes[0]["path"], "/etc/fstab");
        assert_eq!(changes[1]["path_b64"], "L3Nydi9jYWbp");
        assert!(changes[1].get("path").is_none());
        let back: TuningLog = serde_json::from_value(json).unwrap();
        assert_eq!(back, log);
        assert_eq!(back.explained().len(), 2);
        let bad = serde_json::json!({"status": "added"});
        assert!(serde_json::from_value::<TuningChange>(bad).is_err());
    }
}
