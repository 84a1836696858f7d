//! uforge-core: scan a Linux machine, work out what a package repository cannot rebuild, and
//! rebuild the machine elsewhere.
//!
//! The library is synchronous. Frontends (the `uforge-scan` agent, the server, the Python
//! module) parse their input, call one function here and render its result.
//!
//! ```no_run
//! use uforge_core::scan::{scan_to_report, ScanOptions};
//!
//! let report = scan_to_report(&ScanOptions::new("/srv/rootfs"), &uforge_core::progress::NoProgress)?;
//! println!("{} packages, {} files", report.header.packages.len(), report.files.len());
//! # Ok::<(), uforge_core::Error>(())
//! ```

pub mod analysis;
pub mod blobstore;
pub mod canon;
pub mod deb822;
pub mod error;
pub mod facts;
pub mod fsroot;
pub mod image;
pub mod model;
pub mod overlay;
pub mod pkgdb;
pub mod progress;
pub mod publish;
pub mod rawpath;
pub mod recreate;
pub mod repo;
pub mod report;
#[cfg(feature = "http")]
pub mod s3;
pub mod scan;
pub mod template;
#[cfg(test)]
mod test_fixture;
#[cfg(feature = "http")]
pub mod tls;

pub use error::{Error, Result};
