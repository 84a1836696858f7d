//! Installing packages into the built root: the host's apt (so the root needs neither apt nor
//! working DNS) runs in a [sandbox](crate::image::sandbox) and its dpkg chroots into the root
//! there, as mmdebstrap does.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fsroot::{Create, Links, RootDir};
use crate::image::cmd;
use crate::image::sandbox::{self, Sandbox};
use crate::image::TuningPackage;
use crate::{Error, Result};

/// apt configured for one root and one set of repositories.
#[derive(Debug)]
pub struct Apt {
    root: PathBuf,
    opts: Vec<String>,
    /// apt's preferences file, outside the root: the pins that hold the source's packages.
    preferences: PathBuf,
    updated: bool,
    /// Where apt and its dpkg run: the host's tools, the root, apt's state and the local
    /// repositories and keyring, nothing else of the host.
    sandbox: Sandbox,
}

impl Apt {
    /// Prepares apt state under `work` for installing into `root` from `sources` (lines) for
    /// the architectures `archs` (the first is the native one).
    pub fn new(
        root: &Path,
        work: &Path,
        sources: &[String],
        archs: &[String],
        keyring: Option<&Path>,
    ) -> Result<Apt> {
        cmd::require("apt-get", "apt")?;
        let state = work.join("apt");
        let lists = state.join("lists");
        let parts = state.join("empty.d");
        for d in [&lists.join("partial"), &parts] {
            std::fs::create_dir_all(d).map_err(|e| Error::io("create", d, e))?;
        }
        let list = state.join("sources.list");
        let mut text = sources.join("\n");
        text.push('\n');
        std::fs::write(&list, text).map_err(|e| Error::io("write", &list, e))?;
        let cache = root.join("var/cache/apt");
        RootDir::open(root, Links::InRoot)?
            .create_dir_all(b"/var/cache/apt/archives/partial", 0o755)?;
        let native = archs.first().cloned().unwrap_or_else(|| "amd64".into());
        let p = |x: &Path| x.display().to_string();
        let mut opts = vec![
            format!("Dir::Etc::SourceList={}", p(&list)),
            format!("Dir::Etc::SourceParts={}", p(&parts)),
            format!("Dir::Etc::PreferencesParts={}", p(&parts)),
            format!("Dir::Etc::Preferences={}", p(&state.join("preferences"))),
            format!("Dir::State={}", p(&root.join("var/lib/apt"))),
            format!("Dir::State::Lists={}", p(&lists)),
            format!(
                "Dir::State::Status={}",
                p(&root.join("var/lib/dpkg/status"))
            ),
            format!("Dir::Cache={}", p(&cache)),
            format!("Dir::Cache::pkgcache={}", p(&state.join("pkgcache.bin"))),
            format!(
                "Dir::Cache::srcpkgcache={}",
                p(&state.join("srcpkgcache.bin"))
            ),
            format!("Dir::Log={}", p(&root.join("var/log/apt"))),
            format!("DPkg::Chroot-Directory={}", p(root)),
            format!("APT::Architecture={native}"),
            format!("APT::Architectures={}", archs.join(",")),
            "APT::Install-Recommends=false".into(),
            "APT::Get::Assume-Yes=true".into(),
            // The source's configuration files win over the packages' new ones.
            "DPkg::Options::=--force-confold".into(),
            "DPkg::Options::=--force-confdef".into(),
            "Acquire::Languages=none".into(),
        ];
        // Trust the given keyring, else the host's, for repositories that name none.
        if let Some(k) = keyring {
            opts.push(format!("Dir::Etc::Trusted={}", p(k)));
            opts.push(format!("Dir::Etc::TrustedParts={}", p(&parts)));
        } else if Path::new("/etc/apt/trusted.gpg.d").is_dir() {
            opts.push("Dir::Etc::TrustedParts=/etc/apt/trusted.gpg.d".into());
        }
        let mut sandbox = Sandbox::host_tools(root)
            .network(true)
            .with_root_mounts()
            .bind(&state, true);
        if let Some(k) = keyring {
            sandbox = sandbox.bind(k, false);
        }
        for dir in sandbox::local_repos(sources) {
            sandbox = sandbox.bind(&dir, false);
        }
        Ok(Apt {
            root: root.to_path_buf(),
            opts,
            preferences: state.join("preferences"),
            updated: false,
            sandbox,
        })
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        for o in &self.opts {
            c.arg("-o").arg(o);
        }
        c
    }

    /// Runs an apt command confined: dpkg runs the packages' maintainer scripts in the root
    /// inside the sandbox, never as root of the host.
    fn run(&self, c: &mut Command) -> Result<Vec<u8>> {
        self.sandbox.run(c)
    }

    fn update(&mut self) -> Result<()> {
        if !self.updated {
            let mut c = self.command("apt-get");
            c.arg("update");
            self.run(&mut c)
                .map_err(|e| Error::Invalid(format!("reading the repositories' indexes: {e}")))?;
            self.updated = true;
        }
        Ok(())
    }

    /// The version the repositories would install of `name`, if they have it.
    pub fn candidate(&mut self, name: &str) -> Result<Option<String>> {
        self.update()?;
        let mut c = self.command("apt-cache");
        c.args(["policy", name]);
        let out = String::from_utf8_lossy(&self.run(&mut c)?).into_owned();
        Ok(out
            .lines()
            .find_map(|l| l.trim().strip_prefix("Candidate:"))
            .map(|v| v.trim().to_string())
            .filter(|v| v != "(none)"))
    }

    /// Installs `names` (and what they depend on), running their maintainer scripts in the
    /// root, and returns every package installed, upgraded or removed with both versions.
    ///
    /// Unless `allow_upgrades`, every package installed in the root stays at its version: apt
    /// is told to keep each of them, and the packages it adds from the same source package
    /// as an installed one at that one's version (a new `udev` matches the installed
    /// `systemd`); when that cannot be, nothing is installed and the error names the conflict.
    pub fn install(
        &mut self,
        names: &[String],
        allow_upgrades: bool,
    ) -> Result<Vec<TuningPackage>> {
        self.update()?;
        let before = installed(&self.root)?;
        if allow_upgrades {
            match std::fs::remove_file(&self.preferences) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", &self.preferences, e)),
            }
        } else {
            self.hold(&before)?;
            self.check_unchanged(names)?;
        }
        // Maintainer scripts must not start the services they install on the build host.
        let dir = RootDir::open(&self.root, Links::InRoot)?;
        let policy: &[u8] = b"/usr/sbin/policy-rc.d";
        let own_policy = !dir.exists(policy);
        if own_policy {
            let mut f = dir.create(policy, 0o755, Create::New)?;
            let host = dir.host_path(policy);
            f.write_all(b"#!/bin/sh\nexit 101\n")
                .map_err(|e| Error::io("write", &host, e))?;
            f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .map_err(|e| Error::io("chmod", &host, e))?;
        }
        let mut c = self.command("apt-get");
        c.arg("install").args(names);
        let res = self.run(&mut c);
        if own_policy {
            dir.remove_file(policy)?;
        }
        res.map_err(|e| {
            Error::Invalid(format!("installing {} in the image: {e}", names.join(", ")))
        })?;
        let mut c = self.command("apt-get");
        c.arg("clean");
        self.run(&mut c)?;
        let after = installed(&self.root)?;
        Ok(changes(&before, &after))
    }

    /// Pins every installed package at its version, and each source package all of whose
    /// installed binaries share one version at that version.
    fn hold(&self, installed: &BTreeMap<String, Installed>) -> Result<()> {
        let mut text = String::new();
        let mut sources: BTreeMap<&str, Option<&str>> = BTreeMap::new();
        for (key, p) in installed {
            // apt names `Architecture: all` packages without one.
            let key = key.strip_suffix(":all").unwrap_or(key);
            text.push_str(&format!(
                "Package: {key}\nPin: version {}\nPin-Priority: 1001\n\n",
                p.version
            ));
            let v = sources
                .entry(p.source.as_str())
                .or_insert(Some(p.version.as_str()));
            if *v != Some(p.version.as_str()) {
                *v = None;
            }
        }
        for (src, version) in sources {
            if let Some(v) = version {
                text.push_str(&format!(
                    "Package: src:{src}\nPin: version {v}\nPin-Priority: 1001\n\n"
                ));
            }
        }
        std::fs::write(&self.preferences, text)
            .map_err(|e| Error::io("write", &self.preferences, e))
    }

    /// Fails, naming them, if installing `names` would upgrade, downgrade or remove an
    /// installed package (apt's simulation says so), or if apt cannot install them without.
    fn check_unchanged(&self, names: &[String]) -> Result<()> {
        let allow = "; allow upgrades (`--allow-upgrades`, or `allow_upgrades` in the API) to \
                     let tuning change them";
        let mut c = self.command("apt-get");
        c.args(["install", "--simulate"]).args(names);
        let out = self.run(&mut c).map_err(|e| {
            Error::Invalid(format!(
                "tuning cannot install {} and keep every package of the source at its \
                 scanned version{allow}: {e}",
                names.join(", ")
            ))
        })?;
        let mut changed = Vec::new();
        for line in String::from_utf8_lossy(&out).lines() {
            let (verb, rest) = match line.split_once(' ') {
                Some((v @ ("Inst" | "Remv"), rest)) => (v, rest),
                _ => continue,
            };
            // `Inst NAME [OLD] (NEW RELEASE [ARCH])`, `Inst NAME (NEW ...)`, `Remv NAME [OLD]`.
            let name = rest.split_whitespace().next().unwrap_or_default();
            let after = &rest[name.len()..];
            let old = after
                .strip_prefix(" [")
                .and_then(|r| r.split_once(']'))
                .map(|(v, _)| v);
            let new = after
                .split_once(" (")
                .and_then(|(_, r)| r.split_whitespace().next());
            match (verb, old) {
                ("Remv", _) => changed.push(format!(
                    "{name} {} would be removed",
                    old.unwrap_or("(installed)")
                )),
                (_, Some(old)) => changed.push(format!(
                    "{name} would go from {old} to {}",
                    new.unwrap_or("another version")
                )),
                _ => {}
            }
        }
        if changed.is_empty() {
            return Ok(());
        }
        Err(Error::Invalid(format!(
            "tuning cannot install {} without changing packages of the source: {}{allow}",
            names.join(", "),
            changed.join(", ")
        )))
    }
}

/// An installed package, from the root's dpkg status file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Installed {
    version: String,
    /// Its source package's name.
    source: String,
}

/// What changed between two states of the root's packages, by `name:arch`.
fn changes(
    before: &BTreeMap<String, Installed>,
    after: &BTreeMap<String, Installed>,
) -> Vec<TuningPackage> {
    let mut out = Vec::new();
    for (key, a) in after {
        match before.get(key) {
            Some(b) if b.version == a.version => {}
            b => out.push(TuningPackage {
                package: key.clone(),
                from: b.map(|b| b.version.clone()),
                to: Some(a.version.clone()),
            }),
        }
    }
    for (key, b) in before {
        if !after.contains_key(key) {
            out.push(TuningPackage {
                package: key.clone(),
                from: Some(b.version.clone()),
                to: None,
            });
        }
    }
    out
}

/// Every installed package of the root by `name:arch`, from its dpkg status file.
fn installed(root: &Path) -> Result<BTreeMap<String, Installed>> {
    let status = RootDir::open(root, Links::InRoot)?.read(b"/var/lib/dpkg/status", 1 << 30)?;
    let text = String::from_utf8_lossy(&status);
    let mut out = BTreeMap::new();
    for para in crate::deb822::parse(&text) {
        if para
            .get("Status")
            .is_some_and(|s| s.ends_with(" installed"))
        {
            if let (Some(n), Some(v), Some(a)) = (
                para.get("Package"),
                para.get("Version"),
                para.get("Architecture"),
            ) {
                // `Source: name (version)` when it differs from the binary's.
                let source = para
                    .get("Source")
                    .and_then(|s| s.split_whitespace().next())
                    .unwrap_or(n);
                out.insert(
                    format!("{n}:{a}"),
                    Installed {
                        version: v.to_string(),
                        source: source.to_string(),
                    },
                );
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_both_versions() {
        let p = |v: &str, s: &str| Installed {
            version: v.into(),
            source: s.into(),
        };
        let before = BTreeMap::from([
            ("systemd:amd64".to_string(), p("252.38-1", "systemd")),
            ("gone:all".to_string(), p("1.0", "gone")),
            ("same:amd64".to_string(), p("2", "same")),
        ]);
        let after = BTreeMap::from([
            ("systemd:amd64".to_string(), p("252.39-1", "systemd")),
            ("udev:amd64".to_string(), p("252.39-1", "systemd")),
            ("same:amd64".to_string(), p("2", "same")),
        ]);
        let c = |p: &str, f: Option<&str>, t: Option<&str>| TuningPackage {
            package: p.into(),
            from: f.map(String::from),
            to: t.map(String::from),
        };
        assert_eq!(
            changes(&before, &after),
            [
                c("systemd:amd64", Some("252.38-1"), Some("252.39-1")),
                c("udev:amd64", None, Some("252.39-1")),
                c("gone:all", Some("1.0"), None),
            ]
        );
    }
}
