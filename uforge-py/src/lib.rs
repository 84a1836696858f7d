//! `import uforge`: the Python module over uforge-core and the client library of a uforge
//! server (`uforge_client`).
//!
//! A thin layer: every function parses its Python arguments, calls one library function with
//! the GIL released, and converts the result. The pure-Python package (`python/uforge`) re-exports
//! this native module `uforge._uforge` and carries the type stubs.

mod analysis;
mod client;
mod convert;
mod errors;
mod model;
mod overlay;
mod progress;
mod report;
mod template;

use pyo3::prelude::*;

/// The native part of the `uforge` package; import `uforge` rather than this module.
#[pymodule(name = "_uforge")]
fn uforge_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;

    m.add_function(wrap_pyfunction!(report::scan, m)?)?;
    m.add_class::<report::Report>()?;
    m.add_class::<model::FileEntry>()?;
    m.add_class::<model::FileIterator>()?;
    m.add_class::<model::Machine>()?;
    m.add_class::<model::OsInfo>()?;
    m.add_class::<model::Keyboard>()?;
    m.add_class::<model::Kernel>()?;
    m.add_class::<model::Mount>()?;
    m.add_class::<model::Partition>()?;
    m.add_class::<model::NetworkInterface>()?;
    m.add_class::<model::User>()?;
    m.add_class::<model::Group>()?;
    m.add_class::<model::Package>()?;
    m.add_class::<model::ScanError>()?;
    m.add_class::<model::ScanInfo>()?;
    m.add_class::<model::Exclude>()?;

    m.add_class::<analysis::RepoIndex>()?;
    m.add_function(wrap_pyfunction!(analysis::analyze, m)?)?;
    m.add_class::<analysis::Analysis>()?;
    m.add_class::<analysis::ModifiedFile>()?;
    m.add_class::<analysis::DeletedFile>()?;
    m.add_function(wrap_pyfunction!(analysis::compare, m)?)?;

    m.add_function(wrap_pyfunction!(overlay::write_overlay, m)?)?;

    m.add_class::<template::Template>()?;
    m.add_class::<template::CheckResult>()?;
    m.add_class::<template::ResolvedPackage>()?;
    m.add_class::<template::DroppedPackage>()?;

    m.add_class::<client::Client>()?;
    Ok(())
}
