//! `uforge.Template`: appliance templates (white-box migration) loaded from their file form,
//! edited, checked against their repositories and saved.

use std::path::{Path, PathBuf};

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use uforge_core::progress::NoProgress;
use uforge_core::repo::RepoOptions;
use uforge_core::template::{self as core, file, solve, PackageSpec};

use crate::convert::{from_python, to_python, FsArg};
use crate::errors::to_py;
use crate::model::record;

record! {
    /// One package of a checked template's install set.
    ResolvedPackage {
        /// Package name.
        name: String,
        /// The exact version installed.
        version: String,
        /// Its architecture (`amd64`, `all`...).
        arch: String,
        /// Why it is installed: `pinned`, `free`, `ospkg` (a My Software `.deb`),
        /// `essential` or `dependency`.
        reason: String,
        /// For a `dependency`: the package that needs it; None otherwise.
        needed_by: Option<String>,
    }
}

record! {
    /// A package of the template the check left out (an `auto` one the repositories no longer
    /// carry or that cannot fit).
    DroppedPackage {
        /// The template's entry, in apt's syntax (`name`, `name:arch=version`).
        package: String,
        /// Why it was left out.
        why: String,
    }
}

record! {
    /// The outcome of `Template.check`: the packages that install together.
    CheckResult {
        /// Every package an image build of the template installs.
        packages: Vec<ResolvedPackage>,
        /// Those the template does not list: dependencies and essential packages.
        added: Vec<ResolvedPackage>,
        /// Template packages left out, and why.
        dropped: Vec<DroppedPackage>,
    }
}

fn resolved(p: &solve::ResolvedPackage) -> ResolvedPackage {
    let (reason, needed_by) = match &p.reason {
        solve::Reason::Pinned => ("pinned", None),
        solve::Reason::Free => ("free", None),
        solve::Reason::OsPkg => ("ospkg", None),
        solve::Reason::Essential => ("essential", None),
        solve::Reason::Dependency(by) => ("dependency", Some(by.clone())),
    };
    ResolvedPackage {
        name: p.key.name.clone(),
        version: p.key.version.clone(),
        arch: p.key.arch.clone(),
        reason: reason.into(),
        needed_by,
    }
}

/// An appliance template: OS profile, install profile, My Software, boot scripts.
///
/// Its contents (files, scripts, `.deb`s) stay in the `files/` directory it was loaded from;
/// `save` copies them with the template.
#[pyclass(eq, module = "uforge")]
#[derive(PartialEq)]
pub struct Template {
    t: core::Template,
    /// Where the contents are read (`DIR/files`), if the template came from a directory.
    files: Option<PathBuf>,
}

/// The directory of a template given by its `template.yml` or its directory.
fn template_dir(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.to_path_buf()
    } else {
        match p.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(d) => d.to_path_buf(),
            None => PathBuf::from("."),
        }
    }
}

impl Template {
    /// The template with its `source` contents stored under a scratch directory, and the
    /// store that reads every content.
    fn working(&self, scratch: &Path) -> uforge_core::Result<(core::Template, file::WorkingBlobs)> {
        let mut t = self.t.clone();
        // A template made from text reads its contents from nowhere: every blob it names is
        // reported missing by the operation that needs it.
        let files = self
            .files
            .clone()
            .unwrap_or_else(|| scratch.join("no-files"));
        let blobs = file::working(&mut t, &files, &scratch.join("blobs"))?;
        Ok((t, blobs))
    }
}

fn scratch() -> PyResult<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("uforge-template.")
        .tempdir()
        .map_err(|e| to_py(uforge_core::Error::io("create", std::env::temp_dir(), e)))
}

#[pymethods]
impl Template {
    /// Reads a template directory (`template.yml` and `files/`), given by the directory or its
    /// `template.yml`. Raises InvalidError naming the line and column of a YAML mistake, or
    /// a content missing from `files/`.
    #[staticmethod]
    fn load(py: Python<'_>, path: FsArg) -> PyResult<Template> {
        let dir = template_dir(&path.path());
        let (t, blobs) = py.detach(|| file::load(&dir)).map_err(to_py)?;
        Ok(Template {
            t,
            files: Some(blobs.dir().to_path_buf()),
        })
    }

    /// Reads a template from the text of a `template.yml`. `files` is the directory its
    /// contents are in (a template directory's `files/`), if it has any.
    #[staticmethod]
    #[pyo3(signature = (text, files = None))]
    fn from_yaml(text: &str, files: Option<FsArg>) -> PyResult<Template> {
        let t = file::from_yaml(text, "template text").map_err(to_py)?;
        Ok(Template {
            t,
            files: files.map(|f| f.path()),
        })
    }

    /// Makes a template from plain data of the shape `to_dict` gives (the `stack` of
    /// `template.yml`). Raises ValueError naming a field of the wrong shape, InvalidError for
    /// what the shape allows but a template does not (a package listed twice...).
    #[staticmethod]
    #[pyo3(signature = (data, files = None))]
    fn from_dict(
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        files: Option<FsArg>,
    ) -> PyResult<Template> {
        let t: core::Template = from_python(py, data)?;
        t.validate().map_err(to_py)?;
        Ok(Template {
            t,
            files: files.map(|f| f.path()),
        })
    }

    /// The text of `template.yml`, in canonical order (sorted, one package per line).
    fn to_yaml(&self) -> PyResult<String> {
        file::to_yaml(&self.t).map_err(to_py)
    }

    /// The template as plain Python data (dicts and lists), the `stack` of `template.yml`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut t = self.t.clone();
        t.normalize();
        to_python(py, &t)
    }

    /// Writes the template to directory `dir` (created if needed): `files/` with every
    /// content it refers to, then `template.yml`. Contents given by `source` are stored under
    /// their digest, as importing the template into a server does. The template then reads
    /// its contents from `dir`.
    fn save(&mut self, py: Python<'_>, dir: FsArg) -> PyResult<()> {
        let dir = dir.path();
        let work = scratch()?;
        let t = py
            .detach(|| {
                let (t, blobs) = self.working(work.path())?;
                file::export(&t, &blobs, &dir)?;
                Ok::<_, uforge_core::Error>(t)
            })
            .map_err(to_py)?;
        self.t = t;
        self.files = Some(dir.join(file::FILES_DIR));
        Ok(())
    }

    /// Checks that the template's packages install together from its repositories: the
    /// release's `Packages` indexes are fetched (signed, cached in `cache_dir`) and solved
    /// with Depends, Pre-Depends, Conflicts, Breaks and Provides honoured. Pinned packages stay
    /// at their version, free ones get the newest that fits, missing dependencies are added.
    /// Raises UnsatisfiableError (its `problems` name the packages and relations at fault)
    /// when they cannot; RepoError when a repository cannot be read. Releases the GIL.
    #[pyo3(signature = (cache_dir, keyring = None))]
    fn check(
        &self,
        py: Python<'_>,
        cache_dir: FsArg,
        keyring: Option<FsArg>,
    ) -> PyResult<CheckResult> {
        let mut opts = RepoOptions::new(cache_dir.path());
        opts.keyring = keyring.map(|k| k.path());
        let work = scratch()?;
        let res = py
            .detach(|| {
                let (t, blobs) = self.working(work.path())?;
                let universe = solve::PackageUniverse::open(&t.os, &opts, &NoProgress)?;
                solve::check(&t, &universe, &blobs, &solve::CheckOptions::default())
            })
            .map_err(to_py)?;
        Ok(CheckResult {
            packages: res.packages.iter().map(resolved).collect(),
            added: res.added().map(resolved).collect(),
            dropped: res
                .dropped
                .iter()
                .map(|d| DroppedPackage {
                    package: d.package.to_string(),
                    why: d.why.clone(),
                })
                .collect(),
        })
    }

    /// Name (`web01`).
    #[getter]
    fn name(&self) -> &str {
        &self.t.name
    }

    #[setter]
    fn set_name(&mut self, name: String) {
        self.t.name = name;
    }

    /// Version (`1`).
    #[getter]
    fn version(&self) -> &str {
        &self.t.version
    }

    #[setter]
    fn set_version(&mut self, version: String) {
        self.t.version = version;
    }

    /// Free text: where the template came from, what it is for.
    #[getter]
    fn description(&self) -> &str {
        &self.t.description
    }

    #[setter]
    fn set_description(&mut self, description: String) {
        self.t.description = description;
    }

    /// Distribution (`debian`).
    #[getter]
    fn distribution(&self) -> &str {
        &self.t.os.distribution
    }

    /// Release (`bookworm`). Setting another one moves the template to that release: its
    /// repositories follow where they name the release as `{release}`; pinned packages keep
    /// their versions (see `unpin`).
    #[getter]
    fn release(&self) -> &str {
        &self.t.os.release
    }

    #[setter]
    fn set_release(&mut self, release: String) {
        self.t.os.release = release;
    }

    /// Architecture (`amd64`).
    #[getter]
    fn arch(&self) -> &str {
        &self.t.os.arch
    }

    /// Repositories, as sources.list lines (`{release}` stands for the release).
    #[getter]
    fn repositories(&self) -> Vec<String> {
        self.t.os.repositories.clone()
    }

    #[setter]
    fn set_repositories(&mut self, lines: Vec<String>) {
        self.t.os.repositories = lines;
    }

    /// The OS profile's packages in apt's syntax (`name`, `name:arch=version`), sorted.
    #[getter]
    fn packages(&self) -> Vec<String> {
        let mut pkgs = self.t.os.pkgs.clone();
        pkgs.sort();
        pkgs.iter().map(|p| p.to_string()).collect()
    }

    /// Adds a package to the OS profile: free (the newest version at check and generation)
    /// unless `version` pins it. Entries of the same name (of that architecture when `arch` is
    /// given) are replaced.
    #[pyo3(signature = (name, version = None, arch = None))]
    fn add_package(&mut self, name: String, version: Option<String>, arch: Option<String>) {
        let pkgs = &mut self.t.os.pkgs;
        pkgs.retain(|p| !(p.name == name && (arch.is_none() || p.arch == arch)));
        pkgs.push(PackageSpec {
            name,
            version,
            arch,
            auto: false,
        });
        self.t.normalize();
    }

    /// Removes a package (every architecture of it unless `arch` says which) from the OS
    /// profile. Raises KeyError when the template does not list it.
    #[pyo3(signature = (name, arch = None))]
    fn remove_package(&mut self, name: &str, arch: Option<&str>) -> PyResult<()> {
        let before = self.t.os.pkgs.len();
        self.t
            .os
            .pkgs
            .retain(|p| !(p.name == name && (arch.is_none() || p.arch.as_deref() == arch)));
        if self.t.os.pkgs.len() == before {
            return Err(PyKeyError::new_err(format!(
                "template {} {} lists no package {name}",
                self.t.name, self.t.version
            )));
        }
        Ok(())
    }

    /// Frees pinned packages (all of them, or those named): they get the newest version the
    /// repositories carry at check and generation, as when moving to another release.
    #[pyo3(signature = (names = None))]
    fn unpin(&mut self, names: Option<Vec<String>>) {
        let native = self.t.os.arch.clone();
        for p in &mut self.t.os.pkgs {
            if names.as_ref().is_none_or(|n| n.contains(&p.name)) {
                *p = p.unpinned(&native);
            }
        }
        self.t.normalize();
    }

    fn __repr__(&self) -> String {
        format!(
            "<uforge.Template {} {} ({} {}, {} packages)>",
            self.t.name,
            self.t.version,
            self.t.os.distribution,
            self.t.os.release,
            self.t.os.pkgs.len()
        )
    }
}
