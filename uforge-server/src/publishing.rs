//! What the publication API and workers share: a stored target opened into what the library
//! takes, and how a target's errors are worded.

use uforge_core::publish::{Credentials, TargetError, TargetSpec};

use crate::db::models::TargetRow;
use crate::sealing::{target_context, SealingKey};

/// A stored target with its credentials opened.
pub struct OpenTarget {
    /// The target's description.
    pub spec: TargetSpec,
    /// Its credentials (none when none are stored).
    pub credentials: Credentials,
}

/// Opens a stored target; the error names it and never holds a credential.
pub fn open_target(key: &SealingKey, row: &TargetRow) -> Result<OpenTarget, String> {
    let spec: TargetSpec = serde_json::from_str(&row.spec).map_err(|e| {
        format!(
            "target {}: its stored description is unreadable: {e}",
            row.name
        )
    })?;
    let credentials = match &row.credentials {
        None => Credentials::None,
        Some(sealed) => {
            let plain = key
                .open(sealed, &target_context(row.user_id, &row.name))
                .map_err(|e| format!("target {}: {e:#}", row.name))?;
            // The error of a failed parse quotes no input.
            serde_json::from_slice(&plain).map_err(|_| {
                format!("target {}: its stored credentials are unreadable", row.name)
            })?
        }
    };
    Ok(OpenTarget { spec, credentials })
}

/// A target's error as a job records it: the user's name for the target first, then the
/// target's own description and what happened.
pub fn error_text(name: &str, e: &TargetError) -> String {
    format!("target {name}: {e}")
}
