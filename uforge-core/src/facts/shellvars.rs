//! `KEY=value` files written in shell syntax: os-release, /etc/default/*, sysconfig, ifcfg.
//!
//! These files are meant to be sourced by a shell, so values may be quoted or escaped; they are
//! never executed here, and substitutions (`$VAR`, backquotes) are kept literally.

use std::collections::HashMap;

/// Variables of a shell-style assignment file; a later assignment replaces an earlier one.
#[derive(Debug, Default)]
pub(crate) struct ShellVars(HashMap<String, String>);

impl ShellVars {
    /// Parses `text`, skipping lines that are not simple assignments.
    pub fn parse(text: &[u8]) -> Self {
        let text = String::from_utf8_lossy(text);
        let mut vars = HashMap::new();
        for line in text.lines() {
            let line = line.trim_start();
            let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
            if line.starts_with('#') {
                continue;
            }
            let Some((key, rest)) = line.split_once('=') else {
                continue;
            };
            let valid = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if valid {
                vars.insert(key.to_string(), unquote(rest));
            }
        }
        ShellVars(vars)
    }

    /// The value of `key`, even if empty.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The value of `key` when set and not blank.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.raw(key).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Owned form of [`ShellVars::get`].
    pub fn string(&self, key: &str) -> Option<String> {
        self.get(key).map(str::to_string)
    }

    /// Every set key, for keys with numbered forms (`IPADDR0`, `DNS1`).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// The value of one shell word: quotes removed, escapes applied, stopped at the first
/// unquoted blank (what follows would be a command or a comment).
fn unquote(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    out.push(c);
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(n @ ('$' | '`' | '"' | '\\')) => out.push(n),
                            Some(n) => {
                                out.push('\\');
                                out.push(n);
                            }
                            None => break,
                        },
                        _ => out.push(c),
                    }
                }
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            c if c.is_whitespace() => break,
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        let v = ShellVars::parse(
            b"# comment\nA=plain\nB=\"double \\\"q\\\" \\$x \\n\"\nC='single \\ \"x\"'\n\
              export D=a\\ b\nE=x # trailing\nF=\"\"\n  G = bad\n1H=bad\nB=\"Debian GNU/Linux\"\n",
        );
        assert_eq!(v.get("A"), Some("plain"));
        assert_eq!(v.get("B"), Some("Debian GNU/Linux"));
        assert_eq!(v.get("C"), Some("single \\ \"x\""));
        assert_eq!(v.get("D"), Some("a b"));
        assert_eq!(v.get("E"), Some("x"));
        assert_eq!(v.raw("F"), Some(""));
        assert_eq!(v.get("F"), None);
        assert_eq!(v.get("G"), None);
        assert_eq!(v.get("1H"), None);
        assert_eq!(unquote(r#""a \"q\" \$x \n""#), r#"a "q" $x \n"#);
    }
}
