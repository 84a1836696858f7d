//! What each subcommand does.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use uforge_core::blobstore::LocalBlobStore;

use crate::api::{self, AppState};
use crate::auth;
use crate::cli::{Cli, Command, CommonArgs, ServeArgs, UserCommand};
use crate::config;
use crate::datadir::DataDir;
use crate::db::{queries, Db};
use crate::jobs::Jobs;
use crate::{server, tls};

/// The user created on first start, so that a fresh server can be used at once.
pub const ADMIN: &str = "admin";

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::User(UserCommand::Add {
            name,
            admin,
            common,
        }) => user_add(&common, &name, admin),
        Command::User(UserCommand::List { common }) => user_list(&common),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("UFORGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// User names end up in paths (the user's package repository) and in Basic credentials
/// (`USER:TOKEN`), so they are kept to a safe alphabet.
fn check_user_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        bail!("invalid user name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-'");
    }
    Ok(())
}

/// Creates a user; `None` if the name is taken. Returns the token's text.
fn create_user(db: &Db, name: &str, admin: bool) -> Result<Option<String>> {
    check_user_name(name)?;
    let (token, sha) = auth::new_token()?;
    let mut c = db.get()?;
    let created = queries::create_user(&mut c, name, &sha, admin)
        .with_context(|| format!("cannot create user {name}"))?;
    Ok(created.map(|_| token))
}

fn open_storage(common: &CommonArgs) -> Result<(config::Storage, Db)> {
    let storage = config::resolve_storage(common)?;
    DataDir::create(&storage.data_dir)?;
    let db = Db::open(&storage.database)?;
    Ok((storage, db))
}

fn user_add(common: &CommonArgs, name: &str, admin: bool) -> Result<()> {
    let (_, db) = open_storage(common)?;
    match create_user(&db, name, admin)? {
        Some(token) => {
            println!("created user {name}; API token (shown once, keep it): {token}");
            Ok(())
        }
        None => bail!("user {name} already exists"),
    }
}

fn user_list(common: &CommonArgs) -> Result<()> {
    let (_, db) = open_storage(common)?;
    let users = queries::list_users(&mut *db.get()?)?;
    println!("{:<32} {:<6} CREATED", "NAME", "ADMIN");
    for u in users {
        println!(
            "{:<32} {:<6} {}",
            u.name,
            if u.admin { "yes" } else { "no" },
            api::rfc3339(u.created_at)
        );
    }
    Ok(())
}

fn serve(args: &ServeArgs) -> Result<()> {
    let cfg = config::resolve_serve(args)?;
    init_logging();
    crate::repo_policy::set_allow_local(cfg.allow_local_repos);
    let data = DataDir::create(&cfg.storage.data_dir)?;
    let partial = data.remove_partial_uploads()?;
    if partial > 0 {
        tracing::info!(
            files = partial,
            "removed uploads interrupted by the last stop"
        );
    }
    let db = Db::open(&cfg.storage.database)?;
    let blobs = LocalBlobStore::open(data.blobs())
        .with_context(|| format!("cannot open the blob store {}", data.blobs().display()))?;
    let staged = data.remove_stale_staging(&blobs)?;
    if staged > 0 {
        tracing::info!(
            batches = staged,
            "removed blob staging left by processes that are gone"
        );
    }
    let identity = tls::load(cfg.tls.as_ref(), &data.tls())?;
    // Once the database and certificate exist: files created just now are made private too.
    let made_private = data.make_private()?;
    if made_private > 0 {
        tracing::info!(entries = made_private, "made stored data private");
    }
    let blobs = Arc::new(blobs);
    let key = Arc::new(crate::sealing::SealingKey::load_or_create(
        &data.secret_key(),
    )?);
    let admin_exists = queries::user_by_name(&mut *db.get()?, ADMIN)?.is_some();
    let admin_token = if admin_exists {
        None
    } else {
        create_user(&db, ADMIN, true)?
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(cfg.listen))
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    // Only once the address is ours: a server that cannot start must not claim jobs.
    let jobs = Arc::new(Jobs::start(
        db.clone(),
        data.clone(),
        blobs.clone(),
        cfg.keyring.clone(),
        key.clone(),
        cfg.image_workers,
    )?);
    let served = runtime.block_on(async {
        let addr = listener.local_addr()?;
        tracing::info!(
            data_dir = %data.root().display(),
            database = db.description(),
            "ready"
        );
        println!(
            "{} TLS certificate {} SHA-256 fingerprint: {}",
            if identity.generated {
                "generated"
            } else {
                "using"
            },
            identity.cert_path.display(),
            identity.fingerprint
        );
        if let Some(token) = admin_token {
            println!("created user {ADMIN}; API token (shown once, keep it): {token}");
        }
        // The base URL, as agents take it (`uforge-scan run -U URL`); the API is under it.
        println!(
            "uforge-server {} listening on https://{addr} (API under {})",
            env!("CARGO_PKG_VERSION"),
            api::PREFIX
        );
        let state = Arc::new(AppState {
            db,
            data,
            blobs,
            max_report_bytes: cfg.max_report_bytes,
            report_limits: cfg.report_limits,
            keyring: cfg.keyring.clone(),
            busy: Mutex::new(Default::default()),
            recreating: tokio::sync::Mutex::new(()),
            key,
            jobs: jobs.clone(),
        });
        server::serve(listener, identity.config, api::router(state)).await
    });
    jobs.shutdown();
    served
}

#[cfg(test)]
mod tests {
    #[test]
    fn user_names() {
        for ok in ["admin", "alice.b", "a_1-2"] {
            super::check_user_name(ok).unwrap();
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "é", &"x".repeat(65)] {
            assert!(super::check_user_name(bad).is_err(), "{bad}");
        }
    }
}
