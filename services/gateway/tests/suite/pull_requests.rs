//! Pull-request routes against the in-test github service over mTLS.

use axum::http::StatusCode;
use cap_proto::github::v1::PullRequest;
use pretty_assertions::assert_eq;
use serde_json::json;
use tonic::Status;

use super::support::{
    CREATED_MS, Fleet, TESTER, UPDATED_MS, bearer, get, post_json, post_raw, send, token_of,
};

const DIFF: &str = "diff --git a/src/auth.js b/src/auth.js\n--- a/src/auth.js\n+++ b/src/auth.js\n@@ -1 +1,2 @@\n const a = 1;\n+const b = 2;\n";

pub fn pr(id: &str, number: u64, repository_id: &str) -> PullRequest {
    PullRequest {
        pull_request_id: id.to_owned(),
        repository_id: repository_id.to_owned(),
        number,
        title: "Add JWT middleware".to_owned(),
        body: "Adds auth".to_owned(),
        head_branch: "coding-assistant/20240101-jwt".to_owned(),
        base_branch: "main".to_owned(),
        head_sha: "b".repeat(40),
        base_sha: "a".repeat(40),
        state: "open".to_owned(),
        draft: false,
        task_id: "7d3c2a4e-8f61-4c1e-9a55-0b1f2e3d4c5b".to_owned(),
        diff: DIFF.to_owned(),
        reviews: vec![],
        url: format!("/pull-requests/{id}"),
        created_at_ms: CREATED_MS,
        updated_at_ms: CREATED_MS,
    }
}

#[tokio::test]
async fn a_draft_shows_as_one() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    let mut draft = pr("pr-9", 9, "acme/widgets");
    draft.draft = true;
    fleet.github.add(draft);
    let answer = send(&state, get("/api/v1/pull-requests/pr-9")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["draft"], true);
    let listed = send(&state, get("/api/v1/pull-requests")).await;
    assert_eq!(
        listed.json["pull_requests"][0]["draft"], true,
        "{}",
        listed.text
    );
}

#[tokio::test]
async fn list_and_get() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    fleet.github.add(pr("pr-1", 1, "acme/widgets"));
    fleet.github.add(pr("pr-2", 2, "acme/gadgets"));

    let answer = send(&state, get("/api/v1/pull-requests")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let list = answer.json["pull_requests"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    // Lists leave the diffs out.
    assert!(list[0].get("diff").is_none(), "{}", list[0]);

    let answer = send(
        &state,
        get("/api/v1/pull-requests?repository_id=acme%2Fgadgets"),
    )
    .await;
    let list = answer.json["pull_requests"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["pull_request_id"], "pr-2");
    assert_eq!(
        *fleet.github.list_requests.lock().unwrap(),
        ["", "acme/gadgets"]
    );

    let answer = send(&state, get("/api/v1/pull-requests/pr-1")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.json,
        json!({
            "pull_request_id": "pr-1",
            "repository_id": "acme/widgets",
            "number": 1,
            "title": "Add JWT middleware",
            "body": "Adds auth",
            "head_branch": "coding-assistant/20240101-jwt",
            "base_branch": "main",
            "head_sha": "b".repeat(40),
            "base_sha": "a".repeat(40),
            "state": "open",
            "draft": false,
            "task_id": "7d3c2a4e-8f61-4c1e-9a55-0b1f2e3d4c5b",
            "diff": DIFF,
            "reviews": [],
            "url": "/pull-requests/pr-1",
            "created_at": "2023-11-14T22:13:20Z",
            "updated_at": "2023-11-14T22:13:20Z",
        })
    );

    let answer = send(&state, get("/api/v1/pull-requests/pr-404")).await;
    assert_eq!(answer.error(StatusCode::NOT_FOUND).0, "not_found");
}

#[tokio::test]
async fn review_then_merge() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    fleet.github.add(pr("pr-1", 1, "acme/widgets"));
    // The task that opened it, asked for by someone other than the reviewer.
    let task = super::tasks::running_task("7d3c2a4e-8f61-4c1e-9a55-0b1f2e3d4c5b");
    fleet.tasks.add_task(task, vec![]);

    // Merging before an approval is a conflict.
    let answer = send(
        &state,
        post_raw("/api/v1/pull-requests/pr-1/merge", None, ""),
    )
    .await;
    let (code, _) = answer.error(StatusCode::CONFLICT);
    assert_eq!(code, "failed_precondition");
    assert_eq!(
        answer.json["error"]["message"],
        "the pull request is not approved"
    );

    let body = json!({
        "action": "request_changes",
        "comments": [{"file": "src/auth.js", "line": 2, "body": "Use a constant here"}],
        "reviewer": "alice",
    });
    let alice = token_of(&state, "alice", cap_identity::Role::Developer).await;
    let answer = send(
        &state,
        bearer(
            post_json("/api/v1/pull-requests/pr-1/review", &body.to_string()),
            &alice,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["state"], "changes_requested");
    assert_eq!(
        answer.json["reviews"],
        json!([{
            "review_id": "review-1",
            "action": "request_changes",
            "reviewer": "alice",
            "comments": [{"file": "src/auth.js", "line": 2, "body": "Use a constant here"}],
            "created_at": "2023-11-14T22:14:20Z",
        }])
    );
    assert_eq!(answer.json["diff"], DIFF);
    let _ = UPDATED_MS;

    let answer = send(
        &state,
        post_json(
            "/api/v1/pull-requests/pr-1/review",
            r#"{"action": "approve"}"#,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["state"], "approved");
    // The reviewer is whoever is signed in.
    assert_eq!(answer.json["reviews"][1]["reviewer"], TESTER);
    assert_eq!(answer.json["reviews"][1]["action"], "approve");

    let answer = send(&state, post_json("/api/v1/pull-requests/pr-1/merge", "{}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["state"], "merged");

    // A merged pull request takes no more reviews.
    let answer = send(
        &state,
        post_json(
            "/api/v1/pull-requests/pr-1/review",
            r#"{"action": "reject"}"#,
        ),
    )
    .await;
    assert_eq!(answer.error(StatusCode::CONFLICT).0, "failed_precondition");
}

#[tokio::test]
async fn review_of_an_unknown_pull_request_is_404_and_failures_map() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    let answer = send(
        &state,
        post_json(
            "/api/v1/pull-requests/pr-9/review",
            r#"{"action": "reject"}"#,
        ),
    )
    .await;
    assert_eq!(answer.error(StatusCode::NOT_FOUND).0, "not_found");

    fleet.github.add(pr("pr-1", 1, "acme/widgets"));
    fleet.github.fail_next(Status::unavailable("forge down"));
    let answer = send(&state, get("/api/v1/pull-requests/pr-1")).await;
    assert_eq!(
        answer.error(StatusCode::SERVICE_UNAVAILABLE).0,
        "upstream_unavailable"
    );
    fleet.github.fail_next(Status::data_loss("corrupt"));
    let answer = send(&state, get("/api/v1/pull-requests")).await;
    assert_eq!(answer.error(StatusCode::BAD_GATEWAY).0, "upstream_error");
    assert_eq!(
        answer.json["error"]["message"],
        "an upstream service failed"
    );
}
