//! uforge-server: the AppCenter side of a migration. It keeps users and their API tokens,
//! package repositories, machines and scans in a database (SQLite by default, PostgreSQL at
//! scale), receives reports and overlays over HTTPS, verifies overlays into a content-addressed
//! blob store, rebuilds the packages no repository has, and builds machine images from scans
//! in background jobs.
//!
//! The binary is a thin shell over [`commands::run`]; the HTTP API is documented in
//! `docs/api.md` and served as OpenAPI at `/api/v1/openapi.json`.

pub mod api;
pub(crate) mod auth;
pub(crate) mod bridge;
pub mod cli;
pub mod commands;
pub mod config;
pub(crate) mod datadir;
pub(crate) mod db;
pub(crate) mod error;
pub(crate) mod jobs;
pub(crate) mod pipeline;
pub(crate) mod publishing;
pub(crate) mod recreate;
pub(crate) mod repo_policy;
pub(crate) mod sealing;
pub(crate) mod server;
pub(crate) mod state;
pub(crate) mod tls;
