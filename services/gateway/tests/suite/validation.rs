//! Every bad input is a 4xx JSON error naming what was wrong; nothing reaches upstream.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use pretty_assertions::assert_eq;

use super::support::{get, offline_state, post_json, post_raw, send};

const TASK: &str = "7d3c2a4e-8f61-4c1e-9a55-0b1f2e3d4c5b";

/// (body, status, code, field) for `POST /api/v1/tasks`.
const SUBMIT_CASES: &[(&str, u16, &str, Option<&str>)] = &[
    (
        r#"{"repository_id": "a/b", "prompt": "x",}"#,
        400,
        "malformed_json",
        None,
    ),
    (r#"{"repository_id": "a/b""#, 400, "malformed_json", None),
    ("", 400, "malformed_json", None),
    (
        r#"{"repository_id": "a/b", "prompt": "x"} trailing"#,
        400,
        "malformed_json",
        None,
    ),
    (
        r#"{"prompt": "x"}"#,
        400,
        "missing_field",
        Some("repository_id"),
    ),
    (
        r#"{"repository_id": "a/b"}"#,
        400,
        "missing_field",
        Some("prompt"),
    ),
    (
        r#"{"repository_id": "", "prompt": "x"}"#,
        400,
        "invalid_value",
        Some("repository_id"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": "   "}"#,
        400,
        "invalid_value",
        Some("prompt"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": 5}"#,
        400,
        "invalid_type",
        Some("prompt"),
    ),
    (
        r#"{"repository_id": ["a/b"], "prompt": "x"}"#,
        400,
        "invalid_type",
        Some("repository_id"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": null}"#,
        400,
        "invalid_type",
        Some("prompt"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": "x", "priorty": "low"}"#,
        400,
        "unknown_field",
        Some("priorty"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": "x", "priority": "urgent"}"#,
        400,
        "invalid_value",
        Some("priority"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": "x", "priority": 1}"#,
        400,
        "invalid_type",
        Some("priority"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": "x", "test_command": false}"#,
        400,
        "invalid_type",
        Some("test_command"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": "x", "test_command": " "}"#,
        400,
        "invalid_value",
        Some("test_command"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": "x", "constraints": []}"#,
        400,
        "invalid_type",
        Some("constraints"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": "x", "constraints": "none"}"#,
        400,
        "invalid_type",
        Some("constraints"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": "x", "constraints": {"max_files": 3}}"#,
        400,
        "unknown_field",
        Some("constraints.max_files"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": "x", "constraints": {"max_files_changed": -1}}"#,
        400,
        "invalid_value",
        Some("constraints.max_files_changed"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": "x", "constraints": {"max_files_changed": 1.5}}"#,
        400,
        "invalid_type",
        Some("constraints.max_files_changed"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": "x", "constraints": {"max_files_changed": 99999999999}}"#,
        400,
        "invalid_value",
        Some("constraints.max_files_changed"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": "x", "constraints": {"avoid_files": "a.js"}}"#,
        400,
        "invalid_type",
        Some("constraints.avoid_files"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": "x", "constraints": {"avoid_files": ["a.js", 3]}}"#,
        400,
        "invalid_type",
        Some("constraints.avoid_files[1]"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": "x", "constraints": {"avoid_files": ["ok.js", "../x"]}}"#,
        400,
        "invalid_path",
        Some("constraints.avoid_files[1]"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": "x", "constraints": {"avoid_files": ["/etc/passwd"]}}"#,
        400,
        "invalid_path",
        Some("constraints.avoid_files[0]"),
    ),
    (
        r#"{"repository_id": "a/b", "prompt": "x", "repository_id": "c/d"}"#,
        400,
        "duplicate_field",
        Some("repository_id"),
    ),
    (r#"["a/b", "x"]"#, 400, "invalid_type", None),
];

#[tokio::test]
async fn submit_task_names_each_bad_field() {
    let (_dir, state) = offline_state().await;
    for (body, status, code, field) in SUBMIT_CASES {
        let answer = send(&state, post_json("/api/v1/tasks", body)).await;
        let got = answer.error(StatusCode::from_u16(*status).unwrap());
        assert_eq!(
            got,
            (code.to_string(), field.map(str::to_owned)),
            "{body}: {}",
            answer.text
        );
    }
}

#[tokio::test]
async fn prompt_length_is_counted_in_characters() {
    let (_dir, state) = offline_state().await;
    let too_long = "é".repeat(20_001);
    let body = serde_json::json!({"repository_id": "a/b", "prompt": too_long}).to_string();
    let answer = send(&state, post_json("/api/v1/tasks", &body)).await;
    assert_eq!(
        answer.error(StatusCode::BAD_REQUEST),
        ("invalid_value".to_owned(), Some("prompt".to_owned()))
    );
    assert!(
        answer.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("20001 characters")
    );

    // 20 000 characters pass validation and go upstream, which is offline here.
    let body =
        serde_json::json!({"repository_id": "a/b", "prompt": "é".repeat(20_000)}).to_string();
    let answer = send(&state, post_json("/api/v1/tasks", &body)).await;
    assert_eq!(
        answer.error(StatusCode::SERVICE_UNAVAILABLE).0,
        "upstream_unavailable"
    );
}

#[tokio::test]
async fn content_type_must_be_json() {
    let (_dir, state) = offline_state().await;
    let body = r#"{"repository_id": "a/b", "prompt": "x"}"#;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let answer = send(&state, post_raw("/api/v1/tasks", content_type, body)).await;
        assert_eq!(
            answer.error(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            (
                "unsupported_media_type".to_owned(),
                Some("content-type".to_owned())
            ),
            "{content_type:?}"
        );
    }
    let answer = send(
        &state,
        post_raw(
            "/api/v1/pull-requests/pr-1/review",
            Some("text/plain"),
            "{}",
        ),
    )
    .await;
    assert_eq!(
        answer.error(StatusCode::UNSUPPORTED_MEDIA_TYPE).0,
        "unsupported_media_type"
    );
    let answer = send(
        &state,
        post_raw("/api/v1/pull-requests/pr-1/merge", Some("text/plain"), "x"),
    )
    .await;
    assert_eq!(
        answer.error(StatusCode::UNSUPPORTED_MEDIA_TYPE).0,
        "unsupported_media_type"
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let (_dir, state) = offline_state().await;
    let body = format!(
        r#"{{"repository_id": "a/b", "prompt": "{}"}}"#,
        "x".repeat(2 << 20)
    );
    let answer = send(&state, post_json("/api/v1/tasks", &body)).await;
    assert_eq!(
        answer.error(StatusCode::PAYLOAD_TOO_LARGE).0,
        "payload_too_large"
    );
}

#[tokio::test]
async fn task_ids_must_be_uuids() {
    let (_dir, state) = offline_state().await;
    for uri in [
        "/api/v1/tasks/42",
        "/api/v1/tasks/not-a-uuid/events",
        "/ws/tasks/..%2F..%2Fetc/stream",
        "/ws/tasks/abc/logs",
    ] {
        let answer = send(&state, get(uri)).await;
        assert_eq!(
            answer.error(StatusCode::BAD_REQUEST),
            ("invalid_task_id".to_owned(), Some("task_id".to_owned())),
            "{uri}"
        );
    }
}

#[tokio::test]
async fn query_parameters_are_checked() {
    let (_dir, state) = offline_state().await;
    let cases = [
        (
            format!("/api/v1/tasks/{TASK}/events?after_seq=-1"),
            "invalid_value",
            "after_seq",
        ),
        (
            format!("/api/v1/tasks/{TASK}/events?after_seq=x"),
            "invalid_type",
            "after_seq",
        ),
        (
            format!("/api/v1/tasks/{TASK}/events?limit=0"),
            "invalid_value",
            "limit",
        ),
        (
            format!("/api/v1/tasks/{TASK}/events?since=3"),
            "unknown_field",
            "since",
        ),
        (
            format!("/api/v1/tasks/{TASK}?verbose=1"),
            "unknown_field",
            "verbose",
        ),
        (
            "/api/v1/tasks?limit=501".to_owned(),
            "invalid_value",
            "limit",
        ),
        (
            "/api/v1/tasks?limit=1&limit=2".to_owned(),
            "invalid_value",
            "limit",
        ),
        (
            "/api/v1/pull-requests?repo=a".to_owned(),
            "unknown_field",
            "repo",
        ),
        (
            format!("/ws/tasks/{TASK}/stream?after_seq=-5"),
            "invalid_value",
            "after_seq",
        ),
    ];
    for (uri, code, field) in cases {
        let answer = send(&state, get(&uri)).await;
        assert_eq!(
            answer.error(StatusCode::BAD_REQUEST),
            (code.to_owned(), Some(field.to_owned())),
            "{uri}"
        );
    }
}

/// (body, status, code, field) for `POST /api/v1/pull-requests/{id}/review`.
const REVIEW_CASES: &[(&str, u16, &str, Option<&str>)] = &[
    ("{}", 400, "missing_field", Some("action")),
    (
        r#"{"action": "maybe"}"#,
        400,
        "invalid_value",
        Some("action"),
    ),
    (
        r#"{"action": "APPROVE"}"#,
        400,
        "invalid_value",
        Some("action"),
    ),
    (
        r#"{"action": "approve", "comment": "x"}"#,
        400,
        "unknown_field",
        Some("comment"),
    ),
    (
        r#"{"action": "approve", "reviewer": ""}"#,
        400,
        "invalid_value",
        Some("reviewer"),
    ),
    (
        r#"{"action": "approve", "reviewer": 7}"#,
        400,
        "invalid_type",
        Some("reviewer"),
    ),
    (
        r#"{"action": "approve", "comments": {"file": "a"}}"#,
        400,
        "invalid_type",
        Some("comments"),
    ),
    (
        r#"{"action": "approve", "comments": [["a.js", 1, "b"]]}"#,
        400,
        "invalid_type",
        Some("comments[0]"),
    ),
    (
        r#"{"action": "approve", "comments": [{"file": "a.js", "line": 1}]}"#,
        400,
        "missing_field",
        Some("comments[0].body"),
    ),
    (
        r#"{"action": "approve", "comments": [{"file": "a.js", "line": 1, "body": "ok", "side": "left"}]}"#,
        400,
        "unknown_field",
        Some("comments[0].side"),
    ),
    (
        r#"{"action": "approve", "comments": [{"file": "a.js", "line": 1, "body": "ok"}, {"file": "a.js", "line": 0, "body": "x"}]}"#,
        400,
        "invalid_value",
        Some("comments[1].line"),
    ),
    (
        r#"{"action": "approve", "comments": [{"file": "a.js", "line": -3, "body": "x"}]}"#,
        400,
        "invalid_value",
        Some("comments[0].line"),
    ),
    (
        r#"{"action": "approve", "comments": [{"file": "a.js", "line": "42", "body": "x"}]}"#,
        400,
        "invalid_type",
        Some("comments[0].line"),
    ),
    (
        r#"{"action": "approve", "comments": [{"file": "/etc/passwd", "line": 1, "body": "x"}]}"#,
        400,
        "invalid_path",
        Some("comments[0].file"),
    ),
    (
        r#"{"action": "approve", "comments": [{"file": ".git/config", "line": 1, "body": "x"}]}"#,
        400,
        "invalid_path",
        Some("comments[0].file"),
    ),
    (
        r#"{"action": "approve", "comments": [{"file": "a.js", "line": 1, "body": ""}]}"#,
        400,
        "invalid_value",
        Some("comments[0].body"),
    ),
    (r#"{"action": "approve""#, 400, "malformed_json", None),
];

#[tokio::test]
async fn review_names_each_bad_field() {
    let (_dir, state) = offline_state().await;
    for (body, status, code, field) in REVIEW_CASES {
        let answer = send(&state, post_json("/api/v1/pull-requests/pr-1/review", body)).await;
        let got = answer.error(StatusCode::from_u16(*status).unwrap());
        assert_eq!(
            got,
            (code.to_string(), field.map(str::to_owned)),
            "{body}: {}",
            answer.text
        );
    }
}

#[tokio::test]
async fn merge_takes_no_fields() {
    let (_dir, state) = offline_state().await;
    let answer = send(
        &state,
        post_json("/api/v1/pull-requests/pr-1/merge", r#"{"force": true}"#),
    )
    .await;
    assert_eq!(
        answer.error(StatusCode::BAD_REQUEST),
        ("unknown_field".to_owned(), Some("force".to_owned()))
    );
    let answer = send(&state, post_json("/api/v1/pull-requests/pr-1/merge", "[]")).await;
    assert_eq!(answer.error(StatusCode::BAD_REQUEST).0, "invalid_type");
}

#[tokio::test]
async fn pull_request_ids_are_checked() {
    let (_dir, state) = offline_state().await;
    let long = "x".repeat(300);
    for uri in [
        "/api/v1/pull-requests/%20".to_owned(),
        format!("/api/v1/pull-requests/{long}"),
        "/api/v1/pull-requests/a%0Ab".to_owned(),
    ] {
        let answer = send(&state, get(&uri)).await;
        assert_eq!(
            answer.error(StatusCode::BAD_REQUEST),
            (
                "invalid_pull_request_id".to_owned(),
                Some("pr_id".to_owned())
            ),
            "{uri}"
        );
    }
    let answer = send(&state, get("/api/v1/pull-requests/%FF")).await;
    assert_eq!(answer.error(StatusCode::BAD_REQUEST).0, "invalid_path");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json() {
    let (_dir, state) = offline_state().await;
    let answer = send(&state, get("/api/v1/nope")).await;
    assert_eq!(
        answer.error(StatusCode::NOT_FOUND),
        ("route_not_found".to_owned(), None)
    );
    assert_eq!(answer.content_type, "application/json");

    let request = Request::delete("/api/v1/tasks")
        .body(Body::empty())
        .unwrap();
    let answer = send(&state, request).await;
    assert_eq!(
        answer.error(StatusCode::METHOD_NOT_ALLOWED),
        ("method_not_allowed".to_owned(), None)
    );
}

#[tokio::test]
async fn websocket_routes_need_an_upgrade() {
    let (_dir, state) = offline_state().await;
    let answer = send(&state, get(&format!("/ws/tasks/{TASK}/stream"))).await;
    let status = answer.status;
    assert!(status.is_client_error(), "{status}");
    assert_eq!(answer.error(status).0, "websocket_upgrade_required");
}

#[tokio::test]
async fn unreachable_upstream_is_503() {
    let (_dir, state) = offline_state().await;
    for uri in [
        "/api/v1/tasks".to_owned(),
        format!("/api/v1/tasks/{TASK}"),
        "/api/v1/pull-requests".to_owned(),
    ] {
        let answer = send(&state, get(&uri)).await;
        assert_eq!(
            answer.error(StatusCode::SERVICE_UNAVAILABLE).0,
            "upstream_unavailable",
            "{uri}"
        );
    }
}
