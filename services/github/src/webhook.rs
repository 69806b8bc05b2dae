//! GitHub webhook deliveries over HTTP (`POST /webhooks/github`).
//!
//! Served by the GitHub service, not the gateway: the design card gives webhooks to the
//! service that owns GitHub's side of the platform (the App, its pull requests and their
//! audit records), and only this service can read a delivery's pull request back from GitHub
//! to tell the platform's from the rest. It is a plain HTTP listener of its own
//! (`--webhook-listen`), because GitHub cannot present a client certificate of the fleet's;
//! the signature is what authenticates a delivery.
//!
//! A delivery without a valid `X-Hub-Signature-256` is refused (401) and logged without its
//! body; one already handled (by `X-GitHub-Delivery`) is acknowledged and not acted on
//! again. Closed (merged or not) pull requests and reviews left on GitHub on the platform's
//! pull requests go into the audit log as `github:<login>`. A labelled issue is logged: tasks
//! from issues are not started yet (docs/github-app.md).

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use cap_audit::AuditLog;
use cap_forge::webhook::{self, Deliveries, WebhookEvent};

use crate::Backend;

/// What the webhook endpoint needs.
#[derive(Clone)]
pub struct WebhookState {
    inner: Arc<Inner>,
}

struct Inner {
    /// The webhook secret; never logged (this type has no `Debug`).
    secret: Vec<u8>,
    deliveries: Deliveries,
    backend: Backend,
    audit: AuditLog,
}

impl WebhookState {
    /// An endpoint checking deliveries against `secret`, remembering them in `deliveries`,
    /// reading pull requests from `backend` and recording in `audit`.
    pub fn new(secret: Vec<u8>, deliveries: Deliveries, backend: Backend, audit: AuditLog) -> Self {
        Self {
            inner: Arc::new(Inner {
                secret,
                deliveries,
                backend,
                audit,
            }),
        }
    }
}

/// The endpoint's router.
pub fn router(state: WebhookState) -> axum::Router {
    axum::Router::new()
        .route(
            "/webhooks/github",
            axum::routing::post(
                |axum::extract::State(state): axum::extract::State<WebhookState>,
                 headers: HeaderMap,
                 body: Bytes| async move { handle(&state, &headers, &body).await },
            ),
        )
        .with_state(state)
}

/// Handles one delivery: the status and a short text for GitHub's delivery log.
pub async fn handle(
    state: &WebhookState,
    headers: &HeaderMap,
    body: &[u8],
) -> (StatusCode, String) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let event = header("x-github-event").unwrap_or_default().to_owned();
    let delivery = header("x-github-delivery").unwrap_or_default().to_owned();
    let inner = &state.inner;
    if let Err(error) =
        webhook::verify_signature(&inner.secret, body, header("x-hub-signature-256"))
    {
        // Neither the body nor the header's value: an attacker's bytes stay out of the log.
        tracing::warn!(%event, %delivery, bytes = body.len(), error = %error, "webhook delivery refused");
        return (StatusCode::UNAUTHORIZED, error.to_string());
    }
    match inner.deliveries.first_time(&delivery, &event).await {
        Ok(true) => {}
        Ok(false) => {
            return (
                StatusCode::OK,
                format!("delivery {delivery} already handled"),
            );
        }
        Err(cap_forge::Error::WebhookPayload(reason)) => {
            return (StatusCode::BAD_REQUEST, reason);
        }
        Err(error) => {
            tracing::error!(error = %cap_errors::Chain(&error), "cannot record a webhook delivery");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot record the delivery; redeliver it later".to_owned(),
            );
        }
    }
    let (status, text) = act(state, &event, &delivery, body).await;
    if status == StatusCode::SERVICE_UNAVAILABLE
        && let Err(error) = inner.deliveries.forget(&delivery).await
    {
        tracing::error!(%delivery, error = %cap_errors::Chain(&error), "cannot forget a failed webhook delivery; its redelivery will be skipped");
    }
    (status, text)
}

/// Acts on a delivery whose signature was good and which was not seen before.
async fn act(
    state: &WebhookState,
    event: &str,
    delivery: &str,
    body: &[u8],
) -> (StatusCode, String) {
    let inner = &state.inner;
    let parsed = match webhook::parse_event(event, body) {
        Ok(parsed) => parsed,
        Err(error) => return (StatusCode::BAD_REQUEST, error.to_string()),
    };
    match parsed {
        WebhookEvent::PullRequestClosed {
            repository_id,
            number,
            merged,
            sender,
        } => {
            let action = if merged {
                "pull_request.merged"
            } else {
                "pull_request.closed"
            };
            let details = serde_json::json!({"source": "webhook", "delivery": delivery});
            record(inner, &repository_id, number, &sender, action, details).await
        }
        WebhookEvent::PullRequestReviewed {
            repository_id,
            number,
            state,
            reviewer,
        } => {
            let details = serde_json::json!({
                "source": "webhook",
                "delivery": delivery,
                "review": state,
                "reviewer": format!("github:{reviewer}"),
            });
            record(
                inner,
                &repository_id,
                number,
                &reviewer,
                "pull_request.reviewed",
                details,
            )
            .await
        }
        WebhookEvent::IssueLabeled {
            repository_id,
            number,
            label,
            sender,
            ..
        } => {
            tracing::info!(%repository_id, number, %label, %sender, "issue labelled; tasks from issues are not started yet");
            (
                StatusCode::ACCEPTED,
                "issue noted; tasks from issues are not started yet".to_owned(),
            )
        }
        WebhookEvent::Ignored { what } => (StatusCode::OK, format!("{what} not acted on")),
    }
}

/// Records `action` by `github:<login>` on pull request `number`, when it is one of the
/// platform's (it carries a task id).
async fn record(
    inner: &Inner,
    repository_id: &str,
    number: u64,
    login: &str,
    action: &str,
    mut details: serde_json::Value,
) -> (StatusCode, String) {
    let id = match &inner.backend {
        Backend::GitHub(_) => cap_forge::github::pull_request_id(repository_id, number),
        Backend::Local(_) => {
            return (
                StatusCode::OK,
                "the local forge's pull requests are not GitHub's".to_owned(),
            );
        }
    };
    let pr = match &inner.backend {
        Backend::GitHub(forge) => forge.get_pull_request(&id).await,
        Backend::Local(forge) => forge.get_pull_request(&id).await,
    };
    let pr = match pr {
        Ok(pr) => pr,
        Err(error) => {
            tracing::warn!(%id, error = %cap_errors::Chain(&error), "webhook's pull request unreadable");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read pull request {id}; redeliver later"),
            );
        }
    };
    if pr.task_id.is_empty() {
        return (StatusCode::OK, format!("{id} is not the platform's"));
    }
    details["pull_request_id"] = serde_json::json!(pr.pull_request_id);
    details["head_sha"] = serde_json::json!(pr.head_sha);
    let entry = cap_audit::Entry::new(&format!("github:{login}"), action, &pr.task_id, details);
    match inner.audit.append_retrying(&[entry]).await {
        Ok(_) => (StatusCode::OK, format!("{action} of {id} recorded")),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit record could not be written; redeliver later".to_owned(),
        ),
    }
}
