//! Installing packages into the built root: the host's apt (so the root needs neither apt nor
//! working DNS) runs in a [sandbox](crate::image::sandbox) and its dpkg chroots into the root
//! there, as mmdebstrap does.

use std::path::{Path, PathBuf};
use std::process::Command;

use std::io::Write;

use crate::fsroot::{Create, Links, RootDir};
use crate::image::cmd;
use crate::image::sandbox::{self, Sandbox};
use crate::{Error, Result};

/// apt configured for one root and one set of repositories.
#[derive(Debug)]
pub struct Apt {
    root: PathBuf,
    opts: Vec<String>,
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
