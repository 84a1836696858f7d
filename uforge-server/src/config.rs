//! Settings, merged with this precedence: command-line flags, then environment variables (both
//! handled by clap), then the TOML file named by `--config`, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use uforge_core::report::ReportLimits;

use crate::cli::{CommonArgs, ServeArgs};

/// The address served when none is configured: local only, so that a first start exposes
/// nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// The report size limit when none is configured: 1 GiB.
pub const DEFAULT_MAX_REPORT_BYTES: u64 = 1 << 30;

/// Image jobs built at once when none is configured.
pub const DEFAULT_IMAGE_WORKERS: usize = 1;

/// More image workers than this is a typo, not a plan: each one needs room for a whole image.
pub const MAX_IMAGE_WORKERS: usize = 64;

/// A configuration file. Every key is optional; names match the long flags with `_`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `data_dir = "/var/lib/uforge"`.
    pub data_dir: Option<PathBuf>,
    /// `database_url = "postgres://..."`.
    pub database_url: Option<String>,
    /// `listen = "0.0.0.0:8443"`.
    pub listen: Option<String>,
    /// `tls_cert = "/etc/uforge/cert.pem"`.
    pub tls_cert: Option<PathBuf>,
    /// `tls_key = "/etc/uforge/key.pem"`.
    pub tls_key: Option<PathBuf>,
    /// `max_report_bytes = 1073741824` or `"1GiB"`.
    pub max_report_bytes: Option<Size>,
    /// `keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"`.
    pub keyring: Option<PathBuf>,
    /// `image_workers = 2`.
    pub image_workers: Option<usize>,
    /// `max_report_entries = 16777216`.
    pub max_report_entries: Option<u64>,
    /// `max_report_expanded = "8GiB"`.
    pub max_report_expanded: Option<Size>,
    /// `allow_local_repos = true`.
    pub allow_local_repos: Option<bool>,
}

/// A size in a configuration file: a number of bytes or a string with a unit.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Size {
    /// Bytes.
    Bytes(u64),
    /// `"512MiB"`, `"1G"`...
    Text(String),
}

impl FileConfig {
    /// Reads a configuration file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("invalid configuration file {}", path.display()))
    }
}

/// Which database to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl Database {
    /// Interprets a database URL: `postgres://` or `postgresql://` for PostgreSQL, `sqlite://PATH`,
    /// `sqlite:PATH` or a bare path for SQLite.
    pub fn parse(url: &str) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(url.to_string()));
        }
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            return Ok(Database::Sqlite(PathBuf::from(rest)));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            bail!("unsupported database URL scheme {scheme:?}: use postgres:// or an SQLite path");
        }
        Ok(Database::Sqlite(PathBuf::from(url)))
    }
}

/// Where the state lives: what every subcommand needs.
#[derive(Debug, Clone)]
pub struct Storage {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The database.
    pub database: Database,
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Data directory and database.
    pub storage: Storage,
    /// Address to bind.
    pub listen: SocketAddr,
    /// Certificate and key given by the operator, if any.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Largest report accepted.
    pub max_report_bytes: u64,
    /// Keyring for repositories without `signed-by`.
    pub keyring: Option<PathBuf>,
    /// Image jobs built at once by this process.
    pub image_workers: usize,
    /// What a report may hold once decoded.
    pub report_limits: ReportLimits,
    /// Whether every user may register local repositories.
    pub allow_local_repos: bool,
}

fn file_config(common: &CommonArgs) -> Result<FileConfig> {
    match &common.config {
        Some(p) => FileConfig::load(p),
        None => Ok(FileConfig::default()),
    }
}

/// The data directory used when none is configured.
pub fn default_data_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/uforge");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return Path::new(&x).join("uforge");
    }
    std::env::var_os("HOME")
        .map(|h| Path::new(&h).join(".local/share/uforge"))
        .unwrap_or_else(|| PathBuf::from("uforge-data"))
}

fn storage(common: &CommonArgs, file: &FileConfig) -> Result<Storage> {
    let data_dir = common
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(default_data_dir);
    let database = match common.database_url.as_ref().or(file.database_url.as_ref()) {
        Some(url) => Database::parse(url)?,
        None => Database::Sqlite(data_dir.join("uforge.db")),
    };
    Ok(Storage { data_dir, database })
}

/// Resolves the storage settings of a `user` subcommand.
pub fn resolve_storage(common: &CommonArgs) -> Result<Storage> {
    storage(common, &file_config(common)?)
}

/// Resolves the settings of `serve`.
pub fn resolve_serve(args: &ServeArgs) -> Result<ServeConfig> {
    let file = file_config(&args.common)?;
    let storage = storage(&args.common, &file)?;
    let listen_text = args
        .listen
        .clone()
        .or_else(|| file.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let listen: SocketAddr = listen_text
        .parse()
        .with_context(|| format!("invalid listen address {listen_text:?} (expected IP:PORT)"))?;
    let cert = args.tls_cert.clone().or_else(|| file.tls_cert.clone());
    let key = args.tls_key.clone().or_else(|| file.tls_key.clone());
    let tls = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => bail!("a TLS certificate needs its key and a key its certificate"),
    };
    let size = |flag: &Option<String>, file: &Option<Size>, default: u64| -> Result<u64> {
        Ok(match (flag, file) {
            (Some(s), _) => parse_size(s)?,
            (None, Some(Size::Bytes(n))) => *n,
            (None, Some(Size::Text(s))) => parse_size(s)?,
            (None, None) => default,
        })
    };
    let max_report_bytes = size(
        &args.max_report_bytes,
        &file.max_report_bytes,
        DEFAULT_MAX_REPORT_BYTES,
    )?;
    let defaults = ReportLimits::default();
    let report_limits = ReportLimits {
        max_entries: args
            .max_report_entries
            .or(file.max_report_entries)
            .unwrap_or(defaults.max_entries),
        max_bytes: size(
            &args.max_report_expanded,
            &file.max_report_expanded,
            defaults.max_bytes,
        )?,
    };
    // Stored reports are read back by the library with its defaults: a report past them
    // would be accepted once and unreadable after.
    if report_limits.max_entries == 0 || report_limits.max_entries > defaults.max_entries {
        bail!(
            "the report entry limit must be between 1 and {}",
            defaults.max_entries
        );
    }
    if report_limits.max_bytes == 0 || report_limits.max_bytes > defaults.max_bytes {
        bail!(
            "the decompressed report limit must be between 1 byte and {} bytes",
            defaults.max_bytes
        );
    }
    if max_report_bytes == 0 {
        bail!("the report size limit must be at least one byte");
    }
    let image_workers = args
        .image_workers
        .or(file.image_workers)
        .unwrap_or(DEFAULT_IMAGE_WORKERS);
    if image_workers > MAX_IMAGE_WORKERS {
        bail!("{image_workers} image workers is too many: at most {MAX_IMAGE_WORKERS}");
    }
    Ok(ServeConfig {
        storage,
        listen,
        tls,
        max_report_bytes,
        keyring: args.keyring.clone().or(file.keyring),
        image_workers,
        report_limits,
        allow_local_repos: args.allow_local_repos || file.allow_local_repos.unwrap_or(false),
    })
}

/// Parses `1048576`, `512K`, `64MiB`, `1G`... (K, M, G are powers of 1024, as the binary units).
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .with_context(|| format!("invalid size {text:?}: expected a number of bytes"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        u => bail!("invalid size {text:?}: unknown unit {u:?}"),
    };
    n.checked_mul(1 << shift)
        .with_context(|| format!("size {text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("64 M").unwrap(), 64 << 20);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("1Q").is_err());
    }

    #[test]
    fn databases() {
        assert_eq!(
            Database::parse("postgres://u@h/db").unwrap(),
            Database::Postgres("postgres://u@h/db".into())
        );
        assert_eq!(
            Database::parse("sqlite:///x/y.db").unwrap(),
            Database::Sqlite("/x/y.db".into())
        );
        assert_eq!(
            Database::parse("/x/y.db").unwrap(),
            Database::Sqlite("/x/y.db".into())
        );
        assert!(Database::parse("mysql://h/db").is_err());
    }

    #[test]
    fn precedence_flag_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nmax_report_bytes = \"2K\"\ndata_dir = \"/from/file\"\n\
             image_workers = 3\n",
        )
        .unwrap();
        let mut args = ServeArgs::default();
        args.common.config = Some(file);
        let c = resolve_serve(&args).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.max_report_bytes, 2048);
        assert_eq!(c.storage.data_dir, Path::new("/from/file"));
        assert_eq!(c.image_workers, 3);
        args.listen = Some("127.0.0.1:0".into());
        args.common.data_dir = Some("/from/flag".into());
        let c = resolve_serve(&args).unwrap();
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.storage.data_dir, Path::new("/from/flag"));
        args.image_workers = Some(0);
        assert_eq!(resolve_serve(&args).unwrap().image_workers, 0);
        args.image_workers = Some(MAX_IMAGE_WORKERS + 1);
        assert!(resolve_serve(&args).is_err());
        args.image_workers = Some(0);
        assert_eq!(
            c.storage.database,
            Database::Sqlite("/from/flag/uforge.db".into())
        );
    }
}
