//! The human in the loop: constraints added mid-flight, and aborting a task.

use std::sync::Arc;
use std::time::Duration;

use cap_workflow::Error;
use pretty_assertions::assert_eq;
use tokio::sync::Notify;

use super::support::{Harness, Step, config};

const FIX: &str = "def add(a, b):\n    return a + b\n";

async fn eventually(mut check: impl FnMut() -> bool, what: &str) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_constraint_added_mid_flight_reaches_the_running_agent_and_every_later_call() {
    let h = Harness::start(config()).await;
    let gate = Arc::new(Notify::new());
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::EditWhenOpened {
        gate: gate.clone(),
        path: "calc.py",
        content: FIX,
    }]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    h.coding.started.notified().await;

    h.engine
        .add_constraint(&task.task_id, "  Keep the public API unchanged ", "alice")
        .await
        .unwrap();
    eventually(
        || !h.coding.constraints().is_empty(),
        "the coding agent's constraint",
    )
    .await;
    let received = h.coding.constraints();
    assert_eq!(
        (received[0].task_id.as_str(), received[0].text.as_str()),
        (task.task_id.as_str(), "Keep the public API unchanged")
    );
    gate.notify_one();
    h.wait_for(&task.task_id, "completed").await;

    // Reported once, by the supervisor, while the coding agent ran.
    let trail = h.trail(&task.task_id).await;
    let added: Vec<&String> = trail
        .iter()
        .filter(|line| line.ends_with("constraint_added"))
        .collect();
    assert_eq!(
        added,
        ["supervisor:checkpoint:constraint_added"],
        "{trail:#?}"
    );
    // The testing agent, called after, has it in its context.
    let testing = h.testing.requests();
    assert_eq!(
        testing[0].context.as_ref().unwrap().human_constraints,
        ["Keep the public API unchanged"]
    );
    assert!(
        h.coding.requests()[0]
            .context
            .as_ref()
            .unwrap()
            .human_constraints
            .is_empty()
    );

    // An ended task takes no constraint.
    let refused = h
        .engine
        .add_constraint(&task.task_id, "too late", "alice")
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("is completed; constraints can be added"),
        "{refused}"
    );
}

#[tokio::test]
async fn constraints_are_checked_and_one_added_while_paused_reaches_the_resumed_run() {
    let h = Harness::start(config()).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::Hang, Step::edit("calc.py", FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    h.coding.started.notified().await;

    let empty = h
        .engine
        .add_constraint(&task.task_id, " ", "alice")
        .await
        .unwrap_err();
    assert!(matches!(empty, Error::InvalidRequest(_)), "{empty}");
    assert_eq!(empty.to_string(), "text: must not be empty");
    let long = h
        .engine
        .add_constraint(&task.task_id, &"x".repeat(2001), "alice")
        .await
        .unwrap_err();
    assert_eq!(
        long.to_string(),
        "text: 2001 characters; a constraint has at most 2000"
    );

    h.engine.interrupt(&task.task_id, "alice").await.unwrap();
    h.wait_for(&task.task_id, "paused").await;
    h.engine
        .add_constraint(&task.task_id, "Only touch calc.py", "alice")
        .await
        .unwrap();
    h.engine.resume(&task.task_id, "alice").await.unwrap();
    h.wait_for(&task.task_id, "completed").await;
    let coding = h.coding.requests();
    assert_eq!(
        coding[1].context.as_ref().unwrap().human_constraints,
        ["Only touch calc.py"]
    );
    let trail = h.trail(&task.task_id).await;
    assert_eq!(
        trail
            .iter()
            .filter(|line| line.ends_with("constraint_added"))
            .count(),
        1,
        "{trail:#?}"
    );
}

#[tokio::test]
async fn an_aborted_running_task_fails_naming_why_and_releases_its_workspace() {
    let h = Harness::start(config()).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::Hang]);
    let task = h.submit("Fix add").await;
    h.coding.started.notified().await;
    assert_eq!(h.sandbox.sessions().len(), 1);

    h.engine
        .abort_task(&task.task_id, "wrong repository", "alice")
        .await
        .unwrap();
    let failed = h.wait_for(&task.task_id, "failed").await;
    assert_eq!(failed.error_message, "aborted by a human: wrong repository");
    let trail = h.trail(&task.task_id).await;
    assert_eq!(
        trail[trail.len() - 2..],
        ["supervisor:checkpoint:aborted", "supervisor:status:failed"],
        "{trail:#?}"
    );
    assert!(h.sandbox.sessions().is_empty(), "the workspace is released");

    let resumed = h.engine.resume(&task.task_id, "alice").await.unwrap_err();
    assert!(resumed.to_string().contains("was aborted"), "{resumed}");
    let again = h
        .engine
        .abort_task(&task.task_id, "", "alice")
        .await
        .unwrap_err();
    assert!(
        again
            .to_string()
            .contains("is failed and cannot be aborted"),
        "{again}"
    );
}

#[tokio::test]
async fn an_aborted_paused_task_ends_without_running_on() {
    let h = Harness::start(config()).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::Hang]);
    let task = h.submit("Fix add").await;
    h.coding.started.notified().await;
    h.engine.interrupt(&task.task_id, "alice").await.unwrap();
    h.wait_for(&task.task_id, "paused").await;
    assert_eq!(
        h.sandbox.sessions().len(),
        1,
        "a paused task keeps its workspace"
    );

    h.engine
        .abort_task(&task.task_id, "", "alice")
        .await
        .unwrap();
    let failed = h.wait_for(&task.task_id, "failed").await;
    assert_eq!(failed.error_message, "aborted by a human");
    assert!(h.sandbox.sessions().is_empty());
    // The coding agent was not called again.
    assert_eq!(h.coding.requests().len(), 1);
}
