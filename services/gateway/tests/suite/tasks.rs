//! Task routes against the in-test supervisor over mTLS.

use axum::http::StatusCode;
use cap_gateway::EventsPolicy;
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::agent::v1::{StatusChange, Thought};
use cap_proto::supervisor::v1::{SubmitTaskRequest, Task};
use pretty_assertions::assert_eq;
use serde_json::json;
use tonic::Status;

use super::support::{CREATED_MS, Fleet, UPDATED_MS, get, post_json, send};

pub const TASK: &str = "7d3c2a4e-8f61-4c1e-9a55-0b1f2e3d4c5b";

pub fn running_task(id: &str) -> Task {
    Task {
        task_id: id.to_owned(),
        repository_id: "acme/widgets".to_owned(),
        prompt: "Add JWT authentication middleware".to_owned(),
        status: "running".to_owned(),
        current_agent: "coding".to_owned(),
        progress_percentage: 45,
        current_node: "execute".to_owned(),
        priority: "high".to_owned(),
        created_at_ms: CREATED_MS,
        updated_at_ms: UPDATED_MS,
        requested_by: "someone-else".to_owned(),
        ..Task::default()
    }
}

fn thought(text: &str) -> Payload {
    Payload::Thought(Thought {
        reasoning: text.to_owned(),
    })
}

fn status(value: &str, progress: u32) -> Payload {
    Payload::Status(StatusChange {
        status: value.to_owned(),
        current_agent: "coding".to_owned(),
        progress_percentage: progress,
    })
}

#[tokio::test]
async fn submit_queues_a_task() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    let body = json!({
        "repository_id": "gh_org/repo_name",
        "prompt": "Add JWT authentication middleware",
        "constraints": {"avoid_files": ["legacy/auth.js"], "max_files_changed": 10},
        "priority": "high",
        "test_command": "npm test",
    });
    let answer = send(&state, post_json("/api/v1/tasks", &body.to_string())).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    let task_id = answer.json["task_id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&task_id).is_ok());
    assert_eq!(
        answer.json,
        json!({"task_id": task_id, "status": "queued", "estimated_duration_minutes": 15})
    );

    // Optional fields take their defaults.
    let answer = send(
        &state,
        post_json(
            "/api/v1/tasks",
            r#"{"repository_id": "a/b", "prompt": "fix the bug", "constraints": {}}"#,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);

    assert_eq!(
        fleet.tasks.submitted(),
        vec![
            SubmitTaskRequest {
                repository_id: "gh_org/repo_name".to_owned(),
                prompt: "Add JWT authentication middleware".to_owned(),
                avoid_files: vec!["legacy/auth.js".to_owned()],
                max_files_changed: 10,
                priority: "high".to_owned(),
                test_command: "npm test".to_owned(),
            },
            SubmitTaskRequest {
                repository_id: "a/b".to_owned(),
                prompt: "fix the bug".to_owned(),
                avoid_files: vec![],
                max_files_changed: 0,
                priority: "normal".to_owned(),
                test_command: String::new(),
            },
        ]
    );

    // The new task is readable at once.
    let answer = send(&state, get(&format!("/api/v1/tasks/{task_id}"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["status"], "queued");
}

#[tokio::test]
async fn get_and_list_show_the_whole_task() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    fleet.tasks.add_task(running_task(TASK), vec![]);
    let mut failed = running_task("0a1b2c3d-0000-4000-8000-000000000001");
    failed.status = "failed".to_owned();
    failed.error_message = "tests kept failing".to_owned();
    failed.pull_request_id = "pr-7".to_owned();
    failed.branch = "coding-assistant/20240101-jwt".to_owned();
    failed.current_agent = String::new();
    fleet.tasks.add_task(failed, vec![]);

    let answer = send(&state, get(&format!("/api/v1/tasks/{TASK}"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let expected = json!({
        "task_id": TASK,
        "status": "running",
        "current_agent": "coding",
        "progress_percentage": 45,
        "logs_url": format!("ws://gateway.test:8080/ws/tasks/{TASK}/stream"),
        "current_node": "execute",
        "repository_id": "acme/widgets",
        "prompt": "Add JWT authentication middleware",
        "priority": "high",
        "requested_by": "someone-else",
        "pull_request_id": null,
        "branch": null,
        "error_message": null,
        "created_at": "2023-11-14T22:13:20Z",
        "updated_at": "2023-11-14T22:14:20Z",
        "parent_task_id": null,
        "forked_from_checkpoint": null,
    });
    assert_eq!(answer.json, expected);

    // Upper-case UUIDs name the same task.
    let answer = send(
        &state,
        get(&format!("/api/v1/tasks/{}", TASK.to_uppercase())),
    )
    .await;
    assert_eq!(answer.json["task_id"], TASK);

    let answer = send(&state, get("/api/v1/tasks")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let tasks = answer.json["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0]["status"], "failed");
    assert_eq!(tasks[0]["error_message"], "tests kept failing");
    assert_eq!(tasks[0]["pull_request_id"], "pr-7");
    assert_eq!(tasks[0]["branch"], "coding-assistant/20240101-jwt");
    assert_eq!(tasks[0]["current_agent"], serde_json::Value::Null);
    assert_eq!(tasks[1], expected);

    let answer = send(&state, get("/api/v1/tasks?limit=1")).await;
    assert_eq!(answer.json["tasks"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn logs_url_follows_the_proxy_scheme() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    fleet.tasks.add_task(running_task(TASK), vec![]);
    let mut request = get(&format!("/api/v1/tasks/{TASK}"));
    request
        .headers_mut()
        .insert("x-forwarded-proto", "https".parse().unwrap());
    request
        .headers_mut()
        .insert("host", "cap.example.org".parse().unwrap());
    let answer = send(&state, request).await;
    assert_eq!(
        answer.json["logs_url"],
        format!("wss://cap.example.org/ws/tasks/{TASK}/stream")
    );
}

#[tokio::test]
async fn events_of_a_finished_task() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    let mut task = running_task(TASK);
    task.status = "completed".to_owned();
    fleet.tasks.add_task(
        task,
        vec![
            status("running", 10),
            thought("read the router"),
            thought("add middleware"),
            status("completed", 100),
        ],
    );

    let answer = send(&state, get(&format!("/api/v1/tasks/{TASK}/events"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let names: Vec<&str> = answer.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "task_status",
            "agent_thought",
            "agent_thought",
            "task_status"
        ]
    );
    assert_eq!(answer.json["next_after_seq"], 4);
    assert_eq!(answer.json["task_finished"], true);
    assert_eq!(
        answer.json["events"][1],
        json!({
            "event": "agent_thought",
            "seq": 2,
            "task_id": TASK,
            "data": {"agent": "coding", "reasoning": "read the router", "timestamp": "2023-11-14T22:13:20.002Z"},
        })
    );

    let answer = send(
        &state,
        get(&format!("/api/v1/tasks/{TASK}/events?after_seq=2")),
    )
    .await;
    let seqs: Vec<i64> = answer.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4]);

    // A page: not finished, continue from next_after_seq.
    let answer = send(&state, get(&format!("/api/v1/tasks/{TASK}/events?limit=3"))).await;
    assert_eq!(answer.json["events"].as_array().unwrap().len(), 3);
    assert_eq!(answer.json["next_after_seq"], 3);
    assert_eq!(answer.json["task_finished"], false);
    let answer = send(
        &state,
        get(&format!("/api/v1/tasks/{TASK}/events?after_seq=3&limit=3")),
    )
    .await;
    assert_eq!(answer.json["events"].as_array().unwrap().len(), 1);
    assert_eq!(answer.json["task_finished"], true);
}

#[tokio::test]
async fn events_of_a_running_task_are_a_bounded_read() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await.with_events_policy(EventsPolicy {
        idle: std::time::Duration::from_millis(300),
        ..EventsPolicy::default()
    });
    fleet.tasks.add_task(
        running_task(TASK),
        vec![status("running", 10), thought("a"), thought("b")],
    );
    let answer = send(&state, get(&format!("/api/v1/tasks/{TASK}/events"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    // The read stops while the stream stays open; whatever it returns is an in-order prefix.
    assert_eq!(answer.json["task_finished"], false);
    let seqs: Vec<i64> = answer.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert_eq!(answer.json["next_after_seq"], seqs.len() as i64);
}

#[tokio::test]
async fn upstream_statuses_map_to_http() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    let uri = format!("/api/v1/tasks/{TASK}");

    // A task the supervisor does not know.
    let answer = send(&state, get(&uri)).await;
    assert_eq!(answer.error(StatusCode::NOT_FOUND).0, "not_found");
    assert_eq!(answer.json["error"]["message"], format!("no task {TASK}"));
    let answer = send(&state, get(&format!("{uri}/events"))).await;
    assert_eq!(answer.error(StatusCode::NOT_FOUND).0, "not_found");

    let cases = [
        (
            Status::invalid_argument("repository acme/nope is unknown"),
            StatusCode::BAD_REQUEST,
            "invalid_argument",
        ),
        (
            Status::failed_precondition("queue paused"),
            StatusCode::CONFLICT,
            "failed_precondition",
        ),
        (
            Status::already_exists("duplicate"),
            StatusCode::CONFLICT,
            "already_exists",
        ),
        (
            Status::unavailable("draining"),
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
        ),
        (
            Status::internal("sqlite: disk I/O error at /data/x.db"),
            StatusCode::BAD_GATEWAY,
            "upstream_error",
        ),
        (
            Status::unknown("boom"),
            StatusCode::BAD_GATEWAY,
            "upstream_error",
        ),
    ];
    for (status, http, code) in cases {
        let message = status.message().to_owned();
        let keeps_message = http == StatusCode::BAD_REQUEST || http == StatusCode::CONFLICT;
        fleet.tasks.fail_next(status);
        let body = r#"{"repository_id": "acme/nope", "prompt": "x"}"#;
        let answer = send(&state, post_json("/api/v1/tasks", body)).await;
        assert_eq!(answer.error(http).0, code, "{message}");
        let shown = answer.json["error"]["message"].as_str().unwrap();
        assert_eq!(shown == message, keeps_message, "{message} -> {shown}");
    }

    fleet.tasks.submit_without_task();
    let answer = send(
        &state,
        post_json(
            "/api/v1/tasks",
            r#"{"repository_id": "a/b", "prompt": "x"}"#,
        ),
    )
    .await;
    assert_eq!(answer.error(StatusCode::BAD_GATEWAY).0, "upstream_error");
}

#[tokio::test]
async fn gateway_with_a_foreign_certificate_is_refused_upstream() {
    let fleet = Fleet::start().await;
    // A gateway whose certificate comes from another CA cannot talk to the fleet.
    let other = tempfile::tempdir().unwrap();
    let tls = cap_mtls::Pki::ensure_dev(other.path())
        .unwrap()
        .service("gateway")
        .unwrap();
    let auth = super::support::authenticator(&other.path().join("identity")).await;
    let state =
        cap_gateway::AppState::connect(&tls, &fleet.supervisor_url, &fleet.github_url, auth)
            .unwrap();
    fleet.tasks.add_task(running_task(TASK), vec![]);
    let answer = send(&state, get(&format!("/api/v1/tasks/{TASK}"))).await;
    assert_eq!(
        answer.error(StatusCode::SERVICE_UNAVAILABLE).0,
        "upstream_unavailable"
    );
}

#[tokio::test]
async fn interrupt_and_resume_move_the_task() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    fleet.tasks.add_task(running_task(TASK), vec![]);

    let paused = send(
        &state,
        post_json(&format!("/api/v1/tasks/{TASK}/interrupt"), ""),
    )
    .await;
    assert_eq!(paused.status, StatusCode::ACCEPTED, "{}", paused.text);
    assert_eq!(paused.json["status"], "paused");
    // Interrupting again conflicts: the supervisor's FailedPrecondition is a 409.
    let again = send(
        &state,
        post_json(&format!("/api/v1/tasks/{TASK}/interrupt"), ""),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);

    let resumed = send(
        &state,
        post_json(&format!("/api/v1/tasks/{TASK}/resume"), ""),
    )
    .await;
    assert_eq!(resumed.status, StatusCode::ACCEPTED, "{}", resumed.text);
    assert_eq!(resumed.json["status"], "queued");

    let unknown = "00000000-0000-4000-8000-000000000000";
    let missing = send(
        &state,
        post_json(&format!("/api/v1/tasks/{unknown}/resume"), ""),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);
    let bad = send(&state, post_json("/api/v1/tasks/not-a-uuid/interrupt", "")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert_eq!(
        bad.error(StatusCode::BAD_REQUEST).1.as_deref(),
        Some("task_id")
    );
}

#[tokio::test]
async fn constraints_and_aborts_reach_the_supervisor_with_their_fields_checked() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    fleet.tasks.add_task(running_task(TASK), vec![]);

    let added = send(
        &state,
        post_json(
            &format!("/api/v1/tasks/{TASK}/constraints"),
            r#"{"text": "Keep the public API"}"#,
        ),
    )
    .await;
    assert_eq!(added.status, StatusCode::ACCEPTED, "{}", added.text);
    assert_eq!(fleet.tasks.constraints(TASK), ["Keep the public API"]);
    for (body, field) in [
        (r#"{"text": "  "}"#, "text"),
        (r#"{"text": 3}"#, "text"),
        (r#"{"text": "a", "extra": 1}"#, "extra"),
    ] {
        let refused = send(
            &state,
            post_json(&format!("/api/v1/tasks/{TASK}/constraints"), body),
        )
        .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            refused.text
        );
        assert_eq!(
            refused.error(StatusCode::BAD_REQUEST).1.as_deref(),
            Some(field),
            "{body}"
        );
    }
    let long = format!(r#"{{"text": "{}"}}"#, "x".repeat(2001));
    let refused = send(
        &state,
        post_json(&format!("/api/v1/tasks/{TASK}/constraints"), &long),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);

    let aborted = send(
        &state,
        post_json(
            &format!("/api/v1/tasks/{TASK}/abort"),
            r#"{"reason": "wrong repository"}"#,
        ),
    )
    .await;
    assert_eq!(aborted.status, StatusCode::ACCEPTED, "{}", aborted.text);
    assert_eq!(aborted.json["status"], "failed");
    assert_eq!(
        aborted.json["error_message"],
        "aborted by a human: wrong repository"
    );
    // Aborting an ended task conflicts; a body is optional.
    let again = send(
        &state,
        post_json(&format!("/api/v1/tasks/{TASK}/abort"), ""),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
}

#[tokio::test]
async fn approve_and_reject_decide_a_paused_task() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    let mut paused = running_task(TASK);
    paused.status = "paused".into();
    fleet.tasks.add_task(paused, vec![]);

    let rejected = send(
        &state,
        post_json(
            &format!("/api/v1/tasks/{TASK}/reject"),
            r#"{"reason": "no workflow changes"}"#,
        ),
    )
    .await;
    assert_eq!(rejected.status, StatusCode::ACCEPTED, "{}", rejected.text);
    assert_eq!(rejected.json["status"], "failed");
    // Deciding a task that does not wait conflicts; a bad body names its field.
    let again = send(
        &state,
        post_json(&format!("/api/v1/tasks/{TASK}/approve"), ""),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    let bad = send(
        &state,
        post_json(&format!("/api/v1/tasks/{TASK}/approve"), r#"{"why": 1}"#),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert_eq!(bad.error(StatusCode::BAD_REQUEST).1.as_deref(), Some("why"));
}
