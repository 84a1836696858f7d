//! Dependency check of a template: the exact package set its OS profile and `ospkgs` install,
//! solved over the `Packages` indexes of its repositories.
//!
//! The relations honoured are the ones that decide whether a set of packages can be installed
//! together: Depends and Pre-Depends (alternatives `a | b`, version constraints `<<`, `<=`,
//! `=`, `>=`, `>>`, architecture qualifiers `:any` and `:native`), Conflicts and Breaks, and Provides
//! (virtual packages, versioned provides), with `Multi-Arch` deciding which architectures
//! satisfy what. Recommends and Suggests are not followed, as image builds do not install
//! them. `Essential: yes` packages of the release are always part of the set, as dpkg
//! assumes them.
//!
//! Pinned packages must be available at exactly their version; free ones get the newest
//! version that fits; missing dependencies are added (and listed with the package that needs
//! them). Free packages marked `auto` (dependencies on the source machine) that the
//! repositories no longer carry, or that cannot fit, are dropped with a note rather than
//! failing the check. Anything else that cannot be satisfied fails with
//! [`Error::Unsatisfiable`], one sentence per problem naming the packages and relations.
//!
//! ```no_run
//! use uforge_core::blobstore::LocalBlobStore;
//! use uforge_core::progress::NoProgress;
//! use uforge_core::repo::RepoOptions;
//! use uforge_core::template::{file, solve};
//!
//! let (template, blobs) = file::load("web01".as_ref())?;
//! let universe = solve::PackageUniverse::open(&template.os, &RepoOptions::new("/var/cache/uforge"), &NoProgress)?;
//! let res = solve::check(&template, &universe, &blobs, &solve::CheckOptions::default())?;
//! for p in res.added() {
//!     println!("adds {}", p.key);
//! }
//! # Ok::<(), uforge_core::Error>(())
//! ```

mod explain;
mod provider;
#[cfg(test)]
mod tests;
mod universe;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::BufReader;

use resolvo::{ConditionalRequirement, Problem, SolvableId, Solver, UnsolvableOrCancelled};

pub use universe::PackageUniverse;
pub(crate) use universe::Pkg;

use super::{Content, PackageSpec, Template};
use crate::blobstore::BlobStore;
use crate::repo::{PackageKey, PackageRelations};
use crate::{deb822, Error, Result};
use provider::{Field, Provider, VSet};
use universe::Layers;

/// Why a package is in the resolved set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The template pins it at this version.
    Pinned,
    /// The template lists it without a version: this is the newest that fits.
    Free,
    /// A component brings it as a `.deb` of its own.
    OsPkg,
    /// `Essential: yes` in the repositories, which dpkg assumes installed.
    Essential,
    /// A dependency of this package (`name`) that the template does not list.
    Dependency(String),
}

/// One package of the resolved set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPackage {
    /// The exact package.
    pub key: PackageKey,
    /// Why it is installed.
    pub reason: Reason,
}

/// A template package left out of the resolved set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The template's entry.
    pub package: PackageSpec,
    /// Why it was left out.
    pub why: String,
}

/// The outcome of a successful check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Every package to install, by name and architecture: what an image build installs.
    pub packages: Vec<ResolvedPackage>,
    /// Packages of the template (`auto` ones only) that are left out, and why.
    pub dropped: Vec<Dropped>,
}

impl Resolution {
    /// The packages added that the template does not list: dependencies and essential ones.
    pub fn added(&self) -> impl Iterator<Item = &ResolvedPackage> {
        self.packages
            .iter()
            .filter(|p| matches!(p.reason, Reason::Dependency(_) | Reason::Essential))
    }

    /// The resolved package of this name, if any.
    pub fn get(&self, name: &str) -> Option<&ResolvedPackage> {
        self.packages.iter().find(|p| p.key.name == name)
    }

    /// The exact packages, for an install.
    pub fn keys(&self) -> Vec<PackageKey> {
        self.packages.iter().map(|p| p.key.clone()).collect()
    }
}

/// How a check runs.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Add the release's `Essential: yes` packages the template does not list (default true).
    pub essential: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions { essential: true }
    }
}

/// Resolves the packages of `t` over `universe` (its repositories for its release) and the
/// `.deb`s of its `ospkgs` (read from `blobs`). See the [module](self) documentation.
pub fn check(
    t: &Template,
    universe: &PackageUniverse,
    blobs: &dyn BlobStore,
    opts: &CheckOptions,
) -> Result<Resolution> {
    let label = format!("{} {}", t.name, t.version);
    if universe.native() != t.os.arch {
        return Err(Error::Invalid(format!(
            "template {label} is for {}, the package universe for {}",
            t.os.arch,
            universe.native()
        )));
    }
    let ospkgs = ospkg_packages(t, blobs)?;
    let ospkg_keys: Vec<PackageKey> = ospkgs.iter().map(|p| p.key.clone()).collect();
    let mut listed: HashSet<String> = t.os.pkgs.iter().map(|p| p.name.clone()).collect();
    listed.extend(ospkg_keys.iter().map(|k| k.name.clone()));
    let prov = Provider::new(Layers::new(universe, ospkgs), listed.clone());
    let native = universe.native().to_string();

    let mut problems = Vec::new();
    let mut dropped = Vec::new();
    let mut reqs: Vec<ConditionalRequirement> = Vec::new();
    let mut soft: Vec<(SolvableId, &PackageSpec)> = Vec::new();
    for spec in &t.os.pkgs {
        match root_of(&prov, spec, &native) {
            Root::Hard(set) => reqs.push(set.into()),
            Root::Soft(s) => soft.push((s, spec)),
            Root::Gone(why) if spec.auto && !spec.is_pinned() => dropped.push(Dropped {
                package: spec.clone(),
                why,
            }),
            Root::Gone(why) => problems.push(why),
        }
    }
    for k in &ospkg_keys {
        let Some(i) = prov
            .u
            .named(&k.name)
            .into_iter()
            .find(|&i| prov.pkg(i).key == *k)
        else {
            continue;
        };
        let set = prov
            .pool
            .intern_version_set(prov.slot(i), VSet::Pinned(k.version.clone()));
        reqs.push(set.into());
    }
    let essential: Vec<String> = if opts.essential {
        prov.u
            .essential()
            .into_iter()
            .filter(|n| !listed.contains(*n))
            .map(str::to_string)
            .collect()
    } else {
        Vec::new()
    };
    for name in &essential {
        let r = relation(name);
        reqs.push(prov.dep_set(&native, &r).into());
    }
    if !problems.is_empty() {
        return Err(Error::Unsatisfiable {
            template: label,
            problems,
        });
    }

    let soft_ids: Vec<SolvableId> = soft.iter().map(|(s, _)| *s).collect();
    let mut solver = Solver::new(prov);
    let problem = Problem::new()
        .requirements(reqs)
        .soft_requirements(soft_ids);
    let chosen = match solver.solve(problem) {
        Ok(chosen) => chosen,
        Err(UnsolvableOrCancelled::Unsolvable(conflict)) => {
            return Err(Error::Unsatisfiable {
                template: label,
                problems: explain::explain(&solver, &conflict),
            })
        }
        Err(UnsolvableOrCancelled::Cancelled(_)) => {
            return Err(Error::Invalid(format!(
                "the check of {label} was cancelled"
            )))
        }
    };
    let prov = solver.provider();
    let chosen_set: HashSet<SolvableId> = chosen.iter().copied().collect();
    for (s, spec) in &soft {
        if !chosen_set.contains(s) {
            dropped.push(Dropped {
                package: (*spec).clone(),
                why: format!(
                    "{} cannot be installed with the rest of the packages",
                    prov.show(prov.pkg_of(*s))
                ),
            });
        }
    }
    let real: Vec<u32> = chosen
        .iter()
        .filter(|&&s| prov.is_real(s))
        .map(|&s| prov.pkg_of(s))
        .collect();
    let packages = reasons(prov, &real, t, &ospkg_keys, &essential);
    Ok(Resolution { packages, dropped })
}

/// What one template package asks of the solver.
enum Root {
    /// A requirement.
    Hard(resolvo::VersionSetId),
    /// Install this if it fits (a free `auto` package).
    Soft(SolvableId),
    /// Nothing can satisfy it, and why.
    Gone(String),
}

fn root_of(prov: &Provider<'_>, spec: &PackageSpec, native: &str) -> Root {
    let named = prov.u.named(&spec.name);
    if let Some(v) = &spec.version {
        // A pinned `all` package, or one whose architecture is not given, may be either.
        let arch_fits = |a: &str| match spec.arch.as_deref() {
            Some(want) => a == want,
            None => a == native || a == "all",
        };
        let found = named.iter().copied().find(|&i| {
            let k = &prov.pkg(i).key;
            &k.version == v && arch_fits(&k.arch)
        });
        return match found {
            Some(i) => Root::Hard(
                prov.pool
                    .intern_version_set(prov.slot(i), VSet::Pinned(v.clone())),
            ),
            None => Root::Gone(pinned_missing(prov, spec, &named)),
        };
    }
    let qual = spec.arch.as_deref().filter(|a| *a != native && *a != "all");
    let fits: Vec<u32> = prov
        .answering(&spec.name)
        .into_iter()
        .map(|(i, _)| i)
        .filter(|&i| prov.arch_ok(native, qual, i))
        .collect();
    if fits.is_empty() {
        return Root::Gone(format!(
            "no repository has package {}{}",
            spec.name,
            qual.map(|q| format!(" for {q}")).unwrap_or_default()
        ));
    }
    if spec.auto {
        let newest = named
            .iter()
            .copied()
            .filter(|&i| prov.arch_ok(native, qual, i))
            .max_by(|&a, &b| {
                prov.version(&prov.pkg(a).key.version)
                    .cmp(&prov.version(&prov.pkg(b).key.version))
            });
        if let Some(i) = newest {
            return Root::Soft(prov.real(i));
        }
    }
    let mut r = relation(&spec.name);
    r.archqual = qual.map(str::to_string);
    Root::Hard(prov.dep_set(native, &r))
}

fn pinned_missing(prov: &Provider<'_>, spec: &PackageSpec, named: &[u32]) -> String {
    let mut have: Vec<String> = named
        .iter()
        .map(|&i| {
            let k = &prov.pkg(i).key;
            format!("{} ({})", k.version, k.arch)
        })
        .collect();
    have.sort();
    have.dedup();
    let at = format!(
        "{} ({})",
        spec.version.as_deref().unwrap_or(""),
        spec.arch.as_deref().unwrap_or(prov.u.native())
    );
    if have.is_empty() {
        format!(
            "{} is pinned to {at}, but no repository has package {}",
            spec.name, spec.name
        )
    } else {
        format!(
            "{} is pinned to {at}, which no repository has; they have {}",
            spec.name,
            have.join(", ")
        )
    }
}

/// The packages of `ospkgs`, read from their `.deb`s' control files.
fn ospkg_packages(t: &Template, blobs: &dyn BlobStore) -> Result<Vec<Pkg>> {
    let mut out = Vec::new();
    for c in &t.software {
        for p in &c.ospkgs {
            let what = format!(
                "bundle {}: ospkg {} {} ({})",
                c.name, p.name, p.version, p.arch
            );
            let Content::Blob { sha256, .. } = &p.deb else {
                return Err(Error::Invalid(format!(
                    "{what}: its .deb is given by source: store the template first"
                )));
            };
            let control = crate::repo::deb::read_control(BufReader::new(blobs.open(sha256)?))
                .map_err(|m| Error::Invalid(format!("{what}: {m}")))?;
            let text = String::from_utf8_lossy(&control);
            let para = deb822::parse(&text).into_iter().next().unwrap_or_default();
            let key = PackageKey::new(
                para.get("Package").unwrap_or(""),
                para.get("Version").unwrap_or(""),
                para.get("Architecture").unwrap_or(""),
            );
            if key != PackageKey::new(&p.name, &p.version, &p.arch) {
                return Err(Error::Invalid(format!("{what}: the .deb is package {key}")));
            }
            out.push(Pkg {
                key,
                rel: PackageRelations::of(&para),
            });
        }
    }
    Ok(out)
}

/// Why each chosen package is there: the template's entries, then a walk of the
/// dependencies from them naming, for every package added, the first package that needs it.
fn reasons(
    prov: &Provider<'_>,
    chosen: &[u32],
    t: &Template,
    ospkgs: &[PackageKey],
    essential: &[String],
) -> Vec<ResolvedPackage> {
    let specs: HashMap<&str, &PackageSpec> =
        t.os.pkgs.iter().map(|p| (p.name.as_str(), p)).collect();
    let chosen_set: HashSet<u32> = chosen.iter().copied().collect();
    let mut reason: HashMap<u32, Reason> = HashMap::new();
    let mut queue = VecDeque::new();
    for &i in chosen {
        let k = &prov.pkg(i).key;
        let r = if ospkgs.contains(k) {
            Reason::OsPkg
        } else if let Some(s) = specs.get(k.name.as_str()) {
            if s.is_pinned() {
                Reason::Pinned
            } else {
                Reason::Free
            }
        } else if essential.contains(&k.name) {
            Reason::Essential
        } else {
            continue;
        };
        reason.insert(i, r);
        queue.push_back(i);
    }
    while let Some(x) = queue.pop_front() {
        let from = prov.u.effective_arch(&prov.pkg(x).key.arch).to_string();
        for field in [Field::PreDepends, Field::Depends] {
            for alts in prov.field(x, field).unwrap_or_default() {
                let met = alts.iter().find_map(|r| {
                    prov.answering(&r.name).into_iter().find_map(|(p, v)| {
                        (chosen_set.contains(&p) && prov.satisfies(&from, r, p, v.as_deref()))
                            .then_some(p)
                    })
                });
                if let Some(p) = met {
                    if let std::collections::hash_map::Entry::Vacant(e) = reason.entry(p) {
                        e.insert(Reason::Dependency(prov.pkg(x).key.name.clone()));
                        queue.push_back(p);
                    }
                }
            }
        }
    }
    let mut out: Vec<ResolvedPackage> = chosen
        .iter()
        .map(|&i| ResolvedPackage {
            key: prov.pkg(i).key.clone(),
            reason: reason
                .remove(&i)
                .unwrap_or_else(|| Reason::Dependency("the package set".into())),
        })
        .collect();
    out.sort_by(|a, b| (&a.key.name, &a.key.arch).cmp(&(&b.key.name, &b.key.arch)));
    out
}

/// An unversioned relation on a name.
fn relation(name: &str) -> debian_control::lossy::Relation {
    let mut r = debian_control::lossy::Relation::new();
    r.name = name.to_string();
    r
}
