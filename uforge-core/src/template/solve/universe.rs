//! The packages a template can be installed from, indexed by name and by what they provide.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use debian_control::lossy::Relations;

use crate::progress::Progress;
use crate::repo::{
    default_fetcher, DebianRepo, Fetcher, PackageKey, PackageRecord, PackageRelations, RepoOptions,
    SourceLine,
};
use crate::template::OsProfile;
use crate::{Error, Result};

/// One installable package.
#[derive(Debug, Clone)]
pub(crate) struct Pkg {
    pub key: PackageKey,
    pub rel: PackageRelations,
}

/// Every package of a release's repositories for the wanted architectures, loaded once and
/// shared by any number of checks.
#[derive(Debug, Clone, Default)]
pub struct PackageUniverse {
    native: String,
    pub(crate) pkgs: Vec<Pkg>,
    by_name: HashMap<String, Vec<u32>>,
    /// Virtual (and real) names to the packages providing them, with the provided version.
    provided: HashMap<String, Vec<(u32, Option<String>)>>,
    /// Architectures of the packages held (besides `all`).
    archs: BTreeSet<String>,
    sources: Vec<String>,
}

impl PackageUniverse {
    /// The packages of `records`, for a machine whose dpkg architecture is `native`. When
    /// several records have the same name, version and architecture the first is kept.
    pub fn new(native: &str, records: impl IntoIterator<Item = PackageRecord>) -> Self {
        let mut u = PackageUniverse {
            native: native.to_string(),
            ..Default::default()
        };
        let mut seen = std::collections::HashSet::new();
        for r in records {
            if seen.insert(r.key.clone()) {
                u.push(Pkg {
                    key: r.key,
                    rel: r.relations,
                });
            }
        }
        u
    }

    /// Opens the repositories of `os` for its release ([`OsProfile::repository_lines`]) and
    /// architecture (plus `all` and the foreign architectures its packages name), with the
    /// cache and keyring of `opts`. Errors name the line that failed.
    pub fn open(os: &OsProfile, opts: &RepoOptions, progress: &dyn Progress) -> Result<Self> {
        let mut archs: BTreeSet<String> = [os.arch.clone(), "all".to_string()].into();
        archs.extend(os.pkgs.iter().filter_map(|p| p.arch.clone()));
        let opts = RepoOptions {
            archs: archs.into_iter().collect(),
            ..opts.clone()
        };
        let lines = os.repository_lines();
        if lines.is_empty() {
            return Err(Error::Invalid(format!(
                "os: the template names no repository to install {} from",
                os.release
            )));
        }
        let fetcher: Arc<dyn Fetcher> = Arc::from(default_fetcher());
        let mut repos = Vec::new();
        for line in &lines {
            progress.phase("indexes", None);
            repos.push(DebianRepo::open(
                &SourceLine::parse(line)?,
                &opts,
                fetcher.clone(),
            )?);
        }
        Ok(Self::from_repos(&os.arch, &repos))
    }

    /// The packages of opened repositories, the first repository winning for a package
    /// several carry.
    pub fn from_repos(native: &str, repos: &[DebianRepo]) -> Self {
        let mut records: Vec<PackageRecord> = Vec::new();
        for r in repos {
            // Sorted so that which duplicate is kept does not depend on hashing.
            let mut these: Vec<PackageRecord> = r.records().cloned().collect();
            these.sort_by(|a, b| a.key.cmp(&b.key));
            records.extend(these);
        }
        let mut u = Self::new(native, records);
        u.sources = repos.iter().map(crate::repo::RepoIndex::name).collect();
        u
    }

    fn push(&mut self, p: Pkg) {
        let i = self.pkgs.len() as u32;
        self.by_name.entry(p.key.name.clone()).or_default().push(i);
        if p.key.arch != "all" {
            self.archs.insert(p.key.arch.clone());
        }
        if let Some(text) = &p.rel.provides {
            // A malformed Provides provides nothing: the package stays installable by name.
            if let Ok(rels) = text.parse::<Relations>() {
                for alt in rels.0 {
                    for r in alt {
                        let v = r.version.map(|(_, v)| v.to_string());
                        self.provided.entry(r.name).or_default().push((i, v));
                    }
                }
            }
        }
        self.pkgs.push(p);
    }

    /// Adds packages that are not in any repository (a template's `ospkgs`).
    pub(crate) fn extend(&mut self, pkgs: impl IntoIterator<Item = Pkg>) {
        for p in pkgs {
            self.push(p);
        }
    }

    /// Every package, for tests that check results independently.
    #[cfg(test)]
    pub(crate) fn pkgs_for_tests(&self) -> &[Pkg] {
        &self.pkgs
    }

    /// The machine architecture.
    pub fn native(&self) -> &str {
        &self.native
    }

    /// How many packages the universe holds.
    pub fn len(&self) -> usize {
        self.pkgs.len()
    }

    /// Whether it holds no package.
    pub fn is_empty(&self) -> bool {
        self.pkgs.is_empty()
    }

    /// The repositories read (sources lines), for messages.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// Whether packages of more than one architecture (besides `all`) are held.
    pub(crate) fn multiarch(&self) -> bool {
        self.archs.len() > 1
    }

    /// Packages with this name, of any architecture.
    pub(crate) fn named(&self, name: &str) -> &[u32] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// Packages providing this name, with the version provided.
    pub(crate) fn providers(&self, name: &str) -> &[(u32, Option<String>)] {
        self.provided.get(name).map_or(&[], Vec::as_slice)
    }

    /// The architecture a package counts as for dependencies: `all` is the native one.
    pub(crate) fn effective_arch<'a>(&'a self, arch: &'a str) -> &'a str {
        if arch == "all" {
            &self.native
        } else {
            arch
        }
    }

    /// The packages dpkg treats as always installed (`Essential: yes`) for the native
    /// architecture, by name.
    pub(crate) fn essential(&self) -> BTreeSet<&str> {
        self.pkgs
            .iter()
            .filter(|p| p.rel.essential && self.effective_arch(&p.key.arch) == self.native)
            .map(|p| p.key.name.as_str())
            .collect()
    }
}

/// A shared universe with a check's own packages on top (a template's `ospkgs`), without
/// copying the shared one. Indexes below the base's length are the base's.
pub(crate) struct Layers<'a> {
    base: &'a PackageUniverse,
    extra: PackageUniverse,
}

impl<'a> Layers<'a> {
    pub fn new(base: &'a PackageUniverse, extra: Vec<Pkg>) -> Self {
        let mut top = PackageUniverse {
            native: base.native.clone(),
            ..Default::default()
        };
        top.extend(extra);
        Layers { base, extra: top }
    }

    fn off(&self) -> u32 {
        self.base.pkgs.len() as u32
    }

    pub fn pkg(&self, i: u32) -> &Pkg {
        match i.checked_sub(self.off()) {
            Some(j) => &self.extra.pkgs[j as usize],
            None => &self.base.pkgs[i as usize],
        }
    }

    /// Packages with this name, of any architecture.
    pub fn named(&self, name: &str) -> Vec<u32> {
        let off = self.off();
        let mut out = self.base.named(name).to_vec();
        out.extend(self.extra.named(name).iter().map(|i| i + off));
        out
    }

    /// Packages providing this name, with the version provided.
    pub fn providers(&self, name: &str) -> Vec<(u32, Option<String>)> {
        let off = self.off();
        let mut out = self.base.providers(name).to_vec();
        out.extend(
            self.extra
                .providers(name)
                .iter()
                .map(|(i, v)| (i + off, v.clone())),
        );
        out
    }

    pub fn native(&self) -> &str {
        &self.base.native
    }

    pub fn effective_arch<'s>(&'s self, arch: &'s str) -> &'s str {
        self.base.effective_arch(arch)
    }

    pub fn multiarch(&self) -> bool {
        self.base.multiarch()
            || self
                .extra
                .archs
                .iter()
                .any(|a| !self.base.archs.contains(a))
    }

    pub fn essential(&self) -> BTreeSet<&str> {
        let mut e = self.base.essential();
        e.extend(self.extra.essential());
        e
    }
}
