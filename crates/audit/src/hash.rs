//! The chain's hash and the checkpoints' signed message, in one documented encoding.
//!
//! A record's hash is SHA-256 over, in this order: the domain tag `cap-audit-record-v1`, then
//! each field as an 8-byte big-endian length followed by its bytes: `seq` (8 bytes, big-endian
//! two's complement), `created_at_ms` (likewise), `actor`, `action`, `task_id`,
//! `details_json` (UTF-8, exactly as stored) and `prev_hash` (the previous record's hash as
//! 64 lowercase hex digits; 64 zeros for the first record). Every field is length-prefixed,
//! so no two different records encode alike. Hashes are stored as lowercase hex.
//!
//! A checkpoint signs (Ed25519) the domain tag `cap-audit-checkpoint-v1` followed, in the same
//! length-prefixed form, by `record_seq`, `head_hash`, `created_at_ms` and `key_fingerprint`.

use sha2::{Digest, Sha256};

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const RECORD_TAG: &[u8] = b"cap-audit-record-v1";
const CHECKPOINT_TAG: &[u8] = b"cap-audit-checkpoint-v1";

/// The fields a record's hash covers.
#[derive(Debug, Clone, Copy)]
pub struct RecordFields<'a> {
    /// Sequence number.
    pub seq: i64,
    /// Milliseconds since the epoch.
    pub created_at_ms: i64,
    /// Who acted.
    pub actor: &'a str,
    /// What was done.
    pub action: &'a str,
    /// The task, or empty.
    pub task_id: &'a str,
    /// Details as stored.
    pub details_json: &'a str,
    /// The previous record's hash.
    pub prev_hash: &'a str,
}

/// Appends one length-prefixed field.
fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The bytes a record's hash is taken over.
pub fn record_encoding(fields: &RecordFields<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        64 + fields.actor.len()
            + fields.action.len()
            + fields.task_id.len()
            + fields.details_json.len()
            + fields.prev_hash.len(),
    );
    out.extend_from_slice(RECORD_TAG);
    field(&mut out, &fields.seq.to_be_bytes());
    field(&mut out, &fields.created_at_ms.to_be_bytes());
    field(&mut out, fields.actor.as_bytes());
    field(&mut out, fields.action.as_bytes());
    field(&mut out, fields.task_id.as_bytes());
    field(&mut out, fields.details_json.as_bytes());
    field(&mut out, fields.prev_hash.as_bytes());
    out
}

/// The record's hash, lowercase hex.
pub fn record_hash(fields: &RecordFields<'_>) -> String {
    hex(&Sha256::digest(record_encoding(fields)))
}

/// The message a checkpoint signs.
pub fn checkpoint_message(
    record_seq: i64,
    head_hash: &str,
    created_at_ms: i64,
    key_fingerprint: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(CHECKPOINT_TAG);
    field(&mut out, &record_seq.to_be_bytes());
    field(&mut out, head_hash.as_bytes());
    field(&mut out, &created_at_ms.to_be_bytes());
    field(&mut out, key_fingerprint.as_bytes());
    out
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
#[path = "hash_tests.rs"]
mod tests;
