//! Debian's relations as a resolvo problem.
//!
//! dpkg allows one instance of a package name (per architecture for `Multi-Arch: same`), but
//! a dependency on a name is satisfied by any package providing it. So there are two kinds of
//! names: a package *slot* (`Pkg`), whose candidates are the real versions of that package,
//! at most one of which is installed; and a *capability* (`Cap`), whose candidates are
//! provider solvables, one for every version of a package with that name and one for every
//! package that `Provides` it, any number of which may be chosen. A provider requires exactly
//! its real package. Depends and Pre-Depends are requirements on capabilities (`a | b` a
//! union); Conflicts and Breaks are constraints on the slots of every package they match, by
//! name or through Provides, never the package itself.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use debian_control::lossy::{Relation, Relations};
use debian_control::relations::VersionConstraint;
use debversion::Version;
use resolvo::utils::{Pool, VersionSet};
use resolvo::{
    Candidates, Condition, ConditionId, ConditionalRequirement, Dependencies, DependencyProvider,
    HintDependenciesAvailable, Interner, KnownDependencies, NameId, Requirement, SolvableId,
    SolverCache, StringId, VersionSetId, VersionSetUnionId,
};

use super::universe::{Layers, Pkg};

/// A name the solver knows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum SName {
    /// The slot of a real package of one (effective) architecture.
    Pkg { name: String, arch: String },
    /// What a dependency names: a package or a virtual package.
    Cap(String),
}

impl fmt::Display for SName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SName::Pkg { name, .. } | SName::Cap(name) => f.write_str(name),
        }
    }
}

/// What a solvable stands for.
#[derive(Debug, Clone)]
pub(crate) enum Rec {
    /// A real package (index into the universe).
    Real(u32),
    /// A package standing for a capability, with the version it provides it at.
    Provider { pkg: u32, version: Option<String> },
}

/// How a solvable is shown; resolvo needs `Display` on records, the universe is not at hand
/// there, so the label is computed once.
#[derive(Debug, Clone)]
pub(crate) struct Labelled {
    pub rec: Rec,
    label: String,
}

impl fmt::Display for Labelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

/// Which relation field a constraint or requirement came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Field {
    PreDepends,
    Depends,
    Conflicts,
    Breaks,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::PreDepends => "Pre-Depends",
            Field::Depends => "Depends",
            Field::Conflicts => "Conflicts",
            Field::Breaks => "Breaks",
        }
    }
}

/// A set of solvables of one name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum VSet {
    /// One relation of a Depends or Pre-Depends field (or a template package): providers of
    /// the capability whose package the architecture rules allow and whose (provided)
    /// version meets the constraint.
    Dep {
        from_arch: String,
        qual: Option<String>,
        constraint: Option<(VersionConstraint, String)>,
        text: String,
    },
    /// Exactly this solvable.
    Exact(SolvableId),
    /// The real versions equal to this one (a pinned package).
    Pinned(String),
    /// Every solvable but these: what a Conflicts or Breaks relation of `owner` leaves.
    Avoid {
        forbidden: Vec<SolvableId>,
        owner: u32,
        field: Field,
        relation: String,
    },
}

impl VersionSet for VSet {
    type V = Labelled;
}

impl fmt::Display for VSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VSet::Dep { text, .. } => f.write_str(text),
            VSet::Exact(_) => f.write_str("that exact package"),
            VSet::Pinned(v) => write!(f, "= {v}"),
            VSet::Avoid {
                field, relation, ..
            } => write!(f, "not matching {}: {relation}", field.name()),
        }
    }
}

/// The resolvo view of a universe for one check.
pub(crate) struct Provider<'a> {
    pub u: Layers<'a>,
    pub pool: Pool<VSet, SName>,
    real: RefCell<HashMap<u32, SolvableId>>,
    versions: RefCell<HashMap<String, Option<Version>>>,
    /// Names the template lists: preferred when a dependency has a choice.
    wanted: HashSet<String>,
    no_deps: StringId,
}

impl<'a> Provider<'a> {
    pub fn new(u: Layers<'a>, wanted: HashSet<String>) -> Self {
        let pool = Pool::new();
        let no_deps = pool.intern_string("its relation fields cannot be parsed");
        Provider {
            u,
            pool,
            real: RefCell::default(),
            versions: RefCell::default(),
            wanted,
            no_deps,
        }
    }

    pub fn pkg(&self, i: u32) -> &Pkg {
        self.u.pkg(i)
    }

    pub fn record(&self, s: SolvableId) -> &Rec {
        &self.pool.resolve_solvable(s).record.rec
    }

    /// The universe index of the real package a solvable stands for.
    pub fn pkg_of(&self, s: SolvableId) -> u32 {
        match self.record(s) {
            Rec::Real(i) | Rec::Provider { pkg: i, .. } => *i,
        }
    }

    pub fn is_real(&self, s: SolvableId) -> bool {
        matches!(self.record(s), Rec::Real(_))
    }

    /// `name version (arch)` of a package, as messages name it.
    pub fn show(&self, i: u32) -> String {
        let k = &self.pkg(i).key;
        format!("{} {} ({})", k.name, k.version, k.arch)
    }

    pub fn slot(&self, i: u32) -> NameId {
        let k = &self.pkg(i).key;
        self.pool.intern_package_name(SName::Pkg {
            name: k.name.clone(),
            arch: self.u.effective_arch(&k.arch).to_string(),
        })
    }

    pub fn cap(&self, name: &str) -> NameId {
        self.pool.intern_package_name(SName::Cap(name.to_string()))
    }

    /// The solvable of a real package, made on first use.
    pub fn real(&self, i: u32) -> SolvableId {
        if let Some(s) = self.real.borrow().get(&i) {
            return *s;
        }
        let s = self.pool.intern_solvable(
            self.slot(i),
            Labelled {
                rec: Rec::Real(i),
                label: self.show(i),
            },
        );
        self.real.borrow_mut().insert(i, s);
        s
    }

    pub fn version(&self, v: &str) -> Option<Version> {
        if let Some(p) = self.versions.borrow().get(v) {
            return p.clone();
        }
        let parsed = v.parse::<Version>().ok();
        self.versions
            .borrow_mut()
            .insert(v.to_string(), parsed.clone());
        parsed
    }

    /// Whether a relation from a package of (effective) architecture `from` with qualifier
    /// `qual` may be satisfied by package `i` (or what it provides), by the multiarch rules.
    pub fn arch_ok(&self, from: &str, qual: Option<&str>, i: u32) -> bool {
        let p = self.pkg(i);
        let arch = self.u.effective_arch(&p.key.arch);
        let ma = p.rel.multi_arch.as_deref();
        match qual {
            None => arch == from || ma == Some("foreign"),
            Some("any") => arch == from || matches!(ma, Some("foreign" | "allowed")),
            Some("native") => arch == self.u.native(),
            Some(a) => arch == a,
        }
    }

    /// Whether a version meets a constraint; an unversioned Provides meets none.
    pub fn version_ok(
        &self,
        constraint: Option<&(VersionConstraint, String)>,
        have: Option<&str>,
    ) -> bool {
        let Some((op, want)) = constraint else {
            return true;
        };
        let (Some(have), Some(want)) = (have.and_then(|h| self.version(h)), self.version(want))
        else {
            return false;
        };
        match op {
            VersionConstraint::LessThan => have < want,
            VersionConstraint::LessThanEqual => have <= want,
            VersionConstraint::Equal => have == want,
            VersionConstraint::GreaterThanEqual => have >= want,
            VersionConstraint::GreaterThan => have > want,
        }
    }

    /// The version set of one relation of package `from` (effective architecture).
    pub fn dep_set(&self, from_arch: &str, r: &Relation) -> VersionSetId {
        let constraint = r
            .version
            .as_ref()
            .map(|(op, v)| (op.clone(), v.to_string()));
        self.pool.intern_version_set(
            self.cap(&r.name),
            VSet::Dep {
                from_arch: from_arch.to_string(),
                qual: r.archqual.clone(),
                constraint,
                text: r.to_string(),
            },
        )
    }

    /// The requirement of one Depends entry (`a | b (>= 2)`).
    pub fn requirement(&self, from_arch: &str, alts: &[Relation]) -> Option<Requirement> {
        let mut sets = alts.iter().map(|r| self.dep_set(from_arch, r));
        let first = sets.next()?;
        let rest: Vec<VersionSetId> = sets.collect();
        Some(if rest.is_empty() {
            Requirement::Single(first)
        } else {
            Requirement::Union(self.pool.intern_version_set_union(first, rest.into_iter()))
        })
    }

    /// Whether a chosen provider `(package, provided version)` meets relation `r` of a
    /// package of architecture `from`.
    pub fn satisfies(&self, from: &str, r: &Relation, pkg: u32, version: Option<&str>) -> bool {
        let constraint = r
            .version
            .as_ref()
            .map(|(op, v)| (op.clone(), v.to_string()));
        self.arch_ok(from, r.archqual.as_deref(), pkg)
            && self.version_ok(constraint.as_ref(), version)
    }

    /// Every (package, version it answers to) that relation name `name` can be met by.
    pub fn answering(&self, name: &str) -> Vec<(u32, Option<String>)> {
        let mut out: Vec<(u32, Option<String>)> = self
            .u
            .named(name)
            .into_iter()
            .map(|i| (i, Some(self.pkg(i).key.version.clone())))
            .collect();
        out.extend(self.u.providers(name));
        out
    }

    /// The packages a Conflicts or Breaks relation of package `owner` matches: by name or
    /// through Provides, any architecture, never `owner`'s own name.
    fn conflict_targets(&self, owner: u32, r: &Relation) -> Vec<u32> {
        let own = &self.pkg(owner).key.name;
        let constraint = r
            .version
            .as_ref()
            .map(|(op, v)| (op.clone(), v.to_string()));
        let mut out: Vec<u32> = self
            .answering(&r.name)
            .into_iter()
            .filter(|(i, v)| {
                &self.pkg(*i).key.name != own && self.version_ok(constraint.as_ref(), v.as_deref())
            })
            .map(|(i, _)| i)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Parses a relation field of package `i`.
    pub fn field(&self, i: u32, field: Field) -> Result<Vec<Vec<Relation>>, String> {
        let rel = &self.pkg(i).rel;
        let text = match field {
            Field::PreDepends => &rel.pre_depends,
            Field::Depends => &rel.depends,
            Field::Conflicts => &rel.conflicts,
            Field::Breaks => &rel.breaks,
        };
        match text {
            None => Ok(Vec::new()),
            Some(t) => t
                .parse::<Relations>()
                .map(|r| r.0)
                .map_err(|e| format!("{} of {}: {e}", field.name(), self.show(i))),
        }
    }

    fn dependencies_of(&self, i: u32) -> Option<KnownDependencies> {
        let from = self.u.effective_arch(&self.pkg(i).key.arch).to_string();
        let mut deps = KnownDependencies::default();
        for field in [Field::PreDepends, Field::Depends] {
            for alts in self.field(i, field).ok()? {
                if let Some(req) = self.requirement(&from, &alts) {
                    deps.requirements.push(ConditionalRequirement::from(req));
                }
            }
        }
        for field in [Field::Conflicts, Field::Breaks] {
            for alts in self.field(i, field).ok()? {
                for r in alts {
                    let mut by_slot: BTreeMap<u32, Vec<SolvableId>> = BTreeMap::new();
                    for t in self.conflict_targets(i, &r) {
                        by_slot
                            .entry(self.slot(t).into_raw())
                            .or_default()
                            .push(self.real(t));
                    }
                    self.avoid(by_slot, i, field, &r.to_string(), &mut deps);
                }
            }
        }
        if self.u.multiarch() {
            self.exclusive_across_archs(i, &mut deps);
        }
        Some(deps)
    }

    /// dpkg installs one instance of a name unless every instance is `Multi-Arch: same`.
    fn exclusive_across_archs(&self, i: u32, deps: &mut KnownDependencies) {
        let p = self.pkg(i);
        let same = |j: u32| self.pkg(j).rel.multi_arch.as_deref() == Some("same");
        let mine = self.slot(i);
        let mut by_slot: BTreeMap<u32, Vec<SolvableId>> = BTreeMap::new();
        for j in self.u.named(&p.key.name) {
            let slot = self.slot(j);
            if slot != mine && !(same(i) && same(j)) {
                by_slot
                    .entry(slot.into_raw())
                    .or_default()
                    .push(self.real(j));
            }
        }
        let relation = format!(
            "{} of another architecture (not Multi-Arch: same)",
            p.key.name
        );
        self.avoid(by_slot, i, Field::Conflicts, &relation, deps);
    }

    /// Constraints that keep the solvables of each slot of `by_slot` out, because relation
    /// `field: relation` of package `owner` excludes them.
    fn avoid(
        &self,
        by_slot: BTreeMap<u32, Vec<SolvableId>>,
        owner: u32,
        field: Field,
        relation: &str,
        deps: &mut KnownDependencies,
    ) {
        for (slot, mut forbidden) in by_slot {
            forbidden.sort();
            deps.constrains.push(self.pool.intern_version_set(
                NameId::from_raw(slot),
                VSet::Avoid {
                    forbidden,
                    owner,
                    field,
                    relation: relation.to_string(),
                },
            ));
        }
    }

    fn matches(&self, s: SolvableId, set: &VSet) -> bool {
        match set {
            VSet::Exact(e) => s == *e,
            VSet::Avoid { forbidden, .. } => forbidden.binary_search(&s).is_err(),
            VSet::Pinned(v) => match self.record(s) {
                Rec::Real(i) => &self.pkg(*i).key.version == v,
                Rec::Provider { .. } => false,
            },
            VSet::Dep {
                from_arch,
                qual,
                constraint,
                ..
            } => match self.record(s) {
                Rec::Provider { pkg, version } => {
                    self.arch_ok(from_arch, qual.as_deref(), *pkg)
                        && self.version_ok(constraint.as_ref(), version.as_deref())
                }
                Rec::Real(_) => false,
            },
        }
    }

    /// The sort key of a candidate: what the template lists first, then the package of that
    /// very name before packages providing it, then the newest version.
    fn preference(
        &self,
        s: SolvableId,
    ) -> (bool, bool, std::cmp::Reverse<Option<Version>>, String) {
        let i = self.pkg_of(s);
        let k = &self.pkg(i).key;
        let name = self
            .pool
            .resolve_package_name(self.pool.resolve_solvable(s).name);
        let by_name = match name {
            SName::Cap(c) => c == &k.name,
            SName::Pkg { .. } => true,
        };
        (
            !self.wanted.contains(&k.name),
            !by_name,
            std::cmp::Reverse(self.version(&k.version)),
            k.name.clone(),
        )
    }
}

impl Interner for Provider<'_> {
    type NameId = NameId;
    type SolvableId = SolvableId;

    fn display_solvable(&self, solvable: SolvableId) -> impl fmt::Display + '_ {
        self.pool.resolve_solvable(solvable).record.to_string()
    }

    fn display_name(&self, name: NameId) -> impl fmt::Display + '_ {
        self.pool.resolve_package_name(name).to_string()
    }

    fn display_version_set(&self, version_set: VersionSetId) -> impl fmt::Display + '_ {
        self.pool.resolve_version_set(version_set).to_string()
    }

    fn display_string(&self, string_id: StringId) -> impl fmt::Display + '_ {
        self.pool.resolve_string(string_id).to_string()
    }

    fn version_set_name(&self, version_set: VersionSetId) -> NameId {
        self.pool.resolve_version_set_package_name(version_set)
    }

    fn solvable_name(&self, solvable: SolvableId) -> NameId {
        self.pool.resolve_solvable(solvable).name
    }

    fn version_sets_in_union(
        &self,
        version_set_union: VersionSetUnionId,
    ) -> impl Iterator<Item = VersionSetId> {
        self.pool.resolve_version_set_union(version_set_union)
    }

    fn resolve_condition(&self, condition: ConditionId) -> Condition {
        self.pool.resolve_condition(condition).clone()
    }
}

impl DependencyProvider for Provider<'_> {
    async fn filter_candidates(
        &self,
        candidates: &[SolvableId],
        version_set: VersionSetId,
        inverse: bool,
    ) -> Vec<SolvableId> {
        let set = self.pool.resolve_version_set(version_set);
        candidates
            .iter()
            .copied()
            .filter(|&s| self.matches(s, set) != inverse)
            .collect()
    }

    async fn get_candidates(&self, name: NameId) -> Option<Candidates> {
        let candidates: Vec<SolvableId> = match self.pool.resolve_package_name(name).clone() {
            SName::Pkg { name: n, arch } => self
                .u
                .named(&n)
                .into_iter()
                .filter(|&i| self.u.effective_arch(&self.pkg(i).key.arch) == arch)
                .map(|i| self.real(i))
                .collect(),
            SName::Cap(n) => self
                .answering(&n)
                .into_iter()
                .map(|(pkg, version)| {
                    let label = match &version {
                        Some(v) if self.pkg(pkg).key.name != n => {
                            format!("{n} {v} (provided by {})", self.show(pkg))
                        }
                        None => format!("{n} (provided by {})", self.show(pkg)),
                        Some(_) => self.show(pkg),
                    };
                    self.pool.intern_solvable(
                        name,
                        Labelled {
                            rec: Rec::Provider { pkg, version },
                            label,
                        },
                    )
                })
                .collect(),
        };
        let multiple = matches!(self.pool.resolve_package_name(name), SName::Cap(_));
        Some(Candidates {
            candidates,
            hint_dependencies_available: HintDependenciesAvailable::All,
            allow_multiple: multiple,
            ..Candidates::default()
        })
    }

    async fn sort_candidates(&self, _solver: &SolverCache<Self>, solvables: &mut [SolvableId]) {
        solvables.sort_by_cached_key(|&s| self.preference(s));
    }

    async fn get_dependencies(&self, solvable: SolvableId) -> Dependencies {
        match self.record(solvable).clone() {
            Rec::Provider { pkg, .. } => {
                let real = self.real(pkg);
                let set = self
                    .pool
                    .intern_version_set(self.slot(pkg), VSet::Exact(real));
                Dependencies::Known(KnownDependencies {
                    requirements: vec![set.into()],
                    constrains: Vec::new(),
                })
            }
            Rec::Real(i) => match self.dependencies_of(i) {
                Some(d) => Dependencies::Known(d),
                None => Dependencies::Unknown(self.no_deps),
            },
        }
    }
}
