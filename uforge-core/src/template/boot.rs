//! Boot scripts: run by a systemd unit of the image, as root, after My Software is in place.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::forms;
use super::software::{Content, ContentFields};

/// When a boot script runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    /// Once, at the first boot of each machine made from the image.
    Firstboot,
    /// At every boot (after the first-boot scripts, on the first one).
    Everyboot,
}

/// A script the image runs at boot (hammr's `config` entries of type `bootscript`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BootLine", into = "BootLine")]
pub struct BootScript {
    /// Name (`register.sh`), unique among the template's boot scripts.
    pub name: String,
    /// When it runs.
    pub frequency: Frequency,
    /// Position among the scripts of the same frequency: lower runs first, then by name.
    pub order: u32,
    /// The script (run with its own interpreter line).
    pub content: Content,
}

impl BootScript {
    /// The order scripts run in: first-boot ones first, then by `order`, then by name.
    pub fn run_order(&self, other: &Self) -> Ordering {
        (self.frequency, self.order, &self.name).cmp(&(other.frequency, other.order, &other.name))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BootLine {
    name: String,
    frequency: Frequency,
    #[serde(default, skip_serializing_if = "forms::is_zero")]
    order: u32,
    #[serde(flatten)]
    content: ContentFields,
}

impl TryFrom<BootLine> for BootScript {
    type Error = String;

    fn try_from(l: BootLine) -> Result<Self, String> {
        Ok(BootScript {
            content: l.content.required(&format!("boot script {}", l.name))?,
            name: l.name,
            frequency: l.frequency,
            order: l.order,
        })
    }
}

impl From<BootScript> for BootLine {
    fn from(b: BootScript) -> Self {
        BootLine {
            content: ContentFields::of(Some(&b.content)),
            name: b.name,
            frequency: b.frequency,
            order: b.order,
        }
    }
}
