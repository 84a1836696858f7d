//! uforge-client: the client side of a uforge server. An authenticated HTTPS client for its
//! API, answering with the API's own types, and the live scan the agent runs (scan, report,
//! analysis, overlay streamed from disk to the socket).
//!
//! The `uforge-scan` and `uforge` binaries, the Python module and the server's tests are
//! layers over this; it has no command-line or terminal dependencies.

pub mod agent;
pub mod client;
pub mod error;
mod tls;

pub use client::{Client, Credentials, Linked};
pub use error::ClientError;
pub use tls::TlsOptions;
