#![allow(clippy::unwrap_used, clippy::expect_used)]

use cap_audit::{AuditConfig, AuditLog, Entry, Signer};
use cap_storage::{AnyPool, Backend};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

fn postgres_base() -> String {
    std::env::var("CAP_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database of the test's own: the chain is global to a database, and the tamper tests
/// disable its triggers, so no other test may share it.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(db: Db) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        Ok(match db {
            Db::Sqlite => Self {
                url: cap_storage::sqlite_url(&dir.path().join("audit.db")),
                backend: Backend::Sqlite,
                _dir: dir,
            },
            Db::Postgres => {
                sqlx::any::install_default_drivers();
                let name = format!("audit_{}", uuid::Uuid::new_v4().simple());
                let admin = AnyPool::connect(&postgres_base()).await?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&admin)
                    .await?;
                admin.close().await;
                let base = postgres_base();
                let root = base.rsplit_once('/').map(|(root, _)| root).unwrap_or(&base);
                Self {
                    url: format!("{root}/{name}"),
                    backend: Backend::Postgres,
                    _dir: dir,
                }
            }
        })
    }

    /// A signer kept in this test's directory.
    pub fn signer(&self) -> Signer {
        Signer::load_or_create(self._dir.path()).unwrap()
    }

    pub fn key_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub async fn open(&self, config: AuditConfig) -> AuditLog {
        AuditLog::open(&self.url, Some(self.signer()), config)
            .await
            .unwrap()
    }
}

pub fn entry(n: usize) -> Entry {
    Entry::new(
        if n.is_multiple_of(2) {
            "alice"
        } else {
            "supervisor"
        },
        "task.submitted",
        &format!("task-{n}"),
        serde_json::json!({ "n": n, "prompt": "Fix the bug" }),
    )
}

/// Lets the test tamper: drops (SQLite) or disables (PostgreSQL) the append-only triggers.
pub async fn unguard(pool: &AnyPool, backend: Backend) {
    match backend {
        Backend::Sqlite => {
            for trigger in [
                "audit_records_no_update",
                "audit_records_no_delete",
                "audit_checkpoints_no_update",
                "audit_checkpoints_no_delete",
            ] {
                sqlx::query(&format!("DROP TRIGGER {trigger}"))
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
        Backend::Postgres => {
            for table in ["audit_records", "audit_checkpoints"] {
                sqlx::query(&format!("ALTER TABLE {table} DISABLE TRIGGER USER"))
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
    }
}

/// Declares `<name>::sqlite` and `<name>::postgres` tests running `async fn <name>(Db)`.
macro_rules! both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Db::Sqlite).await;
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(super::Db::Postgres).await;
            }
        }
    )*};
}
pub(crate) use both_databases;
