//! `uforge.RepoIndex`, `uforge.analyze`, `uforge.Analysis` and `uforge.compare`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use uforge_core::analysis::{self, PreviousScan};
use uforge_core::progress::NoProgress;
use uforge_core::repo::{self, PackageKey, RepoOptions};
use uforge_core::Result;

use crate::convert::{to_python, FsArg, Raw};
use crate::errors::to_py;
use crate::model::{enum_name, record};
use crate::progress::Callback;
use crate::report::Report;

/// Package repositories opened from sources.list lines, with their signed indexes fetched,
/// verified and cached.
#[pyclass(frozen, module = "uforge")]
pub struct RepoIndex {
    repos: Vec<Box<dyn repo::RepoIndex>>,
}

#[pymethods]
impl RepoIndex {
    /// Opens every repository named by a sources.list line (`deb URI SUITE COMPONENT...`).
    ///
    /// `cache_dir` holds indexes, `.deb` files and manifests across runs. `keyring` signs
    /// repositories whose line has no `signed-by` (default: the Debian archive keyring).
    /// `archs` are the architectures whose indexes are read (default `amd64` and `all`; see
    /// `Report.index_archs`). `files` are sources files, one-line or deb822 (`.sources`),
    /// whose repositories are opened after `lines`. Raises RepoError naming the line that
    /// failed.
    #[staticmethod]
    #[pyo3(signature = (lines, cache_dir, keyring = None, archs = None, files = None))]
    fn from_sources(
        py: Python<'_>,
        mut lines: Vec<String>,
        cache_dir: FsArg,
        keyring: Option<FsArg>,
        archs: Option<Vec<String>>,
        files: Option<Vec<FsArg>>,
    ) -> PyResult<RepoIndex> {
        let keys = cache_dir.path().join("keys");
        for f in files.unwrap_or_default() {
            lines.extend(repo::read_sources_file(&f.path(), &keys).map_err(to_py)?);
        }
        let mut opts = RepoOptions::new(cache_dir.path());
        opts.keyring = keyring.map(|k| k.path());
        if let Some(archs) = archs {
            opts.archs = archs;
        }
        let repos = py
            .detach(|| repo::open_sources(&lines, &opts, &NoProgress))
            .map_err(to_py)?;
        Ok(RepoIndex { repos })
    }

    /// The repositories, named by their sources lines.
    #[getter]
    fn names(&self) -> Vec<String> {
        self.repos.iter().map(|r| r.name()).collect()
    }

    /// Whether a repository carries exactly this package.
    fn has(&self, name: &str, version: &str, arch: &str) -> bool {
        let key = PackageKey::new(name, version, arch);
        self.repos.iter().any(|r| r.has(&key))
    }

    fn __len__(&self) -> usize {
        self.repos.len()
    }

    fn __repr__(&self) -> String {
        format!("<uforge.RepoIndex {:?}>", self.names())
    }
}

record! {
    /// A package file that differs from what its package ships.
    ModifiedFile {
        /// In-root path (bytes).
        path: Raw,
        /// The owning package (`name`, or `name:arch` for a foreign architecture).
        package: String,
        /// `content`, `metadata`, `target`, `kind` or `unshipped`.
        change: String,
    }
}

record! {
    /// A file a package ships that is absent from the machine.
    DeletedFile {
        /// In-root path (bytes).
        path: Raw,
        /// The package that ships it.
        package: String,
    }
}

/// What no repository can rebuild: the answer of `uforge.analyze`.
#[pyclass(frozen, eq, module = "uforge")]
#[derive(PartialEq)]
pub struct Analysis(pub analysis::Analysis);

fn bytes_list<'py>(py: Python<'py>, paths: &[Vec<u8>]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, paths.iter().map(|p| PyBytes::new(py, p)))
}

#[pymethods]
impl Analysis {
    /// Installed packages no repository and no earlier scan holds, as
    /// `(name, version, arch)` tuples.
    #[getter]
    fn missing_packages(&self) -> Vec<(String, String, String)> {
        self.0
            .missing_packages
            .iter()
            .map(|k| (k.name.clone(), k.version.clone(), k.arch.clone()))
            .collect()
    }

    /// Package files that differ from the official package, as `ModifiedFile` objects.
    #[getter]
    fn modified_files(&self) -> Vec<ModifiedFile> {
        self.0
            .modified_files
            .iter()
            .map(|m| ModifiedFile {
                path: Raw(m.path.clone()),
                package: m.package.clone(),
                change: enum_name(&m.change),
            })
            .collect()
    }

    /// Files packages ship that are absent from the machine, as `DeletedFile` objects.
    #[getter]
    fn deleted_files(&self) -> Vec<DeletedFile> {
        self.0
            .deleted_files
            .iter()
            .map(|d| DeletedFile {
                path: Raw(d.path.clone()),
                package: d.package.clone(),
            })
            .collect()
    }

    /// Paths owned by no package (less what earlier scans hold unchanged), as bytes.
    #[getter]
    fn unknown_files<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        bytes_list(py, &self.0.unknown_files)
    }

    /// Exactly the paths the overlay must carry, in report order, as bytes.
    #[getter]
    fn wanted<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        bytes_list(py, &self.0.wanted)
    }

    /// Totals: `packages`, `from_repositories`, `from_previous`, `entries`, `held`,
    /// `wanted_bytes`.
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.0.stats)
    }

    /// The JSON document (`"format": "uforge-analysis"`), as `uforge-scan analyze -o` writes.
    fn to_json(&self) -> PyResult<String> {
        let mut out = Vec::new();
        self.0.write_json(&mut out).map_err(to_py)?;
        String::from_utf8(out).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
    }

    /// Reads the JSON document; raises ReportError when it is not a valid analysis.
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Analysis> {
        analysis::Analysis::read_json(text.as_bytes(), "text")
            .map(Analysis)
            .map_err(to_py)
    }

    fn __repr__(&self) -> String {
        let a = &self.0;
        format!(
            "<uforge.Analysis: {} missing packages, {} modified, {} deleted, {} unknown, \
             {} wanted>",
            a.missing_packages.len(),
            a.modified_files.len(),
            a.deleted_files.len(),
            a.unknown_files.len(),
            a.wanted.len()
        )
    }
}

/// Repositories given as one `RepoIndex` or a sequence of them.
fn repo_list(repos: &Bound<'_, PyAny>) -> PyResult<Vec<Py<RepoIndex>>> {
    match repos.cast::<RepoIndex>() {
        Ok(one) => Ok(vec![one.clone().unbind()]),
        Err(_) => repos.extract(),
    }
}

/// Analyses a report against repositories and earlier scans of the same machine.
///
/// Answers: packages no repository (`repos`: a RepoIndex or a list of them) and no earlier
/// scan has, package files whose bytes differ from the official `.deb`, deleted package files,
/// files no package owns, and the exact paths the overlay must carry. What a report in
/// `previous` already holds unchanged is not wanted again. `progress(entries, bytes)` as for
/// `scan`. The GIL is released; `.deb` files are fetched and cached as needed. Raises RepoError.
#[pyfunction]
#[pyo3(
    signature = (report, repos, previous = Vec::new(), progress = None),
    text_signature = "(report, repos, previous=(), progress=None)"
)]
pub fn analyze(
    py: Python<'_>,
    report: Py<Report>,
    repos: &Bound<'_, PyAny>,
    previous: Vec<Py<Report>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Analysis> {
    let repos = repo_list(repos)?;
    let cb = Callback::new(py, progress)?;
    let result = py.detach(|| -> Result<analysis::Analysis> {
        let report = report.get();
        let indexes: Vec<&dyn repo::RepoIndex> = repos
            .iter()
            .flat_map(|r| r.get().repos.iter().map(|b| b.as_ref()))
            .collect();
        let earlier = previous
            .iter()
            .map(|p| PreviousScan::load(p.get().reader()?))
            .collect::<Result<Vec<_>>>()?;
        analysis::analyze(&|| report.reader(), &indexes, &earlier, &cb)
    });
    let analysis = result.map_err(to_py)?;
    cb.done(py)?;
    Ok(Analysis(analysis))
}

/// Compares two reports: packages added, removed or at another version, files added, removed
/// or modified. Returns the JSON form as Python data: `{"packages": [{"name", "before",
/// "after"}], "files": [{"path" | "path_b64", "status", "what"}]}`.
#[pyfunction]
pub fn compare<'py>(py: Python<'py>, a: Py<Report>, b: Py<Report>) -> PyResult<Bound<'py, PyAny>> {
    let c = py
        .detach(|| analysis::compare(a.get().reader()?, b.get().reader()?))
        .map_err(to_py)?;
    to_python(py, &c.to_json())
}
