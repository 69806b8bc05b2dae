//! SQL store connections for the services that own data (the supervisor's tasks and events,
//! the GitHub service's pull requests).
//!
//! One `sqlx::AnyPool` type serves both drivers: SQLite (the embedded default, a file under the
//! data directory) and PostgreSQL (when the URL starts with `postgres://`). Each owner keeps
//! one migration directory written in the SQL both accept (TEXT, BIGINT, INTEGER, `$n`
//! placeholders), so the schema cannot drift between them.

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;

pub use sqlx::AnyPool;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database URL names a driver this build does not have.
    #[error("unsupported database URL {0:?}: expected sqlite:// or postgres://")]
    UnsupportedUrl(String),
    /// The database could not be reached or opened.
    #[error("cannot open database {url}")]
    Connect {
        /// The URL with any password removed.
        url: String,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// Migrations failed.
    #[error("database migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Which database a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, the embedded default.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// The backend a URL names.
    pub fn of_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(Error::UnsupportedUrl(redact(url)))
        }
    }
}

/// The URL of a SQLite file, created if missing.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// Opens a pool on `url` and runs `migrator`.
///
/// Several owners may share one PostgreSQL database, each with its own migrations, so
/// migrations another owner applied are not an error here (`ignore_missing`); owners keep their
/// version numbers apart (supervisor 1xxx, GitHub service 2xxx).
pub async fn open(url: &str, migrator: &Migrator) -> Result<AnyPool> {
    let backend = Backend::of_url(url)?;
    install_default_drivers();
    let options = AnyPoolOptions::new()
        .acquire_timeout(Duration::from_secs(10))
        // SQLite allows one writer; a small pool avoids lock contention without hurting reads.
        .max_connections(match backend {
            Backend::Sqlite => 4,
            Backend::Postgres => 10,
        });
    let pool = options
        .connect(url)
        .await
        .map_err(|source| Error::Connect {
            url: redact(url),
            source,
        })?;
    if backend == Backend::Sqlite {
        // WAL lets readers (the gateway's watchers) proceed while the workflow writes.
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await
            .map_err(|source| Error::Connect {
                url: redact(url),
                source,
            })?;
    }
    let mut migrator = Migrator {
        ignore_missing: true,
        ..clone_migrator(migrator)
    };
    migrator.set_locking(backend == Backend::Postgres);
    migrator.run(&pool).await?;
    tracing::debug!(url = %redact(url), "database ready");
    Ok(pool)
}

fn clone_migrator(migrator: &Migrator) -> Migrator {
    Migrator {
        migrations: migrator.migrations.clone(),
        ignore_missing: migrator.ignore_missing,
        locking: migrator.locking,
        no_tx: migrator.no_tx,
    }
}

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Begins a transaction that will write. On SQLite it takes the write lock at once
/// (`BEGIN IMMEDIATE`), waiting out another writer within the busy timeout: a deferred
/// transaction that reads first and writes later is refused at the upgrade (`SQLITE_BUSY`)
/// without any wait when another writer is active. PostgreSQL's plain `BEGIN` is right there.
pub async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
) -> std::result::Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => pool.begin().await,
    }
}

/// Whether `error` is contention or a passing outage, so the same statement may succeed when
/// run again: no connection free in time, the connection lost, SQLite busy or locked,
/// PostgreSQL's serialization failures, deadlocks, connection errors and shutdowns.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(database) => {
            let code = database.code().unwrap_or_default();
            // SQLite: SQLITE_BUSY (5), SQLITE_LOCKED (6) and their extended codes (517, ...).
            let sqlite = code
                .parse::<i32>()
                .is_ok_and(|code| matches!(code & 0xff, 5 | 6));
            // PostgreSQL: serialization_failure, deadlock_detected, connection exceptions, and
            // the server going away or not up yet (admin_shutdown, crash_shutdown,
            // cannot_connect_now): a query in flight when the server stops gets 57P01, and a
            // server restarted comes back.
            let postgres = code == "40001"
                || code == "40P01"
                || code.starts_with("08")
                || matches!(code.as_ref(), "57P01" | "57P02" | "57P03");
            sqlite || postgres
        }
        _ => false,
    }
}

/// Milliseconds since the Unix epoch, the store's timestamp format.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
