//! The database: SQLite by default, PostgreSQL at scale, one schema and one set of queries for
//! both (a diesel `MultiConnection`), a connection pool, and migrations run at start.

pub mod models;
pub mod publish;
pub mod queries;
pub mod schema;

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use chrono::{NaiveDateTime, Timelike, Utc};
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::Database;

/// A connection to either database.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    /// PostgreSQL.
    Postgresql(PgConnection),
    /// SQLite.
    Sqlite(SqliteConnection),
}

// The SQL differs (AUTOINCREMENT against BIGSERIAL, BLOB against BYTEA), the tables do not.
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Opens connections of the configured kind. Written out rather than diesel's
/// `ConnectionManager` because `MultiConnection::establish` tries each backend in turn, and
/// SQLite accepts any string as a file name: a PostgreSQL URL whose server is down would
/// silently become a local file.
pub struct Manager {
    database: Database,
}

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, Self::Error> {
        match &self.database {
            Database::Postgres(url) => PgConnection::establish(&without_gss_probe(
                url,
                std::env::var_os("PGGSSENCMODE").is_some(),
            ))
            .map(AnyConnection::Postgresql)
            .map_err(diesel::r2d2::Error::ConnectionError),
            Database::Sqlite(path) => {
                let url = path.to_str().ok_or_else(|| {
                    diesel::r2d2::Error::ConnectionError(diesel::ConnectionError::BadConnection(
                        format!("{} is not valid UTF-8", path.display()),
                    ))
                })?;
                let mut c = SqliteConnection::establish(url)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // WAL lets readers run beside the writer; the busy timeout makes concurrent
                // writers (several requests, or `user add` beside a running server) wait
                // rather than fail.
                c.batch_execute(
                    "PRAGMA busy_timeout = 15000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )
                .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(AnyConnection::Sqlite(c))
            }
        }
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        conn.is_broken()
    }
}

/// The URL with `gssencmode=disable` unless it (or `PGGSSENCMODE`) chooses a mode. libpq's
/// default, `prefer`, initialises Kerberos on every connect, from several pool threads at once,
/// and bookworm's libkrb5 can abort the process there (`krb5int_getspecific: Assertion`
/// failed); a site that encrypts with GSSAPI says so in the URL.
fn without_gss_probe(url: &str, env_chooses: bool) -> String {
    if env_chooses || url.contains("gssencmode=") {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}gssencmode=disable")
}

/// A pooled connection.
pub type Conn = PooledConnection<Manager>;

/// The database: a pool of connections.
#[derive(Clone)]
pub struct Db {
    pool: Pool<Manager>,
    description: String,
}

impl Db {
    /// Connects, creating the SQLite file if needed, and brings the schema up to date.
    pub fn open(database: &Database) -> Result<Db> {
        let (size, description) = match database {
            Database::Sqlite(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
                (8, format!("SQLite {}", p.display()))
            }
            Database::Postgres(url) => (16, format!("PostgreSQL {}", redact(url))),
        };
        let pool = Pool::builder()
            .max_size(size)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(30))
            .build(Manager {
                database: database.clone(),
            })
            .with_context(|| format!("cannot connect to {description}"))?;
        let db = Db { pool, description };
        db.migrate()?;
        Ok(db)
    }

    fn migrate(&self) -> Result<()> {
        let mut conn = self.get()?;
        let applied = match &mut *conn {
            AnyConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
            AnyConnection::Postgresql(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS),
        }
        .map_err(|e| anyhow!("migrating {} failed: {e}", self.description))?;
        for m in applied {
            tracing::info!(migration = %m, "applied");
        }
        Ok(())
    }

    /// A connection from the pool (blocking: call from blocking threads only).
    pub fn get(&self) -> Result<Conn> {
        self.pool
            .get()
            .with_context(|| format!("no connection to {}", self.description))
    }

    /// What the database is, for messages (passwords removed).
    pub fn description(&self) -> &str {
        &self.description
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Now, in UTC, at the microsecond precision both databases keep, so that what is written
/// reads back identical.
pub fn now() -> NaiveDateTime {
    let t = Utc::now().naive_utc();
    t.with_nanosecond(t.nanosecond() / 1000 * 1000).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(super::redact("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn kerberos_is_not_probed_unless_asked_for() {
        assert_eq!(
            super::without_gss_probe("postgres://h/db", false),
            "postgres://h/db?gssencmode=disable"
        );
        assert_eq!(
            super::without_gss_probe("postgres://h/db?sslmode=require", false),
            "postgres://h/db?sslmode=require&gssencmode=disable"
        );
        assert_eq!(
            super::without_gss_probe("postgres://h/db?gssencmode=require", false),
            "postgres://h/db?gssencmode=require"
        );
        assert_eq!(
            super::without_gss_probe("postgres://h/db", true),
            "postgres://h/db"
        );
    }
}
