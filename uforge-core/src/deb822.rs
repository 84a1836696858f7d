//! Debian control-file syntax (deb822): paragraphs of `Field: value` lines separated by blank
//! lines, with continuation lines starting with a space or tab. Used by the dpkg status file,
//! `Packages` and `Release` indexes and `.deb` control files.

/// One paragraph: fields in file order. Field names compare case-insensitively, as dpkg does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paragraph {
    fields: Vec<(String, String)>,
}

impl Paragraph {
    /// The value of a field; multi-line values keep their continuation lines joined by `\n`
    /// with the leading space removed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every field, in file order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether the paragraph has no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// Parses every paragraph of a control file. Lines that are neither fields nor continuations
/// (and `#` comments) are skipped: real databases occasionally hold them and dpkg tolerates them.
pub fn parse(text: &str) -> Vec<Paragraph> {
    let mut out = Vec::new();
    let mut cur = Paragraph::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, v)) = cur.fields.last_mut() {
                v.push('\n');
                v.push_str(&line[1..]);
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            cur.fields
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_and_continuations() {
        let text = "Package: a\nStatus: install ok installed\nConffiles:\n /etc/a 0123\n /etc/b 4567\n\n\nPackage: b\nversion: 1.0\n";
        let p = parse(text);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].get("package"), Some("a"));
        assert_eq!(p[0].get("Conffiles"), Some("\n/etc/a 0123\n/etc/b 4567"));
        assert_eq!(p[1].get("Version"), Some("1.0"));
        assert_eq!(p[1].get("Status"), None);
    }
}
