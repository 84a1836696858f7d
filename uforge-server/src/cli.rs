//! Command-line definitions. Every setting can also come from the environment (`UFORGE_*`) or
//! from a TOML file (`--config`); [`crate::config`] merges them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The uforge server.
#[derive(Debug, Parser)]
#[command(name = "uforge-server", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTPS API.
    Serve(ServeArgs),
    /// Manage users and their API tokens.
    #[command(subcommand)]
    User(UserCommand),
}

/// Where the server keeps its state; shared by every subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct CommonArgs {
    /// A TOML file with defaults for any setting (flags and environment take precedence).
    #[arg(long, env = "UFORGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory holding the database, blobs, reports, recreated packages and the TLS
    /// certificate.
    #[arg(long, env = "UFORGE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// `postgres://USER:PASSWORD@HOST/DB` to use PostgreSQL; by default SQLite in
    /// DATA_DIR/uforge.db.
    #[arg(
        long,
        env = "UFORGE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
}

/// Arguments of `serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Storage settings.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address to listen on [default: 127.0.0.1:8443]; port 0 picks a free port (the address is
    /// printed).
    #[arg(long, env = "UFORGE_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// PEM certificate chain; without it a self-signed certificate is generated under
    /// DATA_DIR/tls on first start.
    #[arg(
        long,
        env = "UFORGE_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(
        long,
        env = "UFORGE_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Largest report accepted, in bytes (suffixes K, M, G, KiB, MiB, GiB allowed).
    #[arg(long, env = "UFORGE_MAX_REPORT_BYTES", value_name = "SIZE")]
    pub max_report_bytes: Option<String>,
    /// Most file entries a report may list (default 16777216).
    #[arg(long, env = "UFORGE_MAX_REPORT_ENTRIES", value_name = "N")]
    pub max_report_entries: Option<u64>,
    /// Most bytes a report may decompress to (default 8GiB; suffixes as --max-report-bytes).
    #[arg(long, env = "UFORGE_MAX_REPORT_EXPANDED", value_name = "SIZE")]
    pub max_report_expanded: Option<String>,
    /// Let every user register `file:`/`copy:` repositories and hosts on loopback, link-local,
    /// private or this server's own addresses (by default only administrators may).
    #[arg(long, env = "UFORGE_ALLOW_LOCAL_REPOS")]
    pub allow_local_repos: bool,
    /// Keyring that signs repositories without `signed-by` (default: the Debian archive
    /// keyring).
    #[arg(long, env = "UFORGE_KEYRING", value_name = "FILE")]
    pub keyring: Option<PathBuf>,
    /// Image jobs this process builds at once (default 1). 0 builds none here: jobs wait for
    /// another server process sharing the database and data directory.
    #[arg(long, env = "UFORGE_IMAGE_WORKERS", value_name = "N")]
    pub image_workers: Option<usize>,
}

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user and print its API token (shown only once).
    Add {
        /// User name: letters, digits, `.`, `_`, `-`; at most 64 characters.
        name: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
        /// Storage settings.
        #[command(flatten)]
        common: CommonArgs,
    },
    /// List users.
    List {
        /// Storage settings.
        #[command(flatten)]
        common: CommonArgs,
    },
}
