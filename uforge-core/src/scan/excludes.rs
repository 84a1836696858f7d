//! What a scan leaves out, and the lookup the walker does for every directory.

use std::collections::HashMap;

use crate::model::{Exclude, RawPath};

/// Directories whose contents a scan skips by default; the directories themselves are kept so
/// that the rebuilt machine has them with the right metadata.
pub const DEFAULT_CONTENTS_EXCLUDES: &[(&str, &str)] = &[
    ("/proc", "pseudo filesystem"),
    ("/sys", "pseudo filesystem"),
    ("/dev", "device nodes of the running system"),
    ("/run", "runtime state"),
    ("/tmp", "temporary files"),
    ("/var/tmp", "temporary files"),
    ("/var/cache/apt", "apt package cache"),
];

/// The exclusion table, keyed by path for O(1) checks during the walk.
#[derive(Debug, Default)]
pub struct Excludes {
    list: Vec<Exclude>,
    map: HashMap<RawPath, bool>,
}

impl Excludes {
    /// Adds an exclusion; a whole-path exclusion wins over a contents-only one for the same path.
    pub fn add(&mut self, path: RawPath, contents_only: bool, reason: &str) {
        match self.map.get(&path) {
            Some(false) => return,
            Some(true) if contents_only => return,
            _ => {}
        }
        self.list.retain(|e| e.path != path);
        self.map.insert(path.clone(), contents_only);
        self.list.push(Exclude {
            path,
            contents_only,
            reason: reason.to_string(),
        });
    }

    /// `None` when the path is scanned normally, `Some(true)` when it is kept but not entered,
    /// `Some(false)` when it is skipped.
    pub fn check(&self, path: &[u8]) -> Option<bool> {
        if self.map.is_empty() {
            return None;
        }
        self.map.get(path).copied()
    }

    /// The exclusions, in the order they were added, for the report.
    pub fn into_list(self) -> Vec<Exclude> {
        self.list
    }

    /// The exclusions, for the report.
    pub fn list(&self) -> &[Exclude] {
        &self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_path_wins() {
        let mut e = Excludes::default();
        e.add(b"/tmp".to_vec(), true, "temporary files");
        e.add(b"/tmp".to_vec(), false, "user");
        e.add(b"/tmp".to_vec(), true, "again");
        assert_eq!(e.check(b"/tmp"), Some(false));
        assert_eq!(e.check(b"/tmp/x"), None);
        assert_eq!(e.list().len(), 1);
        assert_eq!(e.list()[0].reason, "user");
    }
}
