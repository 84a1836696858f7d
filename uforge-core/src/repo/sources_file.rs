//! Sources files as apt reads them: one-line `sources.list` files and deb822 `.sources` files
//! (what bookworm and later write in `/etc/apt/sources.list.d/debian.sources`).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{cache, err, hex, SourceLine};
use crate::{deb822, Error, Result};

/// One repository named by a sources file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceEntry {
    /// The repository; `signed_by` is unset when the key is inline.
    pub line: SourceLine,
    /// An ASCII-armored key block given inline in a deb822 `Signed-By` field.
    pub inline_key: Option<String>,
}

/// Parses a sources file of either form. `what` names the file in messages. `deb-src`
/// entries and deb822 stanzas with `Enabled: no` are passed over, as they name nothing a
/// machine installs from.
pub fn parse_sources(text: &str, what: &str) -> Result<Vec<SourceEntry>> {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    let one_line = first.is_some_and(|l| {
        l.split(|c: char| c.is_whitespace() || c == '[')
            .next()
            .is_some_and(|w| w == "deb" || w == "deb-src")
    });
    if !one_line {
        return parse_deb822(text, what);
    }
    let mut out = Vec::new();
    for (n, l) in text.lines().enumerate() {
        let code = l.split('#').next().unwrap_or("").trim();
        if code.is_empty() || code.starts_with("deb-src") {
            continue;
        }
        let line = SourceLine::parse(l).map_err(|e| err(format!("{what} line {}", n + 1), e))?;
        out.push(SourceEntry {
            line,
            inline_key: None,
        });
    }
    Ok(out)
}

/// The deb822 form: one stanza per group of repositories, each the product of its `URIs`
/// and `Suites`.
fn parse_deb822(text: &str, what: &str) -> Result<Vec<SourceEntry>> {
    let mut out = Vec::new();
    for (n, para) in deb822::parse(text).iter().enumerate() {
        let at = format!("{what} stanza {}", n + 1);
        let bad = |m: &str| err(&at, m);
        let words = |f: &str| -> Vec<&str> {
            para.get(f)
                .map(|v| v.split_whitespace().collect())
                .unwrap_or_default()
        };
        let yes_no = |f: &str| -> Result<Option<bool>> {
            match para.get(f).map(str::to_ascii_lowercase).as_deref() {
                None => Ok(None),
                Some("yes") => Ok(Some(true)),
                Some("no") => Ok(Some(false)),
                Some(v) => Err(bad(&format!("{f}: {v:?} is neither yes nor no"))),
            }
        };
        let types = words("Types");
        if types.is_empty() {
            return Err(bad("no Types field"));
        }
        if let Some(t) = types.iter().find(|t| **t != "deb" && **t != "deb-src") {
            return Err(bad(&format!(
                "unknown type {t:?} (expected deb or deb-src)"
            )));
        }
        let enabled = yes_no("Enabled")?.unwrap_or(true);
        if !enabled || !types.contains(&"deb") {
            continue;
        }
        let (uris, suites, components) = (words("URIs"), words("Suites"), words("Components"));
        if uris.is_empty() {
            return Err(bad("no URIs field"));
        }
        if suites.is_empty() {
            return Err(bad("no Suites field"));
        }
        let mut opts = Vec::new();
        let archs = words("Architectures");
        if !archs.is_empty() {
            opts.push(format!("arch={}", archs.join(",")));
        }
        if yes_no("Trusted")? == Some(true) {
            opts.push("trusted=yes".into());
        }
        if yes_no("Check-Valid-Until")? == Some(false) {
            opts.push("check-valid-until=no".into());
        }
        let (signed_by, inline_key) = signed_by(para.get("Signed-By"), &bad)?;
        for uri in &uris {
            for suite in &suites {
                let text = format!(
                    "deb [{}] {uri} {suite} {}",
                    opts.join(" "),
                    components.join(" ")
                );
                let mut line = SourceLine::parse(&text).map_err(|e| err(&at, e))?;
                line.signed_by = signed_by.clone();
                out.push(SourceEntry {
                    line,
                    inline_key: inline_key.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// A `Signed-By` value: a keyring path, or an inline armored key block whose empty lines
/// deb822 spells ` .`.
fn signed_by(
    value: Option<&str>,
    bad: &dyn Fn(&str) -> Error,
) -> Result<(Option<PathBuf>, Option<String>)> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok((None, None));
    };
    if value.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
        let mut key: String = value
            .lines()
            .map(|l| if l.trim() == "." { "" } else { l.trim_end() })
            .collect::<Vec<_>>()
            .join("\n");
        key.push('\n');
        if !key.contains("-----END PGP PUBLIC KEY BLOCK-----") {
            return Err(bad("Signed-By: inline key block without its END line"));
        }
        return Ok((None, Some(key)));
    }
    let paths: Vec<&str> = value
        .split([',', ' ', '\n'])
        .filter(|p| !p.is_empty())
        .collect();
    match paths.as_slice() {
        [p] if p.starts_with('/') => Ok((Some(PathBuf::from(p)), None)),
        [_] => Err(bad(
            "Signed-By must be an absolute keyring path or an inline key block (fingerprints are not supported)",
        )),
        _ => Err(bad("Signed-By names several keyrings; give one")),
    }
}

/// The repositories of a sources file (either form) as one-line entries, each inline key
/// written to `keys_dir/<sha256>.asc` and named by `signed-by`.
pub fn source_lines(text: &str, what: &str, keys_dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for mut e in parse_sources(text, what)? {
        if let Some(key) = &e.inline_key {
            std::fs::create_dir_all(keys_dir)
                .map_err(|err| Error::io("create directory", keys_dir, err))?;
            // Named by content: the same key block always lands on the same file.
            let path = keys_dir.join(format!("{}.asc", hex(&Sha256::digest(key.as_bytes()))));
            if std::fs::read(&path).ok().as_deref() != Some(key.as_bytes()) {
                cache::write_atomic(&path, key.as_bytes())?;
            }
            e.line.signed_by = Some(path);
        }
        out.push(e.line.to_string());
    }
    Ok(out)
}

/// [`source_lines`] of a file.
pub fn read_sources_file(path: &Path, keys_dir: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    let lines = source_lines(&text, &path.display().to_string(), keys_dir)?;
    if lines.is_empty() {
        return Err(err(path.display(), "names no enabled `deb` repository"));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machines_debian_sources() {
        // bookworm writes its sources in deb822 form; this machine's file is read as it is.
        let path = Path::new("/etc/apt/sources.list.d/debian.sources");
        let text = std::fs::read_to_string(path).unwrap();
        let entries = parse_sources(&text, "debian.sources").unwrap();
        let lines: Vec<String> = entries.iter().map(|e| e.line.to_string()).collect();
        let k = "/usr/share/keyrings/debian-archive-keyring.gpg";
        assert_eq!(
            lines,
            [
                format!("deb [signed-by={k}] http://deb.debian.org/debian bookworm main"),
                format!("deb [signed-by={k}] http://deb.debian.org/debian bookworm-updates main"),
                format!(
                    "deb [signed-by={k}] http://deb.debian.org/debian-security bookworm-security main"
                ),
            ]
        );
        assert!(entries.iter().all(|e| e.inline_key.is_none()));
    }

    #[test]
    fn stanzas_options_and_inline_keys() {
        let armored = std::process::Command::new("gpg")
            .args(["--enarmor"])
            .stdin(std::fs::File::open("/usr/share/keyrings/debian-archive-keyring.gpg").unwrap())
            .output()
            .unwrap();
        assert!(armored.status.success());
        // `gpg --enarmor` writes an ARMORED FILE block; a key export has the same shape.
        let block = String::from_utf8(armored.stdout)
            .unwrap()
            .replace("PGP ARMORED FILE", "PGP PUBLIC KEY BLOCK");
        let field: String = block
            .lines()
            .map(|l| format!(" {}\n", if l.is_empty() { "." } else { l }))
            .collect();
        let text = format!(
            "# comment\nTypes: deb deb-src\nURIs: http://a/debian http://b/debian\nSuites: trixie trixie-updates\n\
             Components: main contrib\nArchitectures: amd64 i386\nCheck-Valid-Until: no\nSigned-By:\n{field}\n\
             Types: deb-src\nURIs: http://a/debian\nSuites: trixie\nComponents: main\n\n\
             Types: deb\nURIs: http://c/debian\nSuites: x\nComponents: main\nEnabled: no\n\n\
             Types: deb\n# inside a stanza\nURIs: file:/srv/flat\nSuites: ./\nTrusted: yes\n"
        );
        let entries = parse_sources(&text, "t.sources").unwrap();
        let lines: Vec<String> = entries.iter().map(|e| e.line.to_string()).collect();
        let o = "arch=amd64,i386 check-valid-until=no";
        assert_eq!(
            lines,
            [
                format!("deb [{o}] http://a/debian trixie main contrib"),
                format!("deb [{o}] http://a/debian trixie-updates main contrib"),
                format!("deb [{o}] http://b/debian trixie main contrib"),
                format!("deb [{o}] http://b/debian trixie-updates main contrib"),
                "deb [trusted=yes] file:/srv/flat ./".to_string(),
            ]
        );
        assert_eq!(entries[0].inline_key.as_deref(), Some(block.as_str()));

        let keys = tempfile::tempdir().unwrap();
        let lines = source_lines(&text, "t.sources", keys.path()).unwrap();
        let l = SourceLine::parse(&lines[0]).unwrap();
        let key = l.signed_by.unwrap();
        assert!(key.starts_with(keys.path()));
        assert_eq!(std::fs::read_to_string(&key).unwrap(), block);
        // The written key is a keyring gpgv accepts, through the armored-keyring path.
        let (bin, _t) = super::super::verify::binary_keyring(&key, keys.path()).unwrap();
        assert_eq!(
            std::fs::read(bin).unwrap(),
            std::fs::read("/usr/share/keyrings/debian-archive-keyring.gpg").unwrap()
        );
    }

    #[test]
    fn one_line_files_and_errors() {
        let text = "# c\n\ndeb-src http://h/d s main\ndeb [arch=amd64] http://h/d s main # x\n";
        let e = parse_sources(text, "f.list").unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line.to_string(), "deb [arch=amd64] http://h/d s main");
        let msg = parse_sources("deb http://h/d s main\ndeb http://h/d\n", "f.list")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("f.list line 2") && msg.contains("suite"),
            "{msg}"
        );

        for (text, needle) in [
            ("URIs: http://h/d\nSuites: s\n", "no Types"),
            ("Types: rpm\nURIs: http://h/d\nSuites: s\n", "unknown type"),
            ("Types: deb\nSuites: s\nComponents: main\n", "no URIs"),
            ("Types: deb\nURIs: http://h/d\nComponents: main\n", "no Suites"),
            ("Types: deb\nURIs: http://h/d\nSuites: s\n", "component"),
            ("Types: deb\nURIs: http://h/d\nSuites: s\nComponents: m\nTrusted: maybe\n", "neither yes nor no"),
            ("Types: deb\nURIs: http://h/d\nSuites: s\nComponents: m\nSigned-By: ABCD1234\n", "fingerprints"),
            ("Types: deb\nURIs: http://h/d\nSuites: s\nComponents: m\nSigned-By: /a.gpg /b.gpg\n", "several"),
        ] {
            let msg = parse_sources(&format!("Types: deb\nURIs: http://ok/d\nSuites: s\nComponents: m\n\n{text}"), "x.sources")
                .unwrap_err()
                .to_string();
            assert!(msg.contains("x.sources stanza 2") && msg.contains(needle), "{text:?}: {msg}");
        }
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("off.sources");
        std::fs::write(
            &f,
            "Types: deb\nURIs: http://h/d\nSuites: s\nComponents: m\nEnabled: no\n",
        )
        .unwrap();
        let msg = read_sources_file(&f, t.path()).unwrap_err().to_string();
        assert!(
            msg.contains("off.sources") && msg.contains("no enabled"),
            "{msg}"
        );
    }
}
