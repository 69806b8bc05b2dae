//! The required checks of an opened pull request: waited for (as task events) before it is
//! announced ready for review; a failed check fails the task naming it; none required (the
//! local forge) changes nothing.

use std::time::Duration;

use cap_proto::agent::v1::task_event::Payload;
use cap_proto::github::v1::{GetRequiredChecksResponse, RequiredCheck};
use cap_workflow::EngineConfig;
use pretty_assertions::assert_eq;
use tonic::Status;

use super::support::{Harness, Step, config};

const FIX: &str = "def add(a, b):\n    return a + b\n";
const HEAD: &str = "2222222222222222222222222222222222222222";

fn quick() -> EngineConfig {
    EngineConfig {
        checks_poll_interval: Duration::from_millis(20),
        checks_timeout: Duration::from_secs(20),
        ..config()
    }
}

fn answer(state: &str, checks: &[(&str, &str, &str)]) -> GetRequiredChecksResponse {
    GetRequiredChecksResponse {
        head_sha: HEAD.into(),
        state: state.into(),
        checks: checks
            .iter()
            .map(|(name, state, summary)| RequiredCheck {
                name: (*name).into(),
                state: (*state).into(),
                summary: (*summary).into(),
                url: format!("https://ci.example/{name}"),
            })
            .collect(),
    }
}

fn script(h: &Harness) {
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::edit("calc.py", FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
}

/// The supervisor's thoughts, in order.
async fn thoughts(h: &Harness, task_id: &str) -> Vec<String> {
    h.events(task_id)
        .await
        .into_iter()
        .filter(|record| record.event.agent == "supervisor")
        .filter_map(|record| match record.event.payload? {
            Payload::Thought(thought) => Some(thought.reasoning),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn pending_then_passing_checks_are_waited_for_before_review() {
    let h = Harness::start(quick()).await;
    script(&h);
    h.github.checks.lock().unwrap().extend([
        answer("pending", &[("ci/test", "pending", "not reported yet")]),
        answer("pending", &[("ci/test", "pending", "")]),
        answer("success", &[("ci/test", "success", "12 passed")]),
    ]);
    let task = h.submit("Fix add in calc.py").await;
    let done = h.wait_for(&task.task_id, "completed").await;
    assert_eq!(done.pull_request_id, "pr-1");
    assert!(h.github.checks.lock().unwrap().is_empty());
    let thoughts = thoughts(&h, &task.task_id).await;
    let waits: Vec<&String> = thoughts
        .iter()
        .filter(|t| t.contains("required checks") || t.contains("Required checks"))
        .collect();
    assert_eq!(
        waits,
        [
            "Waiting for the required checks on 222222222222 before the pull request is ready \
             for review: ci/test (not reported yet)",
            "Required checks passed on 222222222222: ci/test (12 passed)"
        ]
    );
    // Announced ready for review only after the checks passed.
    let trail = h.trail(&task.task_id).await;
    assert!(
        trail.contains(&"supervisor:checkpoint:human_approval_required".to_owned()),
        "{trail:?}"
    );
}

#[tokio::test]
async fn a_failed_check_fails_the_task_naming_it_and_its_summary() {
    let h = Harness::start(quick()).await;
    script(&h);
    h.github.checks.lock().unwrap().extend([
        answer(
            "pending",
            &[("ci/test", "pending", ""), ("lint", "success", "")],
        ),
        answer(
            "failure",
            &[
                ("ci/test", "failure", "test_add: expected 3, got 4"),
                ("lint", "success", ""),
            ],
        ),
    ]);
    let task = h.submit("Fix add in calc.py").await;
    let failed = h.wait_for(&task.task_id, "failed").await;
    let message = failed.error_message;
    assert!(
        message.contains(
            "required check \"ci/test\" failed: test_add: expected 3, got 4 \
             (https://ci.example/ci/test) on the pull request's head 222222222222"
        ),
        "{message}"
    );
    assert!(!message.contains("lint"), "{message}");
    let trail = h.trail(&task.task_id).await;
    assert!(
        !trail.contains(&"supervisor:checkpoint:human_approval_required".to_owned()),
        "{trail:?}"
    );
}

#[tokio::test]
async fn checks_pending_past_the_timeout_fail_the_task_naming_them() {
    let h = Harness::start(EngineConfig {
        checks_timeout: Duration::from_millis(100),
        ..quick()
    })
    .await;
    script(&h);
    h.github.checks.lock().unwrap().extend(
        std::iter::repeat_with(|| answer("pending", &[("ci/slow", "pending", "running")]))
            .take(500),
    );
    let task = h.submit("Fix add in calc.py").await;
    let failed = h.wait_for(&task.task_id, "failed").await;
    let message = failed.error_message;
    assert!(
        message.contains("required checks still pending after 0 s: ci/slow (running)"),
        "{message}"
    );
}

#[tokio::test]
async fn no_required_checks_or_an_older_github_service_change_nothing() {
    // The stub answers "none" once its script is empty (the local forge's answer).
    let h = Harness::start(quick()).await;
    script(&h);
    let task = h.submit("Fix add in calc.py").await;
    h.wait_for(&task.task_id, "completed").await;
    assert!(
        thoughts(&h, &task.task_id)
            .await
            .iter()
            .all(|t| !t.contains("required checks")),
    );
    // A GitHub service without the RPC.
    let h = Harness::start(quick()).await;
    script(&h);
    h.github
        .fail("GetRequiredChecks", Status::unimplemented("unknown method"));
    let task = h.submit("Fix add in calc.py").await;
    h.wait_for(&task.task_id, "completed").await;
}
