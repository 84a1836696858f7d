//! Opening the repositories a frontend is given, the same way for the CLI, server and Python.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{default_fetcher, DebianRepo, RepoIndex, RepoOptions, SourceLine};
use crate::model::ReportHeader;
use crate::progress::Progress;
use crate::Result;

/// The architectures whose indexes a report needs: the machine's package architecture, every
/// other one its packages use (multiarch), and `all`.
pub fn archs_of(header: &ReportHeader) -> Vec<String> {
    let mut archs: BTreeSet<String> = header.packages.iter().map(|p| p.arch.clone()).collect();
    if let Some(a) = &header.machine.package_arch {
        archs.insert(a.clone());
    }
    archs.insert("all".into());
    archs.into_iter().collect()
}

/// Opens every repository named by a sources.list line, sharing one fetcher. Errors name the
/// line that failed.
pub fn open_sources(
    lines: &[String],
    opts: &RepoOptions,
    progress: &dyn Progress,
) -> Result<Vec<Box<dyn RepoIndex>>> {
    let fetcher: Arc<dyn super::Fetcher> = Arc::from(default_fetcher());
    let mut out: Vec<Box<dyn RepoIndex>> = Vec::new();
    for line in lines {
        progress.phase("indexes", None);
        let source = SourceLine::parse(line)?;
        out.push(Box::new(DebianRepo::open(&source, opts, fetcher.clone())?));
    }
    Ok(out)
}

/// Where repository indexes and packages are cached by default: `$XDG_CACHE_HOME/uforge`, else
/// `/var/cache/uforge` for root, else `~/.cache/uforge`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        return Path::new(&x).join("uforge");
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/cache/uforge");
    }
    std::env::var_os("HOME")
        .map(|h| Path::new(&h).join(".cache/uforge"))
        .unwrap_or_else(|| PathBuf::from(".uforge-cache"))
}
