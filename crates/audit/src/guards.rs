//! Triggers that refuse UPDATE and DELETE of the audit records and checkpoints. Their syntax
//! differs between SQLite and PostgreSQL, so they are installed here, after the portable
//! migrations, instead of in a migration file both drivers read.

use cap_storage::{AnyPool, Backend};

use crate::Result;

/// The append-only tables.
const TABLES: [&str; 2] = ["audit_records", "audit_checkpoints"];

/// Installs the triggers (idempotent; several processes may start at once).
pub(crate) async fn install(pool: &AnyPool, backend: Backend) -> Result<()> {
    let mut tx = cap_storage::begin_write(pool, backend).await?;
    match backend {
        Backend::Sqlite => {
            for table in TABLES {
                for operation in ["UPDATE", "DELETE"] {
                    let sql = format!(
                        "CREATE TRIGGER IF NOT EXISTS {table}_no_{op} BEFORE {operation} ON \
                         {table} BEGIN SELECT RAISE(ABORT, '{table} is append-only: \
                         {operation} refused'); END",
                        op = operation.to_ascii_lowercase()
                    );
                    sqlx::query(&sql).execute(&mut *tx).await?;
                }
            }
        }
        Backend::Postgres => {
            // Replicas starting at once would race on the catalog: one at a time.
            sqlx::query("SELECT pg_advisory_xact_lock(3001)")
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger \
                 LANGUAGE plpgsql AS $$ BEGIN \
                 RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP; \
                 END; $$",
            )
            .execute(&mut *tx)
            .await?;
            for table in TABLES {
                let name = format!("{table}_append_only");
                sqlx::query(&format!("DROP TRIGGER IF EXISTS {name} ON {table}"))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(&format!(
                    "CREATE TRIGGER {name} BEFORE UPDATE OR DELETE ON {table} \
                     FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
                ))
                .execute(&mut *tx)
                .await?;
                // TRUNCATE skips row triggers: refuse it per statement.
                sqlx::query(&format!(
                    "DROP TRIGGER IF EXISTS {name}_truncate ON {table}"
                ))
                .execute(&mut *tx)
                .await?;
                sqlx::query(&format!(
                    "CREATE TRIGGER {name}_truncate BEFORE TRUNCATE ON {table} \
                     FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
                ))
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}
