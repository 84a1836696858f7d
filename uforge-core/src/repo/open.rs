//! Opening the repositories a frontend is given, the same way for the CLI, server and Python.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{default_fetcher, DebianRepo, RepoIndex, RepoOptions, SourceLine};
use crate::model::ReportHeader;
use crate::progress::Progress;
use crate::Result;

/// Where the packages of a machine come from: what an analysis checks a report against and
/// what a build installs from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct Sources {
    /// A package repository in sources.list syntax: `deb [options] URI SUITE [COMPONENT...]`,
    /// or `deb [trusted=yes] file:/path ./` for a flat local repository. Repeat for several.
    #[cfg_attr(
        feature = "clap",
        arg(long = "repo", value_name = "LINE", required_unless_present = "files")
    )]
    pub lines: Vec<String>,
    /// A sources file, one-line (`sources.list`) or deb822 (`.sources`, as in
    /// `/etc/apt/sources.list.d/debian.sources`); its repositories are used as if given with
    /// `--repo`. Repeat for several.
    #[cfg_attr(feature = "clap", arg(long = "repo-file", value_name = "FILE"))]
    pub files: Vec<PathBuf>,
    /// Flat repositories of recreated packages (a `Packages` index beside the `.deb` files),
    /// trusted; one without an index yet is passed over.
    #[cfg_attr(feature = "clap", arg(skip))]
    pub local: Vec<PathBuf>,
    /// Keyring that signs the repositories (default: the Debian archive keyring).
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub keyring: Option<PathBuf>,
    /// Where repository indexes and packages are cached.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "DIR", env = "UFORGE_CACHE_DIR")
    )]
    pub cache_dir: Option<PathBuf>,
}

impl Sources {
    /// The repositories of these sources.list lines, with the default keyring and cache.
    pub fn new(lines: Vec<String>) -> Self {
        Sources {
            lines,
            ..Sources::default()
        }
    }

    /// The cache directory: the one given, else [`default_cache_dir`].
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(default_cache_dir)
    }

    /// Reads the sources files into one-line entries appended to `lines` (inline `Signed-By`
    /// keys are written under the cache directory), leaving `files` empty. Frontends call it
    /// once, before the sources are used.
    pub fn read_files(&mut self) -> Result<()> {
        let keys = self.cache_dir().join("keys");
        for f in std::mem::take(&mut self.files) {
            self.lines.extend(super::read_sources_file(&f, &keys)?);
        }
        Ok(())
    }

    /// The options repositories are opened with for a report with this header.
    pub fn options(&self, header: &ReportHeader) -> RepoOptions {
        RepoOptions {
            cache_dir: self.cache_dir(),
            keyring: self.keyring.clone(),
            archs: archs_of(header),
        }
    }

    /// The local repositories that have an index.
    pub fn indexed_local(&self) -> impl Iterator<Item = &Path> {
        self.local
            .iter()
            .map(PathBuf::as_path)
            .filter(|d| d.join("Packages").is_file())
    }

    /// Opens every repository, the local ones last, for a report with this header. Errors name
    /// the line that failed.
    pub fn open(
        &self,
        header: &ReportHeader,
        progress: &dyn Progress,
    ) -> Result<Vec<Box<dyn RepoIndex>>> {
        let mut resolved = self.clone();
        resolved.read_files()?;
        let mut lines = resolved.lines;
        lines.extend(
            self.indexed_local()
                .map(|d| format!("deb [trusted=yes] {} ./", file_uri(d))),
        );
        open_sources(&lines, &self.options(header), progress)
    }
}

/// A `file:` URI for a local directory, escaped the way sources.list lines are read back.
pub fn file_uri(dir: &Path) -> String {
    let mut out = String::from("file:");
    for &b in dir.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-+~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_escape_what_splits_a_line() {
        assert_eq!(file_uri(Path::new("/srv/a b/c%d")), "file:/srv/a%20b/c%25d");
        let line = format!("deb [trusted=yes] {} ./", file_uri(Path::new("/x y")));
        let l = SourceLine::parse(&line).unwrap();
        assert_eq!(
            super::super::FileFetcher::path_of(&format!("{}/Packages", l.uri)).unwrap(),
            Path::new("/x y/Packages")
        );
    }
}
