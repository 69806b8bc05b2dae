#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cap_audit::{AuditConfig, AuditLog, Broken, Problem, Signer, verify};
use cap_storage::AnyPool;
use pretty_assertions::assert_eq;

use super::support::{Db, TestDb, both_databases, entry, unguard};

/// Five records, checkpoints at 2 and 4 (and one at 5, signed by hand).
async fn five_records(test: &TestDb) -> AuditLog {
    let log = test
        .open(AuditConfig {
            checkpoint_every: 2,
            checkpoint_interval: Duration::from_secs(3600),
        })
        .await;
    for n in 0..5 {
        log.append(entry(n)).await.unwrap();
    }
    log.checkpoint().await.unwrap().unwrap();
    let report = verify(log.pool(), &[log.public_key().unwrap().clone()])
        .await
        .unwrap();
    assert_eq!((report.problem, report.checkpoints), (None, 3));
    log
}

async fn problem(log: &AuditLog) -> Problem {
    verify(log.pool(), &[log.public_key().unwrap().clone()])
        .await
        .unwrap()
        .problem
        .expect("tampering detected")
}

async fn exec(pool: &AnyPool, sql: &str) {
    sqlx::query(sql).execute(pool).await.unwrap();
}

both_databases!(
    updates_and_deletes_are_refused,
    a_changed_field_is_named,
    a_deleted_record_is_named,
    a_deleted_tail_is_named,
    two_swapped_records_are_named,
    a_bad_checkpoint_signature_is_named,
    a_wrong_key_is_named,
);

async fn updates_and_deletes_are_refused(db: Db) {
    let test = TestDb::new(db).await.unwrap();
    let log = five_records(&test).await;
    for sql in [
        "UPDATE audit_records SET actor = 'mallory' WHERE seq = 2",
        "DELETE FROM audit_records WHERE seq = 5",
        "DELETE FROM audit_records",
        "UPDATE audit_checkpoints SET head_hash = 'x'",
        "DELETE FROM audit_checkpoints",
    ] {
        let error = sqlx::query(sql).execute(log.pool()).await.unwrap_err();
        assert!(error.to_string().contains("append-only"), "{sql}: {error}");
    }
    assert_eq!(log.records(None, 10).await.unwrap().len(), 5);
    assert_eq!(problem_or_none(&log).await, None);
}

async fn problem_or_none(log: &AuditLog) -> Option<Problem> {
    verify(log.pool(), &[log.public_key().unwrap().clone()])
        .await
        .unwrap()
        .problem
}

async fn a_changed_field_is_named(db: Db) {
    let test = TestDb::new(db).await.unwrap();
    let log = five_records(&test).await;
    unguard(log.pool(), test.backend).await;
    exec(
        log.pool(),
        "UPDATE audit_records SET details_json = '{\"n\":2,\"prompt\":\"other\"}' WHERE seq = 3",
    )
    .await;
    let found = problem(&log).await;
    assert_eq!(
        found,
        Problem {
            seq: 3,
            action: Some("task.submitted".into()),
            kind: Broken::Changed
        }
    );
    assert!(
        found
            .to_string()
            .starts_with("record 3 (task.submitted): changed")
    );
}

async fn a_deleted_record_is_named(db: Db) {
    let test = TestDb::new(db).await.unwrap();
    let log = five_records(&test).await;
    unguard(log.pool(), test.backend).await;
    exec(log.pool(), "DELETE FROM audit_records WHERE seq = 3").await;
    assert_eq!(
        problem(&log).await,
        Problem {
            seq: 3,
            action: None,
            kind: Broken::Deleted { next: 4 }
        }
    );
}

async fn a_deleted_tail_is_named(db: Db) {
    let test = TestDb::new(db).await.unwrap();
    let log = five_records(&test).await;
    unguard(log.pool(), test.backend).await;
    exec(log.pool(), "DELETE FROM audit_records WHERE seq >= 4").await;
    // The head row set back too: the signed checkpoints still tell.
    exec(
        log.pool(),
        "UPDATE audit_head SET seq = 3, hash = (SELECT hash FROM audit_records WHERE seq = 3)",
    )
    .await;
    assert_eq!(
        problem(&log).await,
        Problem {
            seq: 4,
            action: None,
            kind: Broken::Truncated { expected: 4 }
        }
    );
}

async fn two_swapped_records_are_named(db: Db) {
    let test = TestDb::new(db).await.unwrap();
    let log = five_records(&test).await;
    unguard(log.pool(), test.backend).await;
    exec(
        log.pool(),
        "UPDATE audit_records SET seq = -2 WHERE seq = 2",
    )
    .await;
    exec(log.pool(), "UPDATE audit_records SET seq = 2 WHERE seq = 3").await;
    exec(
        log.pool(),
        "UPDATE audit_records SET seq = 3 WHERE seq = -2",
    )
    .await;
    assert_eq!(
        problem(&log).await,
        Problem {
            seq: 2,
            action: Some("task.submitted".into()),
            kind: Broken::Relinked
        }
    );
}

async fn a_bad_checkpoint_signature_is_named(db: Db) {
    let test = TestDb::new(db).await.unwrap();
    let log = five_records(&test).await;
    unguard(log.pool(), test.backend).await;
    // The head hash at 4 put into the checkpoint at 2, signature kept: it no longer verifies.
    exec(
        log.pool(),
        "UPDATE audit_checkpoints SET head_hash = \
         (SELECT hash FROM audit_records WHERE seq = 4) WHERE record_seq = 2",
    )
    .await;
    assert_eq!(
        problem(&log).await,
        Problem {
            seq: 2,
            action: Some("task.submitted".into()),
            kind: Broken::BadSignature
        }
    );
}

async fn a_wrong_key_is_named(db: Db) {
    let test = TestDb::new(db).await.unwrap();
    let log = five_records(&test).await;
    let (other, _) = Signer::generate().unwrap();
    let report = verify(log.pool(), &[other.public_key().clone()])
        .await
        .unwrap();
    assert_eq!(
        report.problem,
        Some(Problem {
            seq: 2,
            action: Some("task.submitted".into()),
            kind: Broken::UntrustedKey {
                fingerprint: log.public_key().unwrap().fingerprint()
            }
        })
    );
}
