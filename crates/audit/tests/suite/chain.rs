#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cap_audit::{AuditConfig, AuditLog, Entry, hash, verify};
use pretty_assertions::assert_eq;

use super::support::{Db, TestDb, both_databases, entry};

const NO_COUNT: AuditConfig = AuditConfig {
    checkpoint_every: 0,
    checkpoint_interval: Duration::from_secs(3600),
};

both_databases!(
    appends_verify_and_read_back,
    checkpoints_every_n_records,
    concurrent_appenders_leave_one_chain,
    two_pools_on_one_database_leave_one_chain,
    bad_input_is_refused_naming_the_field,
    the_key_is_kept_private_and_reused,
);

async fn appends_verify_and_read_back(db: Db) {
    let test = TestDb::new(db).await.unwrap();
    let log = test.open(NO_COUNT).await;
    let public = log.public_key().unwrap().clone();
    let empty = verify(log.pool(), std::slice::from_ref(&public))
        .await
        .unwrap();
    assert_eq!((empty.records, empty.is_intact()), (0, true));
    assert_eq!(log.checkpoint().await.unwrap(), None, "nothing to sign yet");

    let first = log.append(entry(0)).await.unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.prev_hash, hash::GENESIS_HASH);
    let rest = log
        .append_all(&[entry(1), entry(2), entry(3)])
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(rest[0].prev_hash, first.hash);
    let checkpoint = log.checkpoint().await.unwrap().expect("head moved");
    assert_eq!(checkpoint.record_seq, 4);
    assert_eq!(checkpoint.head_hash, rest[2].hash);
    assert_eq!(log.checkpoint().await.unwrap(), None, "signed already");

    let report = verify(log.pool(), &[public]).await.unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.records, 4);
    assert_eq!(report.last_checkpoint, Some(checkpoint));

    let all = log.records(None, 100).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0], first);
    let one = log.records(Some("task-2"), 10).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].actor, "alice");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&one[0].details_json).unwrap(),
        serde_json::json!({ "n": 2, "prompt": "Fix the bug" })
    );
}

async fn checkpoints_every_n_records(db: Db) {
    let test = TestDb::new(db).await.unwrap();
    let config = AuditConfig {
        checkpoint_every: 3,
        ..NO_COUNT
    };
    let log = test.open(config).await;
    for n in 0..7 {
        log.append(entry(n)).await.unwrap();
    }
    let report = verify(log.pool(), &[log.public_key().unwrap().clone()])
        .await
        .unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.checkpoints, 2);
    assert_eq!(report.last_checkpoint.unwrap().record_seq, 6);
}

/// Many appends at once (the supervisor's tasks) leave 1..=n without a gap or fork.
async fn concurrent_appenders_leave_one_chain(db: Db) {
    let test = TestDb::new(db).await.unwrap();
    let log = test
        .open(AuditConfig {
            checkpoint_every: 7,
            ..NO_COUNT
        })
        .await;
    let mut appenders = Vec::new();
    for task in 0..16 {
        let log = log.clone();
        appenders.push(tokio::spawn(async move {
            for n in 0..5 {
                log.append(entry(task * 100 + n)).await.unwrap();
            }
        }));
    }
    for appender in appenders {
        appender.await.unwrap();
    }
    let report = verify(log.pool(), &[log.public_key().unwrap().clone()])
        .await
        .unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.records, 80);
    assert_eq!(report.checkpoints, 11);
}

/// Two supervisor replicas (two pools, the same key) appending to one database at once.
async fn two_pools_on_one_database_leave_one_chain(db: Db) {
    let test = TestDb::new(db).await.unwrap();
    let (a, b) = match db {
        // PostgreSQL replicas start at once (the migrations and triggers take a lock).
        Db::Postgres => tokio::join!(test.open(NO_COUNT), test.open(NO_COUNT)),
        // A SQLite file belongs to one supervisor; two pools on it still share the lock.
        Db::Sqlite => (test.open(NO_COUNT).await, test.open(NO_COUNT).await),
    };
    let append = |log: AuditLog, offset: usize| {
        tokio::spawn(async move {
            for n in 0..25 {
                log.append(entry(offset + n)).await.unwrap();
                if n % 10 == 0 {
                    log.checkpoint().await.unwrap();
                }
            }
        })
    };
    let (x, y) = tokio::join!(append(a.clone(), 0), append(b.clone(), 1000));
    x.unwrap();
    y.unwrap();
    let report = verify(b.pool(), &[a.public_key().unwrap().clone()])
        .await
        .unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.records, 50);
    let seqs: Vec<i64> = a
        .records(None, 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
}

async fn bad_input_is_refused_naming_the_field(db: Db) {
    let test = TestDb::new(db).await.unwrap();
    let log = test.open(NO_COUNT).await;
    let empty_actor = Entry::new(" ", "task.submitted", "", serde_json::json!({}));
    let error = log.append(empty_actor).await.unwrap_err().to_string();
    assert!(error.contains("actor: must not be empty"), "{error}");
    let bad_action = Entry::new("alice", "Task Submitted", "", serde_json::json!({}));
    let error = log.append(bad_action).await.unwrap_err().to_string();
    assert!(error.contains("action: \"Task Submitted\""), "{error}");
    assert_eq!(log.records(None, 10).await.unwrap(), []);
}

async fn the_key_is_kept_private_and_reused(db: Db) {
    use std::os::unix::fs::PermissionsExt as _;
    let test = TestDb::new(db).await.unwrap();
    let first = test.signer();
    let again = test.signer();
    assert_eq!(first.public_key(), again.public_key());
    let private = test.key_dir().join(cap_audit::PRIVATE_KEY_FILE);
    let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let public = cap_audit::PublicKey::read_from_dir(test.key_dir()).unwrap();
    assert_eq!(&public, first.public_key());
}
