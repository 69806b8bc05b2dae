use axum::http::StatusCode;
use axum::response::IntoResponse;
use pretty_assertions::assert_eq;
use tonic::{Code, Status};

use super::*;

#[test]
fn upstream_statuses_map_to_http() {
    let cases = [
        (Code::NotFound, StatusCode::NOT_FOUND, "not_found"),
        (
            Code::InvalidArgument,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
        ),
        (
            Code::FailedPrecondition,
            StatusCode::CONFLICT,
            "failed_precondition",
        ),
        (Code::AlreadyExists, StatusCode::CONFLICT, "already_exists"),
        (
            Code::Unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
        ),
        (Code::Internal, StatusCode::BAD_GATEWAY, "upstream_error"),
        (Code::Unknown, StatusCode::BAD_GATEWAY, "upstream_error"),
        (
            Code::DeadlineExceeded,
            StatusCode::BAD_GATEWAY,
            "upstream_error",
        ),
        (
            Code::PermissionDenied,
            StatusCode::BAD_GATEWAY,
            "upstream_error",
        ),
        (
            Code::Unimplemented,
            StatusCode::BAD_GATEWAY,
            "upstream_error",
        ),
    ];
    for (code, http, name) in cases {
        let (status, got, _) = upstream_response(&Status::new(code, "detail"));
        assert_eq!((status, got), (http, name), "{code:?}");
    }
}

#[test]
fn client_facing_messages_are_kept_and_internal_ones_hidden() {
    let (_, _, message) = upstream_response(&Status::invalid_argument("prompt is empty"));
    assert_eq!(message, "prompt is empty");
    let (_, _, message) = upstream_response(&Status::not_found("no task 42"));
    assert_eq!(message, "no task 42");
    let (_, _, message) =
        upstream_response(&Status::internal("db at /var/lib/secret.sqlite is corrupt"));
    assert!(!message.contains("secret"), "{message}");
    let (_, _, message) = upstream_response(&Status::unavailable("tcp connect error 10.0.0.3"));
    assert!(!message.contains("10.0.0.3"), "{message}");
}

async fn body_of(error: Error) -> (StatusCode, serde_json::Value) {
    let response = error.into_response();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn errors_render_the_json_envelope() {
    let (status, body) = body_of(Error::invalid(
        "missing_field",
        "prompt",
        "`prompt` is required",
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        serde_json::json!({"error": {
            "code": "missing_field",
            "message": "`prompt` is required",
            "field": "prompt",
        }})
    );

    let (status, body) = body_of(Error::RouteNotFound {
        path: "/nope".to_owned(),
    })
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "route_not_found");
    assert_eq!(body["error"]["field"], serde_json::Value::Null);

    let (status, body) = body_of(Error::UnsupportedMediaType {
        found: Some("text/plain".to_owned()),
    })
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["error"]["field"], "content-type");

    let (status, body) = body_of(Error::UpstreamProtocol {
        service: "supervisor",
        call: "SubmitTask",
        missing: "a task",
    })
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["error"]["code"], "upstream_error");
}

#[test]
fn upstream_error_keeps_the_status_as_source() {
    let error = Error::upstream("github", "MergePullRequest", Status::internal("disk full"));
    assert_eq!(error.to_string(), "github MergePullRequest failed");
    let chain = cap_errors::chain(&error);
    assert!(
        chain.starts_with("github MergePullRequest failed: "),
        "{chain}"
    );
    assert!(chain.contains("disk full"), "{chain}");
    assert_eq!(error.status_code(), StatusCode::BAD_GATEWAY);
}
