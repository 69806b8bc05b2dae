#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn fields<'a>(actor: &'a str, action: &'a str) -> RecordFields<'a> {
    RecordFields {
        seq: 1,
        created_at_ms: 1_700_000_000_000,
        actor,
        action,
        task_id: "t",
        details_json: "{}",
        prev_hash: GENESIS_HASH,
    }
}

#[test]
fn moving_bytes_between_fields_changes_the_hash() {
    // Without length prefixes "ab" + "c" and "a" + "bc" would encode alike.
    assert_ne!(
        record_hash(&fields("ab", "c")),
        record_hash(&fields("a", "bc"))
    );
}

#[test]
fn every_field_is_covered() {
    let base = fields("alice", "task.submitted");
    let hash = record_hash(&base);
    let changed = [
        RecordFields { seq: 2, ..base },
        RecordFields {
            created_at_ms: 1,
            ..base
        },
        RecordFields {
            actor: "bob",
            ..base
        },
        RecordFields {
            action: "task.aborted",
            ..base
        },
        RecordFields {
            task_id: "u",
            ..base
        },
        RecordFields {
            details_json: "{\"a\":1}",
            ..base
        },
        RecordFields {
            prev_hash: "11",
            ..base
        },
    ];
    for other in changed {
        assert_ne!(record_hash(&other), hash, "{other:?}");
    }
}

#[test]
fn the_encoding_is_as_documented() {
    let encoded = record_encoding(&fields("a", "b"));
    let mut expected = b"cap-audit-record-v1".to_vec();
    for part in [
        &1i64.to_be_bytes()[..],
        &1_700_000_000_000i64.to_be_bytes()[..],
        b"a",
        b"b",
        b"t",
        b"{}",
        GENESIS_HASH.as_bytes(),
    ] {
        expected.extend_from_slice(&(part.len() as u64).to_be_bytes());
        expected.extend_from_slice(part);
    }
    assert_eq!(encoded, expected);
    assert_eq!(record_hash(&fields("a", "b")).len(), 64);
}
