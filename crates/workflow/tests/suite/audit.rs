//! The audit log the engine keeps: who asked for what, what each agent did, who steered it,
//! the commit and the pull request with the exact diff, and how the task ended; a chain that
//! verifies.

use cap_audit::Record;
use cap_workflow::TaskSpec;
use pretty_assertions::assert_eq;

use super::support::{Harness, REPO, Step, config, fix_leaking_a_token};

const FIX: &str = "def add(a, b):\n    return a + b\n";

async fn records(h: &Harness, task_id: &str) -> Vec<Record> {
    h.store.audit().records(Some(task_id), 1000).await.unwrap()
}

fn lines(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|record| format!("{} {}", record.actor, record.action))
        .collect()
}

fn details(record: &Record) -> serde_json::Value {
    serde_json::from_str(&record.details_json).unwrap()
}

#[tokio::test]
async fn a_task_leaves_who_asked_what_each_agent_did_and_the_exact_diff() {
    let h = Harness::start(config()).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::edit("calc.py", FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h
        .engine
        .submit(TaskSpec {
            repository_id: REPO.into(),
            prompt: "Fix add in calc.py".into(),
            requested_by: "alice".into(),
            ..TaskSpec::default()
        })
        .await
        .unwrap();
    assert_eq!(task.spec.requested_by, "alice");
    h.wait_for(&task.task_id, "completed").await;

    let records = records(&h, &task.task_id).await;
    assert_eq!(
        lines(&records),
        [
            "alice task.submitted",
            "service:context-agent agent.finished",
            "service:coding-agent agent.finished",
            "service:testing-agent agent.finished",
            "service:supervisor commit.created",
            "service:supervisor pull_request.opened",
            "service:supervisor task.completed",
        ]
    );
    let submitted = details(&records[0]);
    assert_eq!(submitted["repository_id"], REPO);
    assert_eq!(submitted["prompt"], "Fix add in calc.py");
    assert_eq!(details(&records[3])["checkpoint"], "tests_passed");
    let commit = details(&records[4]);
    assert_eq!(commit["files"], serde_json::json!(["calc.py"]));
    assert_eq!(
        commit["commit_sha"],
        "2222222222222222222222222222222222222222"
    );
    let opened = details(&records[5]);
    assert_eq!(opened["pull_request_id"], "pr-1");
    let diff = opened["diff"].as_str().unwrap();
    assert!(diff.contains("+++ b/calc.py"), "{diff}");
    assert!(diff.contains("+    return a + b"), "{diff}");

    let report = cap_audit::verify(h.store.audit().pool(), &[])
        .await
        .unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 7);
}

#[tokio::test]
async fn steering_names_the_human_and_a_failure_is_recorded_with_its_cause() {
    let h = Harness::start(config()).await;
    h.context.script([Step::finish("context_ready")]);
    // It hangs again after the resume, so the abort finds it running.
    h.coding.script([Step::Hang, Step::Hang]);
    let task = h.submit("Fix add").await;
    h.coding.started.notified().await;

    h.engine.interrupt(&task.task_id, "bob").await.unwrap();
    h.wait_for(&task.task_id, "paused").await;
    h.engine
        .add_constraint(&task.task_id, "Only touch calc.py", "carol")
        .await
        .unwrap();
    h.engine.resume(&task.task_id, "bob").await.unwrap();
    h.coding.started.notified().await;
    h.engine
        .abort_task(&task.task_id, "wrong repository", "dave")
        .await
        .unwrap();
    h.wait_for(&task.task_id, "failed").await;

    let records = records(&h, &task.task_id).await;
    let lines = lines(&records);
    // A task submitted without a name is the anonymous caller's.
    assert_eq!(lines[0], "anonymous task.submitted");
    for expected in [
        "bob task.interrupted",
        "carol task.constraint_added",
        "bob task.resumed",
        "dave task.aborted",
    ] {
        assert_eq!(
            lines.iter().filter(|line| *line == expected).count(),
            1,
            "{expected}: {lines:#?}"
        );
    }
    let constraint = records
        .iter()
        .find(|record| record.action == "task.constraint_added")
        .unwrap();
    assert_eq!(details(constraint)["text"], "Only touch calc.py");
    let aborted = records
        .iter()
        .find(|record| record.action == "task.aborted")
        .unwrap();
    assert_eq!(details(aborted)["reason"], "wrong repository");
}

#[tokio::test]
async fn a_task_that_fails_records_why() {
    let h = Harness::start(config()).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::finish("agent_finished")]);
    let task = h.submit("Change nothing").await;
    let failed = h.wait_for(&task.task_id, "failed").await;

    let records = records(&h, &task.task_id).await;
    let last = records.last().unwrap();
    assert_eq!(last.actor, "service:supervisor");
    assert_eq!(last.action, "task.failed");
    assert_eq!(details(last)["error"], failed.error_message.as_str());
    assert_eq!(details(last)["quarantined"], false);
}

#[tokio::test]
async fn an_admin_finds_the_quarantined_workspace_and_reads_it_redacted_and_audited() {
    let h = Harness::start(config()).await;
    let (secret, content) = fix_leaking_a_token();
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::edit("calc.py", content)]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    h.wait_for(&task.task_id, "failed").await;
    let clean = h.submit("Fix add again").await;
    h.wait_for(&clean.task_id, "failed").await;

    // Only the task whose change held the secret is quarantined.
    let quarantined = h.engine.quarantined(10).await.unwrap();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0].task.task_id, task.task_id);
    assert_eq!(quarantined[0].files, ["calc.py"]);
    let records = records(&h, &task.task_id).await;
    let failed = records.last().unwrap();
    assert_eq!(failed.action, "task.failed");
    assert_eq!(details(failed)["quarantined"], true);
    assert!(!failed.details_json.contains(&secret));

    let file = h
        .engine
        .read_quarantined(&task.task_id, "calc.py", "admin")
        .await
        .unwrap();
    assert!(file.contains("return a + b"), "{file}");
    assert!(file.contains("TOKEN = "), "{file}");
    assert!(!file.contains(&secret), "{file}");
    let read = records_after(&h, &task.task_id, records.len()).await;
    assert_eq!(lines(&read), ["admin quarantine.file_read"]);
    assert_eq!(details(&read[0])["path"], "calc.py");

    // Paths stay inside the workspace; a task that is not quarantined has none to read.
    let escaped = h
        .engine
        .read_quarantined(&task.task_id, "../etc/passwd", "admin")
        .await
        .unwrap_err();
    assert!(escaped.to_string().contains("sandbox"), "{escaped}");
    let none = h
        .engine
        .read_quarantined(&clean.task_id, "calc.py", "admin")
        .await
        .unwrap_err();
    assert!(
        none.to_string().contains("has no quarantined workspace"),
        "{none}"
    );
}

async fn records_after(h: &Harness, task_id: &str, seen: usize) -> Vec<Record> {
    records(h, task_id).await.split_off(seen)
}
