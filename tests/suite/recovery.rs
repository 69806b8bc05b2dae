//! A supervisor that crashes mid-task resumes the task from its last checkpoint.

use std::time::Duration;

use pretty_assertions::assert_eq;
use serde_json::json;

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_supervisor_resumes_the_task_from_its_last_checkpoint() {
    let mut fleet = TestFleet::start(load_script("python-calculator.script.json"), None).await;
    let repository_id = format!("e2e/recovery-{}", uuid::Uuid::new_v4().simple());
    fleet.create_repository(&repository_id, &fixtures().join("python-calculator"));

    // With the testing agent down, the review node fails and waits to retry: the coding
    // agent's work is done and checkpointed, the pull request not yet opened.
    fleet.fleet.kill("testing-agent").await.unwrap();
    let task_id = fleet
        .submit(&repository_id, "Fix the bug that makes test_add fail.")
        .await;
    wait_for_review_retry(&fleet, &task_id).await;

    // The supervisor dies without shutting down, then comes back with its dependencies.
    fleet.fleet.kill("supervisor").await.unwrap();
    fleet.fleet.restart("testing-agent").await.unwrap();
    fleet.fleet.restart("supervisor").await.unwrap();

    let events = fleet.stream_events(&task_id).await.unwrap();
    let task = fleet.wait_for_end(&task_id).await.unwrap();
    assert_eq!(
        task["status"],
        "completed",
        "task: {task}\n{}",
        fleet.logs()
    );
    assert!(!task["pull_request_id"].as_str().unwrap().is_empty());

    // The coding agent ran once: the resumed run started at review, not from scratch.
    assert_eq!(fleet.model.requests().len(), 4);
    let finished = events
        .iter()
        .filter(|e| e["event"] == "checkpoint_reached" && e["data"]["type"] == "agent_finished")
        .count();
    assert_eq!(finished, 1);
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
    find_event(&events, 0, "checkpoint_reached", |d| {
        d["type"] == "human_approval_required"
    })
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_task_resumes_where_it_stopped() {
    let mut fleet = TestFleet::start(load_script("python-calculator.script.json"), None).await;
    let repository_id = format!("e2e/pause-{}", uuid::Uuid::new_v4().simple());
    fleet.create_repository(&repository_id, &fixtures().join("python-calculator"));

    fleet.fleet.kill("testing-agent").await.unwrap();
    let task_id = fleet
        .submit(&repository_id, "Fix the bug that makes test_add fail.")
        .await;
    wait_for_review_retry(&fleet, &task_id).await;

    // A human pauses the task while review waits to retry.
    let (status, paused) = fleet
        .post(&format!("/api/v1/tasks/{task_id}/interrupt"), json!({}))
        .await;
    assert_eq!(status, 202, "{paused}");
    let task = fleet.wait_for_end(&task_id).await.unwrap();
    assert_eq!(task["status"], "paused", "{task}");
    let (status, body) = fleet
        .post(&format!("/api/v1/tasks/{task_id}/interrupt"), json!({}))
        .await;
    assert_eq!(status, 409, "{body}");

    fleet.fleet.restart("testing-agent").await.unwrap();
    let (status, resumed) = fleet
        .post(&format!("/api/v1/tasks/{task_id}/resume"), json!({}))
        .await;
    assert_eq!(status, 202, "{resumed}");
    let events = fleet.stream_events(&task_id).await.unwrap();
    let task = fleet.wait_for_end(&task_id).await.unwrap();
    assert_eq!(
        task["status"],
        "completed",
        "task: {task}\n{}",
        fleet.logs()
    );
    // Resumed at review: the coding agent's work was kept, not redone.
    assert_eq!(fleet.model.requests().len(), 4);
    let paused_at =
        find_event(&events, 0, "checkpoint_reached", |d| d["type"] == "paused").unwrap();
    find_event(&events, paused_at, "checkpoint_reached", |d| {
        d["type"] == "tests_passed"
    })
    .unwrap();

    let (status, body) = fleet
        .post(&format!("/api/v1/tasks/{task_id}/resume"), json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
}

/// Waits until the review node failed once and waits to retry (the testing agent is down).
async fn wait_for_review_retry(fleet: &TestFleet, task_id: &str) {
    let waiting = async {
        loop {
            let (_, page) = fleet.get(&format!("/api/v1/tasks/{task_id}/events")).await;
            let retrying = page["events"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|event| {
                    event["event"] == "error"
                        && event["data"]["recoverable"] == true
                        && event["data"]["message"]
                            .as_str()
                            .unwrap_or("")
                            .starts_with("review failed")
                });
            if retrying {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(TASK_DEADLINE, waiting)
        .await
        .expect("the review node never retried");
}
