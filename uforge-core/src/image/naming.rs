//! How image files are named: after the scanned host, in characters every file system and
//! image tool takes, since the name comes from the scanned machine.

use super::Format;
use crate::model::Machine;

/// A name restricted to ASCII letters, digits, `.`, `_` and `-` (anything else becomes `-`),
/// at most 64 characters, not starting or ending with `.` or `-`; `None` when nothing is left.
pub fn safe_name(name: &str) -> Option<String> {
    let mapped: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    let safe = mapped.trim_matches(|c| matches!(c, '.' | '-'));
    (!safe.is_empty()).then(|| safe.to_string())
}

/// The file name of an image of `machine`: `HOST.EXT` with the safe form of its host name,
/// `FALLBACK.EXT` when it has none.
pub fn file_name(machine: &Machine, format: Format, fallback: &str) -> String {
    let base = machine
        .hostname
        .as_deref()
        .and_then(safe_name)
        .unwrap_or_else(|| fallback.to_string());
    format!("{base}.{}", format.extension())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe() {
        assert_eq!(safe_name("web01.example.com").unwrap(), "web01.example.com");
        assert_eq!(safe_name("../etc/x y").unwrap(), "etc-x-y");
        assert_eq!(safe_name(" .. "), None);
        assert_eq!(safe_name(&"a".repeat(80)).unwrap().len(), 64);
        let mut m = Machine::default();
        assert_eq!(file_name(&m, Format::Oci, "scan-7"), "scan-7.oci.tar");
        m.hostname = Some("web01".into());
        assert_eq!(file_name(&m, Format::Qcow2, "scan-7"), "web01.qcow2");
    }
}
