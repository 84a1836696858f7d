//! INI-style files: systemd-networkd units and NetworkManager keyfiles.

/// A `[Section]` and its `key=value` entries in file order. Sections are kept apart even when
/// a name repeats, since networkd gives each `[Address]` or `[Route]` section its own meaning.
#[derive(Debug, Default)]
pub(super) struct Section {
    pub name: String,
    pub entries: Vec<(String, String)>,
}

impl Section {
    /// Every value of `key`, in order.
    pub fn all<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.entries
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The last non-empty value of `key`, which is the one in effect.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `text`; lines outside a section or without `=` are ignored.
pub(super) fn parse(text: &[u8]) -> Vec<Section> {
    let text = String::from_utf8_lossy(text);
    let mut sections: Vec<Section> = Vec::new();
    let mut pending = String::new();
    for raw in text.lines() {
        // A trailing backslash continues the line, as systemd allows.
        if let Some(head) = raw.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(raw);
        let line = std::mem::take(&mut pending);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push(Section {
                name: name.trim().to_string(),
                entries: Vec::new(),
            });
        } else if let (Some(section), Some((k, v))) = (sections.last_mut(), line.split_once('=')) {
            section
                .entries
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections() {
        let s = parse(
            b"ignored=1\n[Match]\nName=en*\n# c\n; c\n[Network]\nDNS=1.1.1.1 \\\n 8.8.8.8\n\
              DNS=9.9.9.9\n[Network]\nX = y\n",
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].get("Name"), Some("en*"));
        let dns: Vec<_> = s[1].all("DNS").collect();
        assert_eq!(dns, ["1.1.1.1   8.8.8.8", "9.9.9.9"]);
        assert_eq!(s[2].get("X"), Some("y"));
        assert_eq!(s[2].get("Y"), None);
    }
}
