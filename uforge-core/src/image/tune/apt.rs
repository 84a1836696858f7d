//! Installing packages into the built root: apt runs on the build host (so the root needs
//! neither apt nor working DNS) and dpkg runs inside the root, as mmdebstrap does.

use std::path::{Path, PathBuf};
use std::process::Command;

use std::io::Write;

use crate::fsroot::{Create, Links, RootDir};
use crate::image::cmd;
use crate::{Error, Result};

/// apt configured for one root and one set of repositories.
#[derive(Debug)]
pub struct Apt {
    root: PathBuf,
    opts: Vec<String>,
    updated: bool,
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
        Ok(Apt {
            root: root.to_path_buf(),
            opts,
            updated: false,
        })
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        for o in &self.opts {
            c.arg("-o").arg(o);
        }
        c.env("DEBIAN_FRONTEND", "noninteractive")
            .env("LC_ALL", "C.UTF-8")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        c
    }

    fn update(&mut self) -> Result<()> {
        if !self.updated {
            let mut c = self.command("apt-get");
            c.arg("update");
            cmd::run(&mut c)
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
        let out = String::from_utf8_lossy(&cmd::run(&mut c)?).into_owned();
        Ok(out
            .lines()
            .find_map(|l| l.trim().strip_prefix("Candidate:"))
            .map(|v| v.trim().to_string())
            .filter(|v| v != "(none)"))
    }

    /// Installs `names` (and what they depend on), running their maintainer scripts in the
    /// root. Returns the packages dpkg set up, as `name=version`.
    pub fn install(&mut self, names: &[String]) -> Result<Vec<String>> {
        self.update()?;
        let before = installed(&self.root)?;
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
        let res = cmd::run(&mut c);
        if own_policy {
            dir.remove_file(policy)?;
        }
        res.map_err(|e| {
            Error::Invalid(format!("installing {} in the image: {e}", names.join(", ")))
        })?;
        let mut c = self.command("apt-get");
        c.arg("clean");
        cmd::run(&mut c)?;
        let after = installed(&self.root)?;
        Ok(after.into_iter().filter(|p| !before.contains(p)).collect())
    }
}

/// `name=version` of every installed package of the root, from its dpkg status file.
fn installed(root: &Path) -> Result<Vec<String>> {
    let status = RootDir::open(root, Links::InRoot)?.read(b"/var/lib/dpkg/status", 1 << 30)?;
    let text = String::from_utf8_lossy(&status);
    let mut out = Vec::new();
    for para in crate::deb822::parse(&text) {
        if para
            .get("Status")
            .is_some_and(|s| s.ends_with(" installed"))
        {
            if let (Some(n), Some(v)) = (para.get("Package"), para.get("Version")) {
                out.push(format!("{n}={v}"));
            }
        }
    }
    Ok(out)
}
