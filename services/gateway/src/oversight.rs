//! Admin routes over what the supervisor keeps for oversight: the audit log and the
//! quarantined workspaces of tasks whose change held secrets (files shown with every secret
//! redacted; each read is itself audited by the supervisor).

use axum::Extension;
use axum::Json;
use axum::extract::State;
use cap_identity::Principal;
use cap_proto::supervisor::v1::{
    ListAuditRequest, ListQuarantinedRequest, ReadQuarantinedFileRequest,
};
use serde::Serialize;

use crate::auth::acting;
use crate::error::{Error, Result};
use crate::input::{self, PathParam, QueryParams};
use crate::state::AppState;
use crate::tasks::{TaskView, ws_base};

/// One audit record as the API shows it.
#[derive(Debug, Serialize)]
pub struct AuditRecordView {
    /// 1, 2, 3, ... in the chain.
    pub seq: i64,
    /// RFC 3339.
    pub created_at: Option<String>,
    /// Who acted: a user, or `service:<name>`.
    pub actor: String,
    /// What was done (`task.submitted`, `commit.created`, ...).
    pub action: String,
    /// The task, if any.
    pub task_id: Option<String>,
    /// The details (for a pull request: its exact diff).
    pub details: serde_json::Value,
    /// The record's hash in the chain.
    pub hash: String,
}

/// Answer of `GET /api/v1/audit`.
#[derive(Debug, Serialize)]
pub struct AuditList {
    /// Oldest first.
    pub records: Vec<AuditRecordView>,
}

/// `GET /api/v1/audit[?task_id=...&limit=...]`: the newest records, oldest first.
pub async fn audit(
    State(state): State<AppState>,
    Extension(actor): Extension<Principal>,
    query: QueryParams,
) -> Result<Json<AuditList>> {
    query.only(&["task_id", "limit"])?;
    let task_id = match query.get("task_id") {
        Some(raw) => input::task_id(raw)?,
        None => String::new(),
    };
    let limit = query.int("limit", 1, 1000)?.unwrap_or(100);
    let request = ListAuditRequest {
        task_id,
        limit: u32::try_from(limit).unwrap_or(100),
    };
    let response = state
        .call(
            "supervisor",
            "ListAudit",
            state.tasks().list_audit(acting(&actor, request)),
        )
        .await?;
    let records = response
        .records
        .into_iter()
        .map(|record| AuditRecordView {
            seq: record.seq,
            created_at: crate::events::rfc3339_ms(record.created_at_ms),
            actor: record.actor,
            action: record.action,
            task_id: (!record.task_id.is_empty()).then_some(record.task_id),
            details: serde_json::from_str(&record.details_json)
                .unwrap_or(serde_json::Value::String(record.details_json)),
            hash: record.hash,
        })
        .collect();
    Ok(Json(AuditList { records }))
}

/// A quarantined task as the API shows it.
#[derive(Debug, Serialize)]
pub struct QuarantinedView {
    /// The task (failed, naming the rule, file and line).
    pub task: TaskView,
    /// The files the agent changed, to read with `.../files?path=`.
    pub files: Vec<String>,
}

/// Answer of `GET /api/v1/quarantine`.
#[derive(Debug, Serialize)]
pub struct QuarantinedList {
    /// Newest first.
    pub tasks: Vec<QuarantinedView>,
}

/// `GET /api/v1/quarantine`: the tasks whose workspace is kept for an Admin.
pub async fn quarantined(
    State(state): State<AppState>,
    Extension(actor): Extension<Principal>,
    headers: axum::http::HeaderMap,
    query: QueryParams,
) -> Result<Json<QuarantinedList>> {
    query.only(&[])?;
    let response = state
        .call(
            "supervisor",
            "ListQuarantined",
            state
                .tasks()
                .list_quarantined(acting(&actor, ListQuarantinedRequest { limit: 0 })),
        )
        .await?;
    let base = ws_base(&headers);
    let tasks = response
        .tasks
        .into_iter()
        .filter_map(|quarantined| {
            Some(QuarantinedView {
                task: TaskView::new(quarantined.task?, &base),
                files: quarantined.files,
            })
        })
        .collect();
    Ok(Json(QuarantinedList { tasks }))
}

/// Answer of `GET /api/v1/quarantine/{task_id}/files?path=...`.
#[derive(Debug, Serialize)]
pub struct QuarantinedFile {
    /// The path asked for.
    pub path: String,
    /// Its text, with every secret replaced by its redacted fingerprint.
    pub content: String,
}

/// `GET /api/v1/quarantine/{task_id}/files?path=...`: one file of the kept workspace.
pub async fn quarantined_file(
    State(state): State<AppState>,
    Extension(actor): Extension<Principal>,
    PathParam(task_id): PathParam,
    query: QueryParams,
) -> Result<Json<QuarantinedFile>> {
    query.only(&["path"])?;
    let task_id = input::task_id(&task_id)?;
    let path = query
        .get("path")
        .filter(|path| !path.trim().is_empty())
        .ok_or_else(|| {
            Error::bad_request(
                "missing_field",
                Some("path"),
                "query parameter `path` names the file to read, relative to the workspace",
            )
        })?
        .to_owned();
    let request = ReadQuarantinedFileRequest {
        task_id,
        path: path.clone(),
    };
    let response = state
        .call(
            "supervisor",
            "ReadQuarantinedFile",
            state.tasks().read_quarantined_file(acting(&actor, request)),
        )
        .await?;
    Ok(Json(QuarantinedFile {
        path,
        content: response.content,
    }))
}
