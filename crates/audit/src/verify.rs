//! Verification: the whole chain recomputed, every signed checkpoint checked against it, and
//! the first broken record named.

use std::collections::HashMap;

use base64::Engine as _;
use cap_storage::AnyPool;
use sqlx::Row;

use crate::{Checkpoint, PublicKey, RECORD_COLUMNS, Result, hash, record_from_row};

/// Records read per query.
const PAGE: i64 = 1000;

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Records in the chain.
    pub records: i64,
    /// Signed checkpoints stored.
    pub checkpoints: usize,
    /// The newest checkpoint that checked out (signature and head).
    pub last_checkpoint: Option<Checkpoint>,
    /// The first thing broken, by sequence number; `None` when the log is intact.
    pub problem: Option<Problem>,
}

impl Report {
    /// Whether the log is intact.
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }
}

/// The first broken record and how it is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The broken record's sequence number.
    pub seq: i64,
    /// Its action as stored, when the record is there.
    pub action: Option<String>,
    /// How it is broken.
    pub kind: Broken,
}

/// How a record or checkpoint is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// Its hash does not match its content: a field was changed.
    Changed,
    /// It is missing: the chain jumps from the record before it to `next`.
    Deleted {
        /// The next record present.
        next: i64,
    },
    /// Its `prev_hash` does not match the previous record's hash: moved or re-linked.
    Relinked,
    /// The chain ends before it, though the head or a signed checkpoint says it exists.
    Truncated {
        /// How many records the head or checkpoint says there are.
        expected: i64,
    },
    /// The checkpoint signed at it has a signature its key does not verify.
    BadSignature,
    /// The checkpoint signed at it names a key that is not trusted.
    UntrustedKey {
        /// The fingerprint it names.
        fingerprint: String,
    },
    /// The checkpoint signed at it holds another head hash than the chain has there.
    CheckpointMismatch,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {}", self.seq)?;
        if let Some(action) = &self.action {
            write!(f, " ({action})")?;
        }
        match &self.kind {
            Broken::Changed => write!(f, ": changed, its hash does not match its content"),
            Broken::Deleted { next } => write!(
                f,
                ": deleted, the chain goes on at record {next} (records {}..{next} missing)",
                self.seq
            ),
            Broken::Relinked => write!(
                f,
                ": reordered or re-linked, its prev_hash does not match the previous record's hash"
            ),
            Broken::Truncated { expected } => write!(
                f,
                ": deleted from the tail, the chain ends before it but {expected} records were \
                 recorded"
            ),
            Broken::BadSignature => {
                write!(f, ": the checkpoint signed there has a bad signature")
            }
            Broken::UntrustedKey { fingerprint } => write!(
                f,
                ": the checkpoint signed there names key {fingerprint}, which is not trusted"
            ),
            Broken::CheckpointMismatch => write!(
                f,
                ": its hash does not match the head hash the checkpoint signed there holds"
            ),
        }
    }
}

/// Recomputes the whole chain in `pool`, checks every checkpoint against `trusted` keys and
/// the chain, and names the first broken record.
pub async fn verify(pool: &AnyPool, trusted: &[PublicKey]) -> Result<Report> {
    let checkpoints = load_checkpoints(pool).await?;
    let wanted: HashMap<i64, ()> = checkpoints.iter().map(|c| (c.record_seq, ())).collect();
    // The hash and action of each record a checkpoint signs.
    let mut signed_at: HashMap<i64, (String, String)> = HashMap::new();
    let mut problems: Vec<Problem> = Vec::new();
    let mut expected_seq = 1;
    let mut prev_hash = hash::GENESIS_HASH.to_owned();
    let mut chain_ok = true;
    'pages: loop {
        let rows = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM audit_records WHERE seq >= $1 ORDER BY seq LIMIT $2"
        ))
        .bind(expected_seq)
        .bind(PAGE)
        .fetch_all(pool)
        .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let record = record_from_row(row)?;
            let action = Some(record.action.clone());
            let broken = if record.seq != expected_seq {
                Some((expected_seq, None, Broken::Deleted { next: record.seq }))
            } else if record.prev_hash != prev_hash {
                // Before the content: two records swapped are each intact but out of place.
                Some((record.seq, action, Broken::Relinked))
            } else if hash::record_hash(&record.fields()) != record.hash {
                Some((record.seq, action, Broken::Changed))
            } else {
                None
            };
            if let Some((seq, action, kind)) = broken {
                problems.push(Problem { seq, action, kind });
                chain_ok = false;
                break 'pages;
            }
            if wanted.contains_key(&record.seq) {
                signed_at.insert(record.seq, (record.hash.clone(), record.action.clone()));
            }
            prev_hash = record.hash;
            expected_seq += 1;
        }
    }
    let chain_len = expected_seq - 1;
    let records: i64 = sqlx::query("SELECT COUNT(*) AS records FROM audit_records")
        .fetch_one(pool)
        .await?
        .try_get("records")?;
    let head: Option<i64> = sqlx::query("SELECT seq FROM audit_head WHERE id = 1")
        .fetch_optional(pool)
        .await?
        .map(|row| row.try_get("seq"))
        .transpose()?;
    if chain_ok && let Some(head) = head.filter(|head| *head > chain_len) {
        problems.push(Problem {
            seq: chain_len + 1,
            action: None,
            kind: Broken::Truncated { expected: head },
        });
    }
    let mut last_checkpoint = None;
    for checkpoint in &checkpoints {
        let seq = checkpoint.record_seq;
        let stored = signed_at.get(&seq);
        let action = stored.map(|(_, action)| action.clone());
        let kind = check_signature(checkpoint, trusted).or_else(|| {
            if !chain_ok {
                None // judged by the chain's own break, which comes first or matters more
            } else if seq > chain_len {
                Some(Broken::Truncated { expected: seq })
            } else if stored.is_some_and(|(hash, _)| *hash != checkpoint.head_hash) {
                Some(Broken::CheckpointMismatch)
            } else {
                None
            }
        });
        match kind {
            Some(Broken::Truncated { expected }) => problems.push(Problem {
                seq: chain_len + 1,
                action: None,
                kind: Broken::Truncated { expected },
            }),
            Some(kind) => problems.push(Problem { seq, action, kind }),
            None if chain_ok || stored.is_some() => last_checkpoint = Some(checkpoint.clone()),
            None => {}
        }
    }
    // The first by sequence number; at one record, the chain's own break before a checkpoint's.
    let problem = problems.into_iter().min_by_key(|problem| problem.seq);
    Ok(Report {
        records,
        checkpoints: checkpoints.len(),
        last_checkpoint,
        problem,
    })
}

/// Why the checkpoint's signature does not hold, if it does not.
fn check_signature(checkpoint: &Checkpoint, trusted: &[PublicKey]) -> Option<Broken> {
    let Some(key) = trusted
        .iter()
        .find(|key| key.fingerprint() == checkpoint.key_fingerprint)
    else {
        return Some(Broken::UntrustedKey {
            fingerprint: checkpoint.key_fingerprint.clone(),
        });
    };
    let message = hash::checkpoint_message(
        checkpoint.record_seq,
        &checkpoint.head_hash,
        checkpoint.created_at_ms,
        &checkpoint.key_fingerprint,
    );
    let signature = base64::engine::general_purpose::STANDARD
        .decode(&checkpoint.signature)
        .unwrap_or_default();
    (!key.verifies(&message, &signature)).then_some(Broken::BadSignature)
}

/// Every checkpoint, oldest first.
pub(crate) async fn load_checkpoints(pool: &AnyPool) -> Result<Vec<Checkpoint>> {
    let rows = sqlx::query(
        "SELECT record_seq, head_hash, created_at_ms, key_fingerprint, signature \
         FROM audit_checkpoints ORDER BY record_seq",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Checkpoint {
                record_seq: row.try_get("record_seq")?,
                head_hash: row.try_get("head_hash")?,
                created_at_ms: row.try_get("created_at_ms")?,
                key_fingerprint: row.try_get("key_fingerprint")?,
                signature: row.try_get("signature")?,
            })
        })
        .collect()
}
