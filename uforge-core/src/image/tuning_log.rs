//! The tuning log: every change the image build made to the scanned machine's files, by step.
//!
//! It is stored inside the image (at [`TuningLog::IN_IMAGE`]) and beside it, so that
//! `uforge image verify` can tell a tuning change from a migration fault.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::model::RawPath;

/// One change to one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TuningChange {
    /// In-root path.
    #[serde(with = "serde_bytes")]
    pub path: RawPath,
    /// `added`, `removed` or `modified`.
    pub status: String,
    /// For `modified`: what differs (`content`, `mode`, `owner`, `mtime`...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub what: Vec<String>,
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
