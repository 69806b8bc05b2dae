//! Timeouts degrade to a partial pull request marked draft, with hand-off notes; never past
//! the gates.

use std::time::Duration;

use cap_workflow::EngineConfig;
use pretty_assertions::assert_eq;

use super::support::{Harness, POSTGRES_URL, Step, config, fix_leaking_a_token};

const FIX: &str = "def add(a, b):\n    return a + b\n";
const PARTIAL: &str = "def add(a, b):\n    return a + b  # half done\n";

fn with_budget(budget: Duration) -> EngineConfig {
    EngineConfig {
        task_time_budget: Some(budget),
        ..config()
    }
}

async fn a_run_out_of_time_opens_its_partial_change_as_a_draft(database_url: Option<&str>) {
    let h = Harness::start_on(database_url, with_budget(Duration::from_secs(2))).await;
    h.context.script([Step::finish("context_ready")]);
    // The first attempt fails its tests; the second is stopped mid-change by the budget.
    h.coding.script([
        Step::edit("calc.py", FIX),
        Step::EditThenHang {
            path: "calc.py",
            content: PARTIAL,
        },
    ]);
    h.testing.script([Step::finish("tests_failed")]);
    let task = h.submit("Fix add").await;
    let task = h.wait_for(&task.task_id, "failed").await;

    let opened = h.github.pull_requests.lock().unwrap().clone();
    assert_eq!(opened.len(), 1, "{opened:#?}");
    let draft = &opened[0];
    assert!(draft.draft);
    assert_eq!(task.pull_request_id, "pr-1");
    assert_eq!(
        task.error_message,
        format!(
            "timed out: the task ran out of its time budget (2 s) during execute; its partial \
             change is in draft pull request pr-1 on {}, with hand-off notes",
            draft.head_branch
        )
    );
    // What was done, what was not, and why.
    let body = &draft.body;
    for part in [
        "> **Draft: a partial change.**",
        "## Hand-off notes",
        "### Why\n\nTimed out: the task ran out of its time budget (2 s) during execute.",
        "### Done",
        "(2 attempts)",
        "- `calc.py`",
        "### Not done",
        "- 2. Make the smallest change",
        "- 4. Open a pull request for human review.",
        "The last test run failed:",
        "Not checked, since they run once the tests pass",
    ] {
        assert!(body.contains(part), "{part:?} not in:\n{body}");
    }
    // The commit holds the partial change the agent made before it was stopped.
    let commits = h.github.commits.lock().unwrap().clone();
    assert_eq!(commits.len(), 1);
    assert_eq!(commits[0].branch, draft.head_branch);
    let content = match &commits[0].changes[0].change {
        Some(cap_proto::common::v1::file_change::Change::Content(content)) => content.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(String::from_utf8(content).unwrap(), PARTIAL);
    // The workspace is released and the audit log says it was a draft.
    assert!(
        h.sandbox.sessions().is_empty(),
        "{:?}",
        h.sandbox.sessions()
    );
    let records = h
        .store
        .audit()
        .records(Some(&task.task_id), 1000)
        .await
        .unwrap();
    let opened = records
        .iter()
        .find(|r| r.action == "pull_request.opened")
        .unwrap();
    let details: serde_json::Value = serde_json::from_str(&opened.details_json).unwrap();
    assert_eq!(details["draft"], true);
    assert_eq!(records.last().unwrap().action, "task.failed");
}

#[tokio::test]
async fn a_run_out_of_time_opens_its_partial_change_as_a_draft_on_sqlite() {
    a_run_out_of_time_opens_its_partial_change_as_a_draft(None).await;
}

#[tokio::test]
async fn a_run_out_of_time_opens_its_partial_change_as_a_draft_on_postgres() {
    a_run_out_of_time_opens_its_partial_change_as_a_draft(Some(POSTGRES_URL)).await;
}

#[tokio::test]
async fn a_run_out_of_time_without_a_change_opens_nothing() {
    let h = Harness::start(with_budget(Duration::from_millis(800))).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::Hang]);
    let task = h.submit("Fix add").await;
    let task = h.wait_for(&task.task_id, "failed").await;
    assert_eq!(
        task.error_message,
        "timed out: the task ran out of its time budget (800 ms) during execute; it had made \
         no change, so no pull request was opened"
    );
    assert!(h.github.pull_requests.lock().unwrap().is_empty());
    assert!(h.github.branches.lock().unwrap().is_empty());
    assert_eq!(task.pull_request_id, "");
}

#[tokio::test]
async fn a_draft_never_passes_the_gates() {
    // A protected file: nobody is left to approve it, so nothing is opened.
    let h = Harness::start(with_budget(Duration::from_millis(800))).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::EditThenHang {
        path: ".github/workflows/ci.yml",
        content: "on: push\n",
    }]);
    let task = h.submit("Fix add").await;
    let task = h.wait_for(&task.task_id, "failed").await;
    assert_eq!(
        task.error_message,
        "timed out: the task ran out of its time budget (800 ms) during execute; no pull \
         request was opened for its partial change: it touches protected files that no human \
         approved: .github/workflows/ci.yml (CI or automation configuration)"
    );
    assert!(h.github.pull_requests.lock().unwrap().is_empty());

    // A secret: quarantined as ever, nothing committed.
    let h = Harness::start(with_budget(Duration::from_millis(800))).await;
    let (secret, leaking) = fix_leaking_a_token();
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::EditThenHang {
        path: "calc.py",
        content: leaking,
    }]);
    let task = h.submit("Fix add").await;
    let task = h.wait_for(&task.task_id, "failed").await;
    assert!(
        task.error_message.starts_with(
            "timed out: the task ran out of its time budget (800 ms) during execute; the \
             change holds 1 likely secret; nothing was committed and the workspace is \
             quarantined"
        ),
        "{}",
        task.error_message
    );
    assert!(!task.error_message.contains(&secret));
    assert!(h.github.commits.lock().unwrap().is_empty());
    assert!(h.github.pull_requests.lock().unwrap().is_empty());
    assert_eq!(h.engine.quarantined(10).await.unwrap().len(), 1);
}
