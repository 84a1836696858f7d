//! Integration tests of uforge-server: the real binary on a free port, spoken to over real
//! TLS, on SQLite and on PostgreSQL. One test binary with helpers in `util` and one module per
//! area, as in the other crates.

mod util;

mod api;
mod hardening;
mod images;
mod publish;
mod releases;
mod scans;
