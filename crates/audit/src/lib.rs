//! The platform's audit log: who asked for what, what the agents did, who approved what and
//! when, with the exact diff of every commit.
//!
//! Records are append-only and hash-chained (each record's hash covers its fields and the
//! previous record's hash; the encoding is in `hash.rs`), kept in the SQL store beside the
//! supervisor's tables (SQLite or PostgreSQL, one `AnyPool`). Appends are serialized by a
//! one-row head table updated first in each append's transaction, so several writers (two
//! supervisor replicas on one PostgreSQL included) leave one contiguous chain without a gap or
//! fork. Triggers refuse UPDATE and DELETE of records and checkpoints on both databases. The
//! chain's head is signed (Ed25519) every [`AuditConfig::checkpoint_every`] records and every
//! [`AuditConfig::checkpoint_interval`]; [`verify`] recomputes the chain, checks every signed
//! checkpoint and names the first broken record.

mod guards;
pub mod hash;
mod keys;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use cap_storage::{AnyPool, Backend};
use sqlx::Row;
use sqlx::any::AnyRow;

pub use keys::{PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, PublicKey, Signer};
pub use verify::{Broken, Problem, Report, verify};

/// The audit log's migrations (versions 3xxx).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Errors of the audit log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store could not be opened.
    #[error("audit store")]
    Storage(#[from] cap_storage::Error),
    /// A query failed.
    #[error("audit log query failed")]
    Sql(#[from] sqlx::Error),
    /// The details could not be written as JSON.
    #[error("audit details are not valid JSON")]
    Json(#[from] serde_json::Error),
    /// A record to append is not valid; the message names the field.
    #[error("audit record: {0}")]
    InvalidRecord(String),
    /// A key file could not be read or written.
    #[error("audit key file {path}")]
    KeyFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A key is not what it should be.
    #[error("audit key: {0}")]
    Key(String),
    /// The stored head or a stored value does not make sense.
    #[error("audit log is corrupt: {0}")]
    Corrupt(String),
}

impl Error {
    /// Whether the same append may succeed when tried again (contention, a passing outage).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Sql(error) => cap_storage::is_transient(error),
            Self::Storage(_)
            | Self::Json(_)
            | Self::InvalidRecord(_)
            | Self::KeyFile { .. }
            | Self::Key(_)
            | Self::Corrupt(_) => false,
        }
    }
}

/// Result of the audit log.
pub type Result<T> = std::result::Result<T, Error>;

/// When the chain's head is signed.
#[derive(Debug, Clone, Copy)]
pub struct AuditConfig {
    /// Sign the head in the append that makes its sequence number a multiple of this (0: never
    /// by count).
    pub checkpoint_every: u64,
    /// Sign the head this often when it moved since the last checkpoint
    /// ([`AuditLog::spawn_checkpoints`]).
    pub checkpoint_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_every: 100,
            checkpoint_interval: Duration::from_secs(60),
        }
    }
}

/// A record to append.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Who acted: a user name (`alice`) or a service (`supervisor`).
    pub actor: String,
    /// What was done: a short dotted name (`task.submitted`, `commit.created`).
    pub action: String,
    /// The task it concerns; empty for none.
    pub task_id: String,
    /// The details (for a commit: its exact unified diff).
    pub details: serde_json::Value,
}

impl Entry {
    /// An entry of `action` by `actor` on `task_id`.
    pub fn new(actor: &str, action: &str, task_id: &str, details: serde_json::Value) -> Self {
        Self {
            actor: actor.to_owned(),
            action: action.to_owned(),
            task_id: task_id.to_owned(),
            details,
        }
    }
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1, 2, 3, ... without gaps.
    pub seq: i64,
    /// Milliseconds since the epoch.
    pub created_at_ms: i64,
    /// Who acted.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// The task, or empty.
    pub task_id: String,
    /// The details as stored (JSON).
    pub details_json: String,
    /// The previous record's hash ([`hash::GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

impl Record {
    fn fields(&self) -> hash::RecordFields<'_> {
        hash::RecordFields {
            seq: self.seq,
            created_at_ms: self.created_at_ms,
            actor: &self.actor,
            action: &self.action,
            task_id: &self.task_id,
            details_json: &self.details_json,
            prev_hash: &self.prev_hash,
        }
    }
}

/// A stored, signed checkpoint of the chain's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The head's sequence number.
    pub record_seq: i64,
    /// The head's hash.
    pub head_hash: String,
    /// When it was signed, milliseconds since the epoch.
    pub created_at_ms: i64,
    /// The signing key's fingerprint ([`PublicKey::fingerprint`]).
    pub key_fingerprint: String,
    /// The Ed25519 signature over [`hash::checkpoint_message`], base64.
    pub signature: String,
}

/// Longest actor or action name, in bytes.
const MAX_NAME_BYTES: usize = 200;

/// The audit log over one store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    pool: AnyPool,
    backend: Backend,
    signer: Option<Arc<Signer>>,
    config: AuditConfig,
}

impl AuditLog {
    /// Opens the audit log at `database_url` (running its migrations and installing its
    /// triggers), signing checkpoints with `signer` (none: records are chained, not signed).
    pub async fn open(
        database_url: &str,
        signer: Option<Signer>,
        config: AuditConfig,
    ) -> Result<Self> {
        let backend = Backend::of_url(database_url)?;
        let pool = cap_storage::open(database_url, &MIGRATOR).await?;
        guards::install(&pool, backend).await?;
        Ok(Self {
            pool,
            backend,
            signer: signer.map(Arc::new),
            config,
        })
    }

    /// The same log, signing its checkpoints with `signer` from now on.
    pub fn with_signer(mut self, signer: Signer) -> Self {
        self.signer = Some(Arc::new(signer));
        self
    }

    /// The pool (for [`verify`]).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The public key checkpoints are signed with, if any.
    pub fn public_key(&self) -> Option<&PublicKey> {
        self.signer.as_deref().map(Signer::public_key)
    }

    /// Appends `entries` after the chain's head, in order, in one transaction: all are stored
    /// or none. Returns them as stored.
    pub async fn append_all(&self, entries: &[Entry]) -> Result<Vec<Record>> {
        for entry in entries {
            validate(entry)?;
        }
        let mut tx = cap_storage::begin_write(&self.pool, self.backend).await?;
        // Taking the head's row first serializes appenders: PostgreSQL holds its row lock until
        // commit, SQLite's `BEGIN IMMEDIATE` already holds the write lock.
        let head = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::Corrupt("the audit_head row is missing".into()))?;
        let mut seq: i64 = head.try_get("seq")?;
        let mut prev_hash: String = head.try_get("hash")?;
        let now = cap_storage::now_ms();
        let mut records = Vec::with_capacity(entries.len());
        for entry in entries {
            seq += 1;
            let mut record = Record {
                seq,
                created_at_ms: now,
                actor: entry.actor.clone(),
                action: entry.action.clone(),
                task_id: entry.task_id.clone(),
                details_json: serde_json::to_string(&entry.details)?,
                prev_hash: std::mem::take(&mut prev_hash),
                hash: String::new(),
            };
            record.hash = hash::record_hash(&record.fields());
            prev_hash = record.hash.clone();
            sqlx::query(
                "INSERT INTO audit_records (seq, created_at_ms, actor, action, task_id, \
                 details_json, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(record.seq)
            .bind(record.created_at_ms)
            .bind(&record.actor)
            .bind(&record.action)
            .bind(&record.task_id)
            .bind(&record.details_json)
            .bind(&record.prev_hash)
            .bind(&record.hash)
            .execute(&mut *tx)
            .await?;
            records.push(record);
        }
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(seq)
            .bind(&prev_hash)
            .execute(&mut *tx)
            .await?;
        let every = i64::try_from(self.config.checkpoint_every).unwrap_or(i64::MAX);
        let first = seq - i64::try_from(entries.len()).unwrap_or(0) + 1;
        let crossed = every > 0 && (first..=seq).any(|s| s % every == 0);
        if crossed && let Some(signer) = &self.signer {
            insert_checkpoint(&mut tx, signer, seq, &prev_hash).await?;
        }
        tx.commit().await?;
        Ok(records)
    }

    /// [`AuditLog::append_all`], tried again (5 attempts, waits doubling from 50 ms) while
    /// the error is transient (contention, a passing outage): what services call after an
    /// action took effect, so a busy store does not lose its record. When it still fails,
    /// each entry is logged whole before the error is returned, so none disappears unseen.
    pub async fn append_retrying(&self, entries: &[Entry]) -> Result<Vec<Record>> {
        const ATTEMPTS: u32 = 5;
        let mut wait = Duration::from_millis(50);
        let mut attempt = 1;
        loop {
            match self.append_all(entries).await {
                Err(error) if error.is_transient() && attempt < ATTEMPTS => {
                    tracing::warn!(attempt, error = %error, "audit append failed; trying again");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
                Err(error) => {
                    for entry in entries {
                        tracing::error!(
                            task_id = %entry.task_id, actor = %entry.actor,
                            action = %entry.action, details = %entry.details,
                            error = %error, cause = ?std::error::Error::source(&error),
                            "could not write an audit record"
                        );
                    }
                    return Err(error);
                }
                Ok(records) => return Ok(records),
            }
        }
    }

    /// Appends one record.
    pub async fn append(&self, entry: Entry) -> Result<Record> {
        self.append_all(std::slice::from_ref(&entry))
            .await?
            .pop()
            .ok_or_else(|| Error::Corrupt("an append stored nothing".into()))
    }

    /// Signs the chain's head now if it moved since the last checkpoint; returns the new
    /// checkpoint, or `None` when there was nothing new (or no signer).
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let mut tx = cap_storage::begin_write(&self.pool, self.backend).await?;
        let head = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::Corrupt("the audit_head row is missing".into()))?;
        let seq: i64 = head.try_get("seq")?;
        let hash: String = head.try_get("hash")?;
        let signed: i64 =
            sqlx::query("SELECT COALESCE(MAX(record_seq), 0) AS signed FROM audit_checkpoints")
                .fetch_one(&mut *tx)
                .await?
                .try_get("signed")?;
        if seq == 0 || signed >= seq {
            return Ok(None);
        }
        let checkpoint = insert_checkpoint(&mut tx, signer, seq, &hash).await?;
        tx.commit().await?;
        Ok(Some(checkpoint))
    }

    /// Signs the head every [`AuditConfig::checkpoint_interval`] when it moved, for the life
    /// of the process; a failure is logged and tried again at the next tick.
    pub fn spawn_checkpoints(&self) -> tokio::task::JoinHandle<()> {
        let log = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(log.config.checkpoint_interval);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if let Err(error) = log.checkpoint().await {
                    tracing::error!(error = %error, cause = ?std::error::Error::source(&error), "could not sign the audit log's head");
                }
            }
        })
    }

    /// Records, oldest first, of `task_id` (all tasks when `None`), the last `limit` of them.
    pub async fn records(&self, task_id: Option<&str>, limit: u32) -> Result<Vec<Record>> {
        records(&self.pool, task_id, limit).await
    }
}

/// Records of `task_id` (all when `None`), the newest `limit`, oldest first.
pub async fn records(pool: &AnyPool, task_id: Option<&str>, limit: u32) -> Result<Vec<Record>> {
    let rows = match task_id {
        Some(task_id) => {
            sqlx::query(&format!(
                "SELECT {RECORD_COLUMNS} FROM audit_records WHERE task_id = $1 \
                 ORDER BY seq DESC LIMIT $2"
            ))
            .bind(task_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {RECORD_COLUMNS} FROM audit_records ORDER BY seq DESC LIMIT $1"
            ))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        }
    };
    let mut records = rows
        .iter()
        .map(record_from_row)
        .collect::<Result<Vec<_>>>()?;
    records.reverse();
    Ok(records)
}

pub(crate) const RECORD_COLUMNS: &str =
    "seq, created_at_ms, actor, action, task_id, details_json, prev_hash, hash";

pub(crate) fn record_from_row(row: &AnyRow) -> Result<Record> {
    Ok(Record {
        seq: row.try_get("seq")?,
        created_at_ms: row.try_get("created_at_ms")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        task_id: row.try_get("task_id")?,
        details_json: row.try_get("details_json")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

fn validate(entry: &Entry) -> Result<()> {
    for (name, value) in [("actor", &entry.actor), ("action", &entry.action)] {
        if value.trim().is_empty() {
            return Err(Error::InvalidRecord(format!("{name}: must not be empty")));
        }
        if value.len() > MAX_NAME_BYTES {
            return Err(Error::InvalidRecord(format!(
                "{name}: {} bytes; at most {MAX_NAME_BYTES}",
                value.len()
            )));
        }
    }
    if !entry
        .action
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
    {
        return Err(Error::InvalidRecord(format!(
            "action: {:?} is not a dotted lower-case name such as task.submitted",
            entry.action
        )));
    }
    Ok(())
}

async fn insert_checkpoint(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    signer: &Signer,
    record_seq: i64,
    head_hash: &str,
) -> Result<Checkpoint> {
    use base64::Engine as _;
    let created_at_ms = cap_storage::now_ms();
    let key_fingerprint = signer.public_key().fingerprint();
    let message = hash::checkpoint_message(record_seq, head_hash, created_at_ms, &key_fingerprint);
    let checkpoint = Checkpoint {
        record_seq,
        head_hash: head_hash.to_owned(),
        created_at_ms,
        key_fingerprint,
        signature: base64::engine::general_purpose::STANDARD.encode(signer.sign(&message)),
    };
    sqlx::query(
        "INSERT INTO audit_checkpoints (record_seq, head_hash, created_at_ms, key_fingerprint, \
         signature) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(checkpoint.record_seq)
    .bind(&checkpoint.head_hash)
    .bind(checkpoint.created_at_ms)
    .bind(&checkpoint.key_fingerprint)
    .bind(&checkpoint.signature)
    .execute(&mut **tx)
    .await?;
    Ok(checkpoint)
}
