//! Time travel through the REST API: a task's checkpoints, and a rollback into a new task.

use axum::http::StatusCode;
use cap_identity::Role;
use cap_proto::agent::v1::Thought;
use cap_proto::agent::v1::task_event::Payload;
use pretty_assertions::assert_eq;
use serde_json::json;

use super::support::{Fleet, bearer, get, post_json, send, token_of};
use super::tasks::{TASK, running_task};

fn thought(text: &str) -> Payload {
    Payload::Thought(Thought {
        reasoning: text.to_owned(),
    })
}

#[tokio::test]
async fn checkpoints_are_listed_and_a_rollback_forks_a_new_task() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    let mut done = running_task(TASK);
    done.status = "completed".to_owned();
    done.pull_request_id = "pr-1".to_owned();
    fleet
        .tasks
        .add_task(done, vec![thought("planned"), thought("edited")]);
    let viewer = token_of(&state, "vera", Role::Viewer).await;
    let developer = token_of(&state, "dave", Role::Developer).await;
    let checkpoints = format!("/api/v1/tasks/{TASK}/checkpoints");
    let rollback = format!("/api/v1/tasks/{TASK}/rollback");

    // Viewers read the checkpoints.
    let listed = send(&state, bearer(get(&checkpoints), &viewer)).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.json["task_id"], TASK);
    let first = &listed.json["checkpoints"][0];
    assert_eq!(
        (
            first["checkpoint_id"].clone(),
            first["seq"].clone(),
            first["node"].clone(),
            first["kind"].clone(),
            first["event_seq"].clone()
        ),
        (
            json!(format!("{TASK}:1")),
            json!(1),
            json!("execute"),
            json!("event"),
            json!(1)
        )
    );
    assert!(first["created_at"].as_str().is_some(), "{}", listed.text);
    assert_eq!(listed.json["checkpoints"].as_array().unwrap().len(), 2);

    // ... but may not roll back.
    let body = json!({"checkpoint_id": format!("{TASK}:1")}).to_string();
    let refused = send(&state, bearer(post_json(&rollback, &body), &viewer)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);

    // A Developer's rollback answers 202 with the new task; the parent is left as it was.
    let forked = send(&state, bearer(post_json(&rollback, &body), &developer)).await;
    assert_eq!(forked.status, StatusCode::ACCEPTED, "{}", forked.text);
    let fork_id = forked.json["task_id"].as_str().unwrap().to_owned();
    assert_ne!(fork_id, TASK);
    assert_eq!(forked.json["status"], "queued");
    assert_eq!(forked.json["parent_task_id"], TASK);
    assert_eq!(forked.json["forked_from_checkpoint"], format!("{TASK}:1"));
    assert_eq!(forked.json["requested_by"], "dave");
    assert_eq!(forked.json["pull_request_id"], json!(null));
    let parent = send(&state, get(&format!("/api/v1/tasks/{TASK}"))).await;
    assert_eq!(parent.json["status"], "completed");
    assert_eq!(parent.json["pull_request_id"], "pr-1");
    assert_eq!(parent.json["parent_task_id"], json!(null));

    // An unknown checkpoint is a 404 naming it.
    let unknown = json!({"checkpoint_id": format!("{TASK}:99")}).to_string();
    let missing = send(&state, bearer(post_json(&rollback, &unknown), &developer)).await;
    missing.error(StatusCode::NOT_FOUND);
    assert!(
        missing.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{TASK}:99")),
        "{}",
        missing.text
    );

    // A task still queued or running is a 409 naming its state.
    let fork_body = json!({"checkpoint_id": format!("{fork_id}:1")}).to_string();
    let busy = send(
        &state,
        bearer(
            post_json(&format!("/api/v1/tasks/{fork_id}/rollback"), &fork_body),
            &developer,
        ),
    )
    .await;
    busy.error(StatusCode::CONFLICT);
    assert!(
        busy.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is queued"),
        "{}",
        busy.text
    );

    // Bad bodies and ids name what is wrong.
    for (body, field) in [
        ("{}", "checkpoint_id"),
        (r#"{"checkpoint_id": " "}"#, "checkpoint_id"),
        (r#"{"checkpoint_id": 3}"#, "checkpoint_id"),
        (r#"{"checkpoint_id": "a", "extra": 1}"#, "extra"),
    ] {
        let refused = send(&state, bearer(post_json(&rollback, body), &developer)).await;
        assert_eq!(
            refused.error(StatusCode::BAD_REQUEST).1.as_deref(),
            Some(field),
            "{body}: {}",
            refused.text
        );
    }
    let long = json!({"checkpoint_id": "x".repeat(129)}).to_string();
    let refused = send(&state, bearer(post_json(&rollback, &long), &developer)).await;
    refused.error(StatusCode::BAD_REQUEST);
    let bad = send(
        &state,
        bearer(post_json("/api/v1/tasks/nope/rollback", &body), &developer),
    )
    .await;
    assert_eq!(
        bad.error(StatusCode::BAD_REQUEST).1.as_deref(),
        Some("task_id")
    );
    let nobody = "00000000-0000-4000-8000-000000000000";
    let missing = send(&state, get(&format!("/api/v1/tasks/{nobody}/checkpoints"))).await;
    missing.error(StatusCode::NOT_FOUND);
    let missing = send(
        &state,
        bearer(
            post_json(&format!("/api/v1/tasks/{nobody}/rollback"), &body),
            &developer,
        ),
    )
    .await;
    missing.error(StatusCode::NOT_FOUND);
}
