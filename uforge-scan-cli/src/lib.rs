//! The client side of a uforge server: an authenticated HTTPS client for its API, and the live
//! scan the agent runs (scan, report, analysis, overlay streamed from disk to the socket).
//!
//! The `uforge-scan` and `uforge` binaries and the Python module are thin layers over this.

pub mod agent;
pub mod client;
mod tls;

pub use client::{Client, ClientError, Credentials};
pub use tls::TlsOptions;
