//! Opening the repositories a frontend is given, the same way for the CLI, server and Python.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{default_fetcher, DebianRepo, ReleaseIdentity, RepoIndex, RepoOptions, SourceLine};
use crate::model::{OsInfo, ReportHeader};
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

    /// Opens every repository of the scan's release, the local ones last, for a report with
    /// this header (see [`Sources::for_release`]). Errors name the line that failed.
    pub fn open(
        &self,
        header: &ReportHeader,
        progress: &dyn Progress,
    ) -> Result<Vec<Box<dyn RepoIndex>>> {
        Ok(self.for_release(header, progress)?.1)
    }

    /// The sources of the scan's release, and their repositories opened (the local ones
    /// last). A user may hold the repositories of several releases: those whose Release file
    /// names another release ([`same_release`]) are left out, so that an analysis or a build
    /// never mixes releases. Fails when repositories were given but none is of the scan's
    /// release.
    pub fn for_release(
        &self,
        header: &ReportHeader,
        progress: &dyn Progress,
    ) -> Result<(Sources, Vec<Box<dyn RepoIndex>>)> {
        let mut chosen = self.clone();
        chosen.read_files()?;
        let opened = open_sources(&chosen.lines, &self.options(header), progress)?;
        let ids: Vec<Option<ReleaseIdentity>> = opened.iter().map(|r| r.identity()).collect();
        let keep = same_release(&ids, &header.machine.os);
        let mut repos = Vec::new();
        let (mut lines, mut left_out) = (Vec::new(), Vec::new());
        for ((line, repo), keep) in chosen.lines.iter().zip(opened).zip(keep) {
            if keep {
                lines.push(line.clone());
                repos.push(repo);
            } else {
                left_out.push(line.clone());
            }
        }
        if lines.is_empty() && !left_out.is_empty() {
            return Err(crate::Error::Invalid(format!(
                "no repository is of the scan's release ({} {}): {} {} another release",
                header.machine.os.id.as_deref().unwrap_or("?"),
                header.machine.os.version_codename.as_deref().unwrap_or("?"),
                left_out.join("; "),
                if left_out.len() == 1 {
                    "is of"
                } else {
                    "are of"
                }
            )));
        }
        chosen.lines = lines;
        let local: Vec<String> = chosen
            .indexed_local()
            .map(|d| format!("deb [trusted=yes] {} ./", file_uri(d)))
            .collect();
        repos.extend(open_sources(&local, &self.options(header), progress)?);
        Ok((chosen, repos))
    }
}

/// Which repositories are of the release that `os` (a scan's os-release) names, by their
/// Release files: a repository is of it when its `Codename` (else `Suite`), less any
/// `-updates`/`-security`/`-backports` part, is the scan's `VERSION_CODENAME`. One of the
/// distribution itself (`Origin` is the scan's `ID`) naming another codename is of another
/// release, and so is any other repository naming one of those codenames. A repository with
/// no Release identity, or a scan without a codename, is kept.
pub fn same_release(ids: &[Option<ReleaseIdentity>], os: &OsInfo) -> Vec<bool> {
    let Some(wanted) = os.version_codename.as_deref().map(str::to_ascii_lowercase) else {
        return vec![true; ids.len()];
    };
    let base = |id: &ReleaseIdentity| {
        id.codename
            .as_deref()
            .or(id.suite.as_deref())
            .map(|c| c.split('-').next().unwrap_or(c).to_ascii_lowercase())
    };
    let own = |id: &ReleaseIdentity| match (&id.origin, &os.id) {
        (Some(o), Some(d)) => o.eq_ignore_ascii_case(d),
        _ => false,
    };
    let others: BTreeSet<String> = ids
        .iter()
        .flatten()
        .filter(|id| own(id))
        .filter_map(base)
        .filter(|b| *b != wanted)
        .collect();
    ids.iter()
        .map(|id| {
            let Some(id) = id else { return true };
            match base(id) {
                Some(b) if b == wanted => true,
                Some(b) => !own(id) && !others.contains(&b),
                None => true,
            }
        })
        .collect()
}

/// The directory name of a release's local repository of recreated packages
/// (`debian-bookworm`): packages recreated for one release are never offered to another.
pub fn release_dir_name(os: &OsInfo) -> String {
    let clean = |v: Option<&str>| -> String {
        let v: String = v
            .unwrap_or("unknown")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "._+".contains(*c))
            .collect::<String>()
            .to_ascii_lowercase();
        if v.is_empty() || v.starts_with('.') {
            "unknown".into()
        } else {
            v
        }
    };
    format!(
        "{}-{}",
        clean(os.id.as_deref()),
        clean(os.version_codename.as_deref())
    )
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

    fn saved(name: &str) -> Option<ReleaseIdentity> {
        let path = format!(
            "{}/src/repo/testdata/{name}.InRelease",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).unwrap();
        let text = super::super::release::strip_clearsign(&text).unwrap();
        Some(
            super::super::release::Release::parse(&text)
                .unwrap()
                .identity,
        )
    }

    fn os(id: &str, codename: Option<&str>) -> OsInfo {
        OsInfo {
            id: Some(id.into()),
            version_codename: codename.map(str::to_string),
            ..OsInfo::default()
        }
    }

    #[test]
    fn each_scan_gets_the_repositories_of_its_release() {
        let names = [
            "bullseye",
            "bullseye-security",
            "bookworm",
            "bookworm-updates",
            "bookworm-security",
            "trixie",
            "trixie-security",
        ];
        let third_party = |origin: &str, codename: &str| {
            Some(ReleaseIdentity {
                origin: Some(origin.into()),
                codename: Some(codename.into()),
                ..ReleaseIdentity::default()
            })
        };
        let mut ids: Vec<Option<ReleaseIdentity>> = names.iter().map(|n| saved(n)).collect();
        // A vendor's repository for one release, one that names no Debian release, and a
        // flat repository without a Release file.
        ids.push(third_party("nginx", "bullseye"));
        ids.push(third_party("Google", "cloud-sdk"));
        ids.push(None);
        let kept = |os: &OsInfo| -> Vec<String> {
            let all: Vec<&str> = names
                .iter()
                .copied()
                .chain(["nginx bullseye", "cloud-sdk", "flat"])
                .collect();
            same_release(&ids, os)
                .iter()
                .zip(all)
                .filter(|(k, _)| **k)
                .map(|(_, n)| n.to_string())
                .collect()
        };
        assert_eq!(
            kept(&os("debian", Some("bullseye"))),
            [
                "bullseye",
                "bullseye-security",
                "nginx bullseye",
                "cloud-sdk",
                "flat"
            ]
        );
        assert_eq!(
            kept(&os("debian", Some("bookworm"))),
            [
                "bookworm",
                "bookworm-updates",
                "bookworm-security",
                "cloud-sdk",
                "flat"
            ]
        );
        assert_eq!(
            kept(&os("debian", Some("trixie"))),
            ["trixie", "trixie-security", "cloud-sdk", "flat"]
        );
        // A scan that does not name its release cannot be matched: nothing is left out.
        assert_eq!(kept(&os("debian", None)).len(), ids.len());
    }

    #[test]
    fn release_directories() {
        assert_eq!(
            release_dir_name(&os("debian", Some("bookworm"))),
            "debian-bookworm"
        );
        assert_eq!(release_dir_name(&os("Debian", None)), "debian-unknown");
        assert_eq!(release_dir_name(&os("../x", Some("a/b"))), "unknown-ab");
        assert_eq!(release_dir_name(&OsInfo::default()), "unknown-unknown");
    }

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
