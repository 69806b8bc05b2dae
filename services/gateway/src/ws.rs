//! `GET /ws/tasks/{task_id}/stream` (alias `/logs`): the task's events as WebSocket text
//! frames, stored ones first, then live ones, closed normally when the task ends.

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use cap_proto::supervisor::v1::{TaskEventRecord, WatchTaskRequest};
use tonic::codec::Streaming;

use crate::error::{Error, Result};
use crate::events::ws_event;
use crate::input::{self, PathParam, QueryParams};
use crate::state::AppState;

/// Upgrades to a WebSocket after the upstream stream is open, so an unknown task is a 404
/// answer rather than a socket that closes at once. `?after_seq=N` resumes after event N.
pub async fn stream(
    State(state): State<AppState>,
    axum::Extension(actor): axum::Extension<cap_identity::Principal>,
    PathParam(task_id): PathParam,
    query: QueryParams,
    upgrade: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response> {
    let task_id = input::task_id(&task_id)?;
    query.only(&["after_seq"])?;
    let after_seq = query.int("after_seq", 0, i64::MAX)?.unwrap_or(0);
    let upgrade = upgrade.map_err(|rejection| Error::WebSocketUpgrade {
        status: rejection.status(),
        reason: rejection.body_text(),
    })?;
    let request = WatchTaskRequest {
        task_id: task_id.clone(),
        after_seq,
    };
    let upstream = state
        .call(
            "supervisor",
            "WatchTask",
            state
                .tasks()
                .watch_task(crate::auth::acting(&actor, request)),
        )
        .await?;
    let stopping = state.shutting_down();
    Ok(upgrade
        .on_failed_upgrade(|error| tracing::debug!(%error, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| async move { pump(socket, upstream, &task_id, stopping).await })
        .into_response())
}

async fn pump(
    mut socket: WebSocket,
    mut upstream: Streaming<TaskEventRecord>,
    task_id: &str,
    stopping: impl Future<Output = ()>,
) {
    let mut stopping = std::pin::pin!(stopping);
    let close = loop {
        tokio::select! {
            () = &mut stopping => break close(close_code::AWAY, "gateway shutting down"),
            next = upstream.message() => match next {
                Ok(Some(record)) => {
                    let Some(event) = ws_event(&record) else { continue };
                    let text = match serde_json::to_string(&event) {
                        Ok(text) => text,
                        Err(error) => {
                            tracing::warn!(task_id, seq = record.seq, %error, "cannot encode event");
                            continue;
                        }
                    };
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break close(close_code::NORMAL, "task finished"),
                Err(status) => {
                    let error = Error::upstream("supervisor", "WatchTask", status);
                    tracing::warn!(task_id, error = %cap_errors::Chain(&error), "event stream broke");
                    break close(close_code::ERROR, "upstream event stream failed");
                }
            },
            incoming = socket.recv() => match incoming {
                // The client went away or closed: drop the upstream stream with it.
                None | Some(Err(_)) => return,
                Some(Ok(Message::Close(_))) => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                // The stream is one-way; pings are answered by the protocol layer.
                Some(Ok(_)) => {}
            },
        }
    };
    finish(socket, close).await;
}

/// Sends `frame` and waits (bounded) for the client's close, so the closing handshake
/// completes instead of the TCP connection being cut.
async fn finish(mut socket: WebSocket, frame: CloseFrame) {
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let drain = async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
}

fn close(code: u16, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: reason.into(),
    }
}
