//! One-line sources.list syntax (`deb [options] uri suite [component...]`).

use std::fmt;
use std::path::PathBuf;

use super::err;
use crate::Result;

/// One line of sources.list syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLine {
    /// Repository base URI (`http://deb.debian.org/debian`, `file:/srv/repo`).
    pub uri: String,
    /// Suite (`bookworm`), or for a flat repository a path ending in `/` (`./`).
    pub suite: String,
    /// Components (`main`); empty for a flat repository.
    pub components: Vec<String>,
    /// `[trusted=yes]`: the signature is not checked (hashes in a Release file still are).
    pub trusted: bool,
    /// `[arch=...]`: the architectures to read, overriding the options.
    pub arch: Option<Vec<String>>,
    /// `[signed-by=...]`: the keyring for this repository, overriding the options; the
    /// Release must be signed by a key of this keyring.
    pub signed_by: Option<PathBuf>,
    /// `[check-valid-until=no]` turns this off: a Release whose `Valid-Until` date has passed
    /// is refused, as apt refuses it (a stale or replayed mirror).
    pub check_valid_until: bool,
}

impl SourceLine {
    /// Parses a line such as `deb [arch=amd64 signed-by=/k.gpg] http://host/debian bookworm main`.
    /// Comments (`# ...`) are ignored; `deb-src` and malformed lines are refused with the line
    /// in the message.
    pub fn parse(line: &str) -> Result<Self> {
        let bad = |msg: &str| err(format!("sources line {:?}", line.trim()), msg);
        let text = line.split('#').next().unwrap_or("").trim();
        let (kind, mut rest) = text
            .split_once(char::is_whitespace)
            .map(|(k, r)| (k, r.trim_start()))
            .unwrap_or((text, ""));
        match kind {
            "deb" => {}
            "deb-src" => {
                return Err(bad(
                    "deb-src lines name source packages, which cannot stand for installed files; use a deb line",
                ))
            }
            "" => return Err(bad("empty line")),
            _ => return Err(bad("expected a line starting with `deb`")),
        }
        let mut out = SourceLine {
            uri: String::new(),
            suite: String::new(),
            components: Vec::new(),
            trusted: false,
            arch: None,
            signed_by: None,
            check_valid_until: true,
        };
        if let Some(opts) = rest.strip_prefix('[') {
            let (opts, after) = opts
                .split_once(']')
                .ok_or_else(|| bad("unterminated `[` option list"))?;
            rest = after;
            for opt in opts.split_whitespace() {
                let (key, value) = opt
                    .split_once('=')
                    .ok_or_else(|| bad(&format!("option {opt:?} is not key=value")))?;
                // `arch+=`/`arch-=` tweak apt's defaults; there is no default to tweak here.
                let key = key.trim_end_matches(['+', '-']);
                match key {
                    "arch" => {
                        let archs: Vec<String> = value
                            .split(',')
                            .filter(|a| !a.is_empty())
                            .map(str::to_string)
                            .collect();
                        if archs.is_empty() {
                            return Err(bad("arch= names no architecture"));
                        }
                        out.arch = Some(archs);
                    }
                    "trusted" => {
                        out.trusted = match value {
                            "yes" => true,
                            "no" => false,
                            _ => return Err(bad("trusted= must be yes or no")),
                        }
                    }
                    "signed-by" => {
                        if !value.starts_with('/') {
                            return Err(bad(
                                "signed-by must be an absolute keyring path (fingerprints are not supported)",
                            ));
                        }
                        out.signed_by = Some(PathBuf::from(value));
                    }
                    "check-valid-until" => {
                        out.check_valid_until = match value {
                            "yes" => true,
                            "no" => false,
                            _ => return Err(bad("check-valid-until= must be yes or no")),
                        }
                    }
                    // lang=, target=, pdiffs=, by-hash=... only tune apt.
                    _ => {}
                }
            }
        }
        let mut words = rest.split_whitespace();
        out.uri = words
            .next()
            .ok_or_else(|| bad("missing repository URI"))?
            .to_string();
        if !out.uri.contains(':') {
            return Err(bad(
                "the repository URI has no scheme (file:, http:, https:)",
            ));
        }
        out.suite = words
            .next()
            .ok_or_else(|| bad("missing suite"))?
            .to_string();
        out.components = words.map(str::to_string).collect();
        if out.is_flat() {
            if !out.components.is_empty() {
                return Err(bad(
                    "a suite ending in `/` names a flat repository, which has no components",
                ));
            }
        } else if out.components.is_empty() {
            return Err(bad("missing component (such as `main`)"));
        }
        Ok(out)
    }

    /// Whether this is a flat repository (suite is a path ending in `/`, no `dists/`).
    pub fn is_flat(&self) -> bool {
        self.suite.ends_with('/')
    }
}

impl fmt::Display for SourceLine {
    /// The line back in sources.list syntax, for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut opts = Vec::new();
        if let Some(a) = &self.arch {
            opts.push(format!("arch={}", a.join(",")));
        }
        if self.trusted {
            opts.push("trusted=yes".to_string());
        }
        if let Some(k) = &self.signed_by {
            opts.push(format!("signed-by={}", k.display()));
        }
        if !self.check_valid_until {
            opts.push("check-valid-until=no".to_string());
        }
        write!(f, "deb ")?;
        if !opts.is_empty() {
            write!(f, "[{}] ", opts.join(" "))?;
        }
        write!(f, "{} {}", self.uri, self.suite)?;
        for c in &self.components {
            write!(f, " {c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_lines() {
        let l = SourceLine::parse("deb http://deb.debian.org/debian bookworm main").unwrap();
        assert_eq!(l.uri, "http://deb.debian.org/debian");
        assert_eq!(l.suite, "bookworm");
        assert_eq!(l.components, ["main"]);
        assert!(!l.trusted && l.arch.is_none() && l.signed_by.is_none() && !l.is_flat());
        assert_eq!(
            l.to_string(),
            "deb http://deb.debian.org/debian bookworm main"
        );

        let l = SourceLine::parse("deb [trusted=yes] file:/srv/repo ./").unwrap();
        assert!(l.trusted && l.is_flat() && l.components.is_empty());
        assert_eq!(l.uri, "file:/srv/repo");

        let l = SourceLine::parse(
            "  deb [ arch=amd64,arm64 signed-by=/k/r.gpg lang=none ] https://h/d bookworm main contrib # c",
        )
        .unwrap();
        assert_eq!(l.arch.as_deref().unwrap(), ["amd64", "arm64"]);
        assert_eq!(
            l.signed_by.as_deref(),
            Some(std::path::Path::new("/k/r.gpg"))
        );
        assert_eq!(l.components, ["main", "contrib"]);
        assert!(l.check_valid_until);
        assert_eq!(
            l.to_string(),
            "deb [arch=amd64,arm64 signed-by=/k/r.gpg] https://h/d bookworm main contrib"
        );

        let l = SourceLine::parse("deb [check-valid-until=no] http://h/d bookworm main").unwrap();
        assert!(!l.check_valid_until);
        assert_eq!(SourceLine::parse(&l.to_string()).unwrap(), l);
    }

    #[test]
    fn bad_lines() {
        for (line, needle) in [
            ("deb-src http://h/d bookworm main", "deb-src"),
            ("rpm http://h/d x", "starting with `deb`"),
            ("", "empty"),
            ("deb http://h/d bookworm", "component"),
            ("deb http://h/d", "suite"),
            ("deb [trusted=yes file:/x ./", "unterminated"),
            ("deb [trusted=maybe] file:/x ./", "yes or no"),
            ("deb [check-valid-until=0] http://h/d s main", "yes or no"),
            ("deb [signed-by=ABCDEF] http://h/d s main", "absolute"),
            ("deb file:/x ./ main", "flat"),
            ("deb /srv/x bookworm main", "scheme"),
        ] {
            let e = SourceLine::parse(line).unwrap_err().to_string();
            assert!(e.contains(needle), "{line:?}: {e}");
            assert!(e.contains(line.trim()), "{line:?}: {e}");
        }
    }
}
