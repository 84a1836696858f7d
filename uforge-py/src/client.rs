//! `uforge.Client`: the HTTPS client of a uforge server, over the client library
//! (`uforge_client`), and its live scan.
//!
//! Every method is one call of the library with the GIL released; JSON answers become plain
//! Python data in the shapes `docs/api.md` gives, and HTTP errors become `ClientError` (or
//! `AuthError`, `NotFoundError`) carrying the status and the server's message.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use uforge_api::{NewPublication, NewTarget, TargetCredentials};
use uforge_client::agent::{self, RunOptions};
use uforge_client::{Credentials, TlsOptions};
use uforge_core::scan::ScanOptions;

use crate::analysis::Analysis;
use crate::convert::{from_python, to_python, FsArg};
use crate::errors::client_to_py;
use crate::overlay::stats_dict;
use crate::progress::Callback;

/// An authenticated connection to a uforge server.
///
/// `Client(url, token, cacert=None, user=None, insecure=False)`: `url` is the server's
/// `https://` address, `token` an API token (`uforge-server user add NAME` prints one). A
/// self-signed server is trusted through its certificate in `cacert` (a PEM file, the server's
/// `DATA_DIR/tls/cert.pem`); `insecure` accepts any certificate (tests only: anyone could
/// impersonate the server). With `user`, the token is sent with the user name (HTTP Basic),
/// and the server checks the name owns it.
///
/// Nothing is sent until a method is called. Methods block, release the GIL while they wait,
/// and raise ClientError (AuthError on 401, NotFoundError on 404) when the request fails. A
/// client may be shared between threads.
#[pyclass(frozen, module = "uforge")]
pub struct Client {
    inner: uforge_client::Client,
    url: String,
    user: Option<String>,
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (url, token, cacert = None, user = None, insecure = false))]
    fn new(
        py: Python<'_>,
        url: String,
        token: String,
        cacert: Option<FsArg>,
        user: Option<String>,
        insecure: bool,
    ) -> PyResult<Self> {
        let credentials = Credentials {
            user: user.clone(),
            token,
        };
        let tls = TlsOptions {
            cacert: cacert.map(|c| c.path()),
            insecure,
        };
        // Reads the certificate file: a missing or empty one fails here, not at the first call.
        let inner = py
            .detach(|| uforge_client::Client::new(&url, &credentials, &tls))
            .map_err(|e| client_to_py(py, e))?;
        Ok(Client { inner, url, user })
    }

    /// The server's URL, as given.
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    /// The user name sent with the token, or None.
    #[getter]
    fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Checks the connection and the credentials: `{"status": "ok", "version", "user"}`.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = py
            .detach(|| self.inner.health())
            .map_err(|e| client_to_py(py, e))?;
        to_python(py, &v)
    }

    /// The user's repositories: `[{"id", "line", "packages", "synced_at"}]` (`packages` and
    /// `synced_at` are None until the repository is synced).
    fn repos<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = py
            .detach(|| self.inner.repos())
            .map_err(|e| client_to_py(py, e))?;
        to_python(py, &v)
    }

    /// Registers a repository by its sources.list line
    /// (`deb http://deb.debian.org/debian bookworm main`) and returns it as `repos()` lists
    /// it. Analyses use it once it is synced.
    fn repo_add<'py>(&self, py: Python<'py>, line: &str) -> PyResult<Bound<'py, PyAny>> {
        let v = py
            .detach(|| self.inner.repo_add(line))
            .map_err(|e| client_to_py(py, e))?;
        to_python(py, &v)
    }

    /// Has the server fetch, verify and cache the repository's index now; returns the
    /// repository with its package count. Slow the first time for a large mirror.
    fn repo_sync<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        let v = py
            .detach(|| self.inner.repo_sync(id))
            .map_err(|e| client_to_py(py, e))?;
        to_python(py, &v)
    }

    /// Removes a repository.
    fn repo_delete(&self, py: Python<'_>, id: i64) -> PyResult<()> {
        py.detach(|| self.inner.repo_delete(id))
            .map_err(|e| client_to_py(py, e))
    }

    /// The user's machines: `[{"name", "scans", "last_scan"}]`.
    fn machines<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = py
            .detach(|| self.inner.machines())
            .map_err(|e| client_to_py(py, e))?;
        to_python(py, &v)
    }

    /// The user's scans, newest first, of one machine when `machine` is given. Each is
    /// `{"id", "machine", "status", "created_at", "completed_at", "summary"}`.
    #[pyo3(signature = (machine = None))]
    fn scans<'py>(&self, py: Python<'py>, machine: Option<&str>) -> PyResult<Bound<'py, PyAny>> {
        let v = py
            .detach(|| self.inner.scans(machine))
            .map_err(|e| client_to_py(py, e))?;
        to_python(py, &v)
    }

    /// One scan, as `scans()` lists it; `status` is `created`, `analyzed` or `complete`.
    fn scan<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        let v = py
            .detach(|| self.inner.scan(id))
            .map_err(|e| client_to_py(py, e))?;
        to_python(py, &v)
    }

    /// The stored analysis of a scan, as an `Analysis` (the same class `uforge.analyze`
    /// returns).
    fn analysis(&self, py: Python<'_>, id: i64) -> PyResult<Analysis> {
        py.detach(|| self.inner.analysis(id))
            .map(Analysis)
            .map_err(|e| client_to_py(py, e))
    }

    /// Differences between two scans: `{"packages": [...], "files": [...]}`, the shape of
    /// `uforge.compare`.
    fn compare<'py>(&self, py: Python<'py>, a: i64, b: i64) -> PyResult<Bound<'py, PyAny>> {
        let v = py
            .detach(|| self.inner.compare(a, b))
            .map_err(|e| client_to_py(py, e))?;
        to_python(py, &v)
    }

    /// Deletes a scan.
    fn delete_scan(&self, py: Python<'_>, id: i64) -> PyResult<()> {
        py.detach(|| self.inner.delete_scan(id))
            .map_err(|e| client_to_py(py, e))
    }

    /// The packages the server recreated for the user:
    /// `[{"name", "version", "arch", "file", "sha256", "scan"}]`.
    fn packages<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = py
            .detach(|| self.inner.packages())
            .map_err(|e| client_to_py(py, e))?;
        to_python(py, &v)
    }

    /// Runs the live scan of `root` as machine `name`: checks the connection, scans the root
    /// into a report held in memory, posts it, and streams the overlay of exactly what the
    /// server's analysis wants from the disk to the server, which stores it and recreates the
    /// packages no repository has. Nothing is written on the scanned machine. A second run
    /// with the same name ships only what changed; a run after a failed one finishes the
    /// unfinished scan.
    ///
    /// `exclude`, `default_excludes` and `threads` are those of `uforge.scan`.
    /// `progress(step, entries, bytes)` is told each step (`connect`, `scan`, `report`,
    /// `overlay`) as it starts and its running totals, which start again at each step; see
    /// `uforge.scan` for how often it is called and what an exception it raises does.
    ///
    /// Returns `{"scan_id", "report_bytes", "analysis" (an Analysis), "stats" (the analysis
    /// statistics), "overlay" (as `write_overlay` returns), "result" (the server's answer to
    /// the overlay: `status`, `members`, `blobs`, `content_bytes`, `recreated`)}`. Raises
    /// ClientError, or IoError and InvalidError for a root that cannot be scanned or files
    /// that changed during the scan.
    #[pyo3(
        signature = (
            name,
            root = FsArg(b"/".to_vec()),
            exclude = Vec::new(),
            progress = None,
            *,
            default_excludes = true,
            threads = 0
        ),
        text_signature = "($self, name, root='/', exclude=(), progress=None, *, \
                          default_excludes=True, threads=0)"
    )]
    // The arguments are the Python signature's, one for one.
    #[allow(clippy::too_many_arguments)]
    fn run<'py>(
        &self,
        py: Python<'py>,
        name: String,
        root: FsArg,
        exclude: Vec<FsArg>,
        progress: Option<Py<PyAny>>,
        default_excludes: bool,
        threads: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let mut scan = ScanOptions::new(root.path());
        scan.excludes = exclude.into_iter().map(|e| e.0).collect();
        scan.default_excludes = default_excludes;
        scan.threads = threads;
        scan.tool = format!("uforge-py {}", env!("CARGO_PKG_VERSION"));
        let opts = RunOptions {
            machine: name,
            scan,
        };
        let cb = Callback::with_steps(py, progress)?;
        let summary = py
            .detach(|| agent::run(&self.inner, &opts, &cb))
            .map_err(|e| client_to_py(py, e))?;
        cb.done(py)?;

        let d = PyDict::new(py);
        d.set_item("scan_id", summary.scan_id)?;
        d.set_item("report_bytes", summary.report_bytes)?;
        d.set_item("stats", to_python(py, &summary.analysis.stats)?)?;
        d.set_item("overlay", stats_dict(py, &summary.overlay)?)?;
        d.set_item("result", to_python(py, &summary.result)?)?;
        d.set_item("skipped_files", summary.skipped_files)?;
        d.set_item("skipped_bytes", summary.skipped_bytes)?;
        d.set_item("analysis", Analysis(summary.analysis))?;
        Ok(d)
    }

    /// Adds a publish target and returns it as `targets()` lists it: `{"id", "name",
    /// "type", "url", "options", "description", "ca_pem_set", "credentials_set",
    /// "formats", "provisions", "created_at"}`. `url` is `oci://HOST/NAMESPACE`,
    /// `s3://BUCKET/PREFIX/`, `dir:///PATH` or `libvirt:///system`; `options` the URL kind's
    /// options (`{"endpoint": ..., "region": ...}`); `credentials` a dict such as
    /// `{"type": "password", "username": ..., "password": ...}` (types `token`,
    /// `access-key`). The server seals the credentials and never returns them.
    #[pyo3(signature = (name, url, *, options = None, credentials = None, ca_pem = None, kind = None))]
    #[allow(clippy::too_many_arguments)]
    fn add_target<'py>(
        &self,
        py: Python<'py>,
        name: String,
        url: String,
        options: Option<std::collections::BTreeMap<String, String>>,
        credentials: Option<Bound<'py, PyAny>>,
        ca_pem: Option<String>,
        kind: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let credentials = match credentials {
            Some(c) => from_python(py, &c)?,
            None => TargetCredentials::None,
        };
        let new = NewTarget {
            name,
            kind,
            url,
            options: options.unwrap_or_default(),
            ca_pem,
            credentials,
        };
        let v = py
            .detach(|| self.inner.add_target(&new))
            .map_err(|e| client_to_py(py, e))?;
        to_python(py, &v)
    }

    /// The user's targets, by name.
    fn targets<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = py
            .detach(|| self.inner.targets())
            .map_err(|e| client_to_py(py, e))?;
        to_python(py, &v)
    }

    /// One target, by name (or id, as a string).
    fn target<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let v = py
            .detach(|| self.inner.target(name))
            .map_err(|e| client_to_py(py, e))?;
        to_python(py, &v)
    }

    /// Replaces a target's credentials (a dict, as for `add_target`).
    fn set_target_credentials<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        credentials: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c: TargetCredentials = from_python(py, &credentials)?;
        let v = py
            .detach(|| self.inner.set_target_credentials(name, &c))
            .map_err(|e| client_to_py(py, e))?;
        to_python(py, &v)
    }

    /// Deletes a target (refused while publications to it are recorded).
    fn delete_target(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        py.detach(|| self.inner.delete_target(name))
            .map_err(|e| client_to_py(py, e))
    }

    /// Queues the publication of a finished image to one of the user's targets and returns
    /// the job: `{"id", "image", "target", "name", "deploy", "status", "phase",
    /// "progress": {"bytes", "total_bytes", "percent"}, "error", "error_kind", "location",
    /// "digest", "size", "sent", "instance", "created_at", "started_at", "finished_at"}`.
    /// `tag` is a registry tag; `start`, `memory` (MiB), `cpus` and `firmware` deploy the
    /// image on a libvirt target.
    #[pyo3(signature = (image, target, *, name = None, tag = None, start = None, memory = None, cpus = None, firmware = None))]
    #[allow(clippy::too_many_arguments)]
    fn publish<'py>(
        &self,
        py: Python<'py>,
        image: i64,
        target: String,
        name: Option<String>,
        tag: Option<String>,
        start: Option<bool>,
        memory: Option<u64>,
        cpus: Option<u32>,
        firmware: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let req = NewPublication {
            target,
            name,
            tag,
            start,
            memory,
            cpus,
            firmware,
        };
        let v = py
            .detach(|| self.inner.publish_image(image, &req))
            .map_err(|e| client_to_py(py, e))?;
        to_python(py, &v)
    }

    /// The user's publications, newest first, of one image when `image` is given.
    #[pyo3(signature = (image = None))]
    fn publications<'py>(
        &self,
        py: Python<'py>,
        image: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let v = py
            .detach(|| self.inner.publications(image))
            .map_err(|e| client_to_py(py, e))?;
        to_python(py, &v)
    }

    /// One publication, as `publish` returns it.
    fn publication<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        let v = py
            .detach(|| self.inner.publication(id))
            .map_err(|e| client_to_py(py, e))?;
        to_python(py, &v)
    }

    /// Queues a failed publication again; it resumes what was sent.
    fn retry_publication<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        let v = py
            .detach(|| self.inner.retry_publication(id))
            .map_err(|e| client_to_py(py, e))?;
        to_python(py, &v)
    }

    /// Deletes a publication and what it pushed; ClientError with status 502, naming the
    /// target, when the target refuses.
    fn delete_publication(&self, py: Python<'_>, id: i64) -> PyResult<()> {
        py.detach(|| self.inner.delete_publication(id))
            .map_err(|e| client_to_py(py, e))
    }

    fn __repr__(&self) -> String {
        match &self.user {
            Some(u) => format!("<uforge.Client {} as {u}>", self.url),
            None => format!("<uforge.Client {}>", self.url),
        }
    }
}
