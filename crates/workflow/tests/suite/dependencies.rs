//! The dependency gate at review: a known vulnerability or a refused licence in what the
//! agent added waits for a human; without a snapshot a warning says the check was skipped.

use cap_proto::agent::v1::CheckpointKind;
use cap_proto::agent::v1::task_event::Payload;

use super::support::{Harness, Step, config};

/// An advisory snapshot (one synthetic OSV record for `requests` < 2.32.0) and a policy
/// denying GPL, in a directory of their own.
fn operator_data() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let osv = dir.path().join("osv");
    std::fs::create_dir(&osv).unwrap();
    let record = serde_json::json!({
        "id": "TEST-2026-0001",
        "aliases": ["CVE-2026-00001"],
        "summary": "requests leaks headers on redirect",
        "modified": "2026-01-01T00:00:00Z",
        "affected": [{
            "package": {"ecosystem": "PyPI", "name": "requests"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.32.0"}]}]
        }]
    });
    std::fs::write(osv.join("TEST-2026-0001.json"), record.to_string()).unwrap();
    cap_advisories::import(&osv, &dir.path().join("advisories")).unwrap();
    let licences = dir.path().join("licences.txt");
    std::fs::write(&licences, "PyPI copyleft-lib GPL-3.0-only\n").unwrap();
    cap_advisories::import_licences(&licences, &dir.path().join("advisories")).unwrap();
    std::fs::create_dir(dir.path().join("policy")).unwrap();
    std::fs::write(
        dir.path().join("policy/licences.toml"),
        "[default]\ndeny = [\"GPL-*\", \"AGPL-*\"]\n",
    )
    .unwrap();
    dir
}

fn last_approval_request(events: &[cap_workflow::store::EventRecord]) -> String {
    events
        .iter()
        .rev()
        .find_map(|record| match &record.event.payload {
            Some(Payload::Checkpoint(c)) if c.kind() == CheckpointKind::HumanApprovalRequired => {
                Some(c.description.clone())
            }
            _ => None,
        })
        .expect("a human_approval_required checkpoint")
}

#[tokio::test]
async fn a_vulnerable_dependency_waits_for_a_human_and_approval_commits_it() {
    let data = operator_data();
    let h = Harness::start(cap_workflow::EngineConfig {
        advisories_dir: Some(data.path().join("advisories")),
        licence_policy: Some(data.path().join("policy/licences.toml")),
        ..config()
    })
    .await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::Finish {
        kind: "agent_finished",
        writes: vec![
            ("calc.py", "def add(a, b):\n    return a + b\n"),
            (
                "requirements.txt",
                "pytest\nrequests==2.31.0\ncopyleft-lib==1.0\n",
            ),
        ],
    }]);
    h.testing
        .script([Step::finish("tests_passed"), Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    let paused = h.wait_for(&task.task_id, "paused").await;
    assert_eq!(paused.current_node, "review");
    let asked = last_approval_request(&h.events(&task.task_id).await);
    for part in [
        "requirements.txt:2: PyPI requests ==2.31.0 is affected by TEST-2026-0001",
        "fixed in 2.32.0",
        "copyleft-lib ==1.0 is licensed GPL-3.0-only",
        "denied: GPL-*, AGPL-*",
    ] {
        assert!(asked.contains(part), "{part:?} in {asked}");
    }
    assert!(h.github.commits.lock().unwrap().is_empty());

    h.engine
        .decide(&task.task_id, true, "accepted risk", "reviewer")
        .await
        .unwrap();
    h.wait_for(&task.task_id, "completed").await;
    assert_eq!(h.github.commits.lock().unwrap().len(), 1);
    let approved = h
        .events(&task.task_id)
        .await
        .into_iter()
        .find_map(|record| match record.event.payload {
            Some(Payload::Checkpoint(c)) if c.kind() == CheckpointKind::Approved => {
                Some(c.description)
            }
            _ => None,
        })
        .expect("an approved checkpoint");
    assert!(
        approved.starts_with("a human approved the change for its dependency findings: ")
            && approved.contains("TEST-2026-0001")
            && approved.ends_with(": accepted risk"),
        "{approved}"
    );
    let body = h.github.pull_requests.lock().unwrap()[0].body.clone();
    assert!(body.contains("## Dependencies"), "{body}");
    assert!(body.contains("TEST-2026-0001"), "{body}");
    // `pytest` has no licence in the snapshot: reported, not a violation.
    assert!(
        body.contains("pytest (any version): licence unknown"),
        "{body}"
    );
}

#[tokio::test]
async fn a_rejected_dependency_ends_the_task() {
    let data = operator_data();
    let h = Harness::start(cap_workflow::EngineConfig {
        advisories_dir: Some(data.path().join("advisories")),
        ..config()
    })
    .await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::Finish {
        kind: "agent_finished",
        writes: vec![("requirements.txt", "requests>=2.0,<3\n")],
    }]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Add requests").await;
    h.wait_for(&task.task_id, "paused").await;
    let asked = last_approval_request(&h.events(&task.task_id).await);
    assert!(
        asked.contains("(checked at 2.0, the lowest it admits)"),
        "{asked}"
    );
    h.engine
        .decide(&task.task_id, false, "pin a fixed version", "reviewer")
        .await
        .unwrap();
    let failed = h.wait_for(&task.task_id, "failed").await;
    // Says what was rejected: the dependency, not "protected files".
    let message = &failed.error_message;
    assert!(
        message.starts_with(
            "a human rejected the change for its dependency findings: requirements.txt:1: PyPI \
             requests >=2.0,<3 "
        ) && message.ends_with(": pin a fixed version")
            && !message.contains("protected files")
            && !message.contains("dependency dependency"),
        "{message}"
    );
    assert!(h.github.commits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn without_a_snapshot_the_check_is_skipped_with_a_warning() {
    let h = Harness::start(config()).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::Finish {
        kind: "agent_finished",
        writes: vec![("requirements.txt", "requests==2.31.0\n")],
    }]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Add requests").await;
    h.wait_for(&task.task_id, "completed").await;
    let warned = h.events(&task.task_id).await.iter().any(|record| {
        matches!(&record.event.payload, Some(Payload::Error(report))
            if report.severity == "warning"
                && report.message.contains("not checked for known vulnerabilities: no advisory snapshot"))
    });
    assert!(warned);
}
