//! `cap audit verify` and `show` through the real binary: exit codes and what they name.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use cap_audit::{AuditConfig, AuditLog, Entry, Signer};

fn cap_audit(args: &[&str], data_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cap"))
        .arg("audit")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("CAP_SUPERVISOR_DATABASE_URL")
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// A log laid out as the embedded fleet lays it out: `<data>/supervisor.db`, the key in
/// `<data>/supervisor/`.
async fn fleet_log(data_dir: &Path) -> AuditLog {
    let signer = Signer::load_or_create(&data_dir.join("supervisor")).unwrap();
    let url = cap_storage::sqlite_url(&data_dir.join("supervisor.db"));
    let config = AuditConfig {
        checkpoint_every: 2,
        checkpoint_interval: Duration::from_secs(3600),
    };
    let log = AuditLog::open(&url, Some(signer), config).await.unwrap();
    for (actor, action) in [
        ("alice", "task.submitted"),
        ("coding", "agent.finished"),
        ("supervisor", "commit.created"),
    ] {
        let entry = Entry::new(actor, action, "t1", serde_json::json!({"diff": "+x"}));
        log.append(entry).await.unwrap();
    }
    log
}

#[tokio::test]
async fn verify_exits_0_when_intact_1_when_broken_and_2_on_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = fleet_log(dir.path()).await;

    let intact = cap_audit(&["verify"], dir.path());
    assert_eq!(intact.status.code(), Some(0), "{intact:?}");
    let text = stdout(&intact);
    assert!(text.contains("intact: 3 records"), "{text}");
    assert!(text.contains("last signed checkpoint: record 2"), "{text}");

    let shown = cap_audit(&["show", "--task", "t1"], dir.path());
    assert_eq!(shown.status.code(), Some(0), "{shown:?}");
    let lines: Vec<String> = stdout(&shown).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("1 ") && lines[0].contains("alice task.submitted"));

    // Tampering needs the trigger gone (it refuses the update otherwise).
    let refused = sqlx::query("UPDATE audit_records SET actor = 'mallory' WHERE seq = 2")
        .execute(log.pool())
        .await;
    assert!(refused.is_err());
    sqlx::query("DROP TRIGGER audit_records_no_update")
        .execute(log.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE audit_records SET actor = 'mallory' WHERE seq = 2")
        .execute(log.pool())
        .await
        .unwrap();
    let broken = cap_audit(&["verify"], dir.path());
    assert_eq!(broken.status.code(), Some(1), "{broken:?}");
    let text = stdout(&broken);
    assert!(
        text.contains("record 2 (agent.finished): changed"),
        "{text}"
    );

    let elsewhere = tempfile::tempdir().unwrap();
    let missing = cap_audit(&["verify"], elsewhere.path());
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    let error = String::from_utf8(missing.stderr).unwrap();
    assert!(error.contains("audit-signing-key.pub"), "{error}");
}
