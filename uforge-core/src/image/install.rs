//! Installing the scanned package set, at the scanned versions, into a fresh root.
//!
//! The install is done by `mmdebstrap` (apt resolves nothing: every package is named with its
//! exact version and architecture, and dpkg runs every maintainer script as a real install
//! does). The initramfs is not built during the install: the kernel hook and the initramfs
//! trigger would each build it, and the tuning step builds it once for the target instead.

use std::path::Path;
use std::process::Command;

use super::cmd;
use crate::model::Package;
use crate::progress::Progress;
use crate::repo::{PackageKey, RepoIndex, Sources};
use crate::{Error, Result};

/// What to install where.
#[derive(Debug)]
pub struct InstallSpec<'a> {
    /// The scanned packages (only those dpkg had `installed` are installed).
    pub packages: &'a [Package],
    /// The scanned release's suite (`bookworm`).
    pub suite: &'a str,
    /// Package repositories (the flat ones of recreated packages trusted) and the keyring for
    /// those that name none (default: the host's apt keyrings).
    pub sources: &'a Sources,
    /// The root to fill: empty, or a freshly made filesystem with only `lost+found`.
    pub root: &'a Path,
}

/// The packages a build installs: those the source had installed.
pub fn wanted(packages: &[Package]) -> Vec<&Package> {
    packages
        .iter()
        .filter(|p| p.manager == "dpkg" && p.status == "installed")
        .collect()
}

/// The sources.list line of a flat repository of recreated packages.
pub fn local_line(dir: &Path) -> String {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    // copy: puts the .deb files in the root's apt cache, where dpkg in the chroot reads them.
    format!("deb [trusted=yes] copy:{} ./", dir.display())
}

/// The sources.list lines mmdebstrap and apt in the new root are given: the repositories, then
/// the local ones that have an index.
pub fn lines(sources: &Sources) -> Vec<String> {
    let mut out = sources.lines.clone();
    out.extend(sources.indexed_local().map(local_line));
    out
}

/// Fails, naming every package, when some scanned package is in none of the repositories.
pub fn check_available(packages: &[Package], repos: &[Box<dyn RepoIndex>]) -> Result<()> {
    let missing: Vec<String> = wanted(packages)
        .into_iter()
        .map(PackageKey::of)
        .filter(|k| !repos.iter().any(|r| r.has(k)))
        .map(|k| k.to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = missing.iter().take(20).map(String::as_str).collect();
    Err(Error::Invalid(format!(
        "no repository can supply {} of the scanned packages: {}{}; register a repository \
         that has them, or finish the scan so that the server recreates them",
        missing.len(),
        shown.join(", "),
        if missing.len() > shown.len() {
            ", …"
        } else {
            ""
        }
    )))
}

/// Installs the packages into `spec.root`.
pub fn install(spec: &InstallSpec<'_>, progress: &dyn Progress) -> Result<()> {
    cmd::require("mmdebstrap", "mmdebstrap")?;
    let pkgs = wanted(spec.packages);
    if pkgs.is_empty() {
        return Err(Error::Invalid(
            "the scan lists no installed dpkg packages: there is nothing to install".into(),
        ));
    }
    progress.phase("install", Some(pkgs.len() as u64));
    let include: Vec<String> = pkgs
        .iter()
        .map(|p| format!("{}:{}={}", p.name, p.arch, p.version))
        .collect();
    let mut c = Command::new("mmdebstrap");
    c.args([
        "--mode=root",
        "--variant=custom",
        "--format=directory",
        // A new filesystem has lost+found.
        "--skip=check/empty",
    ])
    .arg(format!("--include={}", include.join(",")))
    .arg(
        "--extract-hook=mkdir -p \"$1/usr/sbin\" && chroot \"$1\" dpkg-divert --quiet --local --rename --add \
         /usr/sbin/update-initramfs && printf '#!/bin/sh\\nexit 0\\n' >\"$1/usr/sbin/update-initramfs\" \
         && chmod 0755 \"$1/usr/sbin/update-initramfs\"",
    )
    .arg(
        "--customize-hook=rm -f \"$1/usr/sbin/update-initramfs\" && chroot \"$1\" dpkg-divert \
         --quiet --local --rename --remove /usr/sbin/update-initramfs",
    );
    if let Some(k) = &spec.sources.keyring {
        c.arg(format!("--keyring={}", k.display()));
    }
    if Path::new(EATMYDATA_HOOKS).is_dir() && cmd::have("eatmydata") {
        // The root is thrown away if the build fails: dpkg's fsyncs buy nothing here.
        c.arg(format!("--hook-dir={EATMYDATA_HOOKS}"));
    }
    c.arg(spec.suite).arg(spec.root);
    c.args(lines(spec.sources));
    c.env("LC_ALL", "C.UTF-8");
    cmd::run(&mut c).map_err(|e| Error::Invalid(format!("installing the packages: {e}")))?;
    progress.advance(pkgs.len() as u64, 0);
    progress.finish();
    Ok(())
}

/// mmdebstrap's hook that runs dpkg under eatmydata.
const EATMYDATA_HOOKS: &str = "/usr/share/mmdebstrap/hooks/eatmydata";
