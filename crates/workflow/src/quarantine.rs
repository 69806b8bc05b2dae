//! Quarantined workspaces: a task whose change held secrets fails with its sandbox session
//! kept (`WorkflowState::quarantined`), so an Admin can see what the model wrote. Files come
//! back with every secret redacted (the secret itself never leaves the workspace), and each
//! read is in the audit log.

use cap_proto::sandbox::v1::ReadFileRequest;

use crate::{Engine, Error, Result, TaskRecord, TaskStatus};

/// Failed tasks looked through for quarantined ones.
const SCAN_LIMIT: u32 = 1000;

/// A task whose workspace is quarantined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedTask {
    /// The task.
    pub task: TaskRecord,
    /// The sandbox session holding the workspace.
    pub session_id: String,
    /// The files the agent changed.
    pub files: Vec<String>,
}

impl Engine {
    /// The quarantined tasks, newest first, at most `limit`.
    pub async fn quarantined(&self, limit: usize) -> Result<Vec<QuarantinedTask>> {
        let mut found = Vec::new();
        for task in self.store().list_tasks(SCAN_LIMIT).await? {
            if found.len() >= limit {
                break;
            }
            if task.status != TaskStatus::Failed {
                continue;
            }
            if let Some(state) = self.resume_state(&task.task_id).await?
                && state.quarantined
                && !state.session_id.is_empty()
            {
                found.push(QuarantinedTask {
                    task,
                    session_id: state.session_id,
                    files: state.agent_files,
                });
            }
        }
        Ok(found)
    }

    /// The file at `path` of `task_id`'s quarantined workspace, secrets redacted; `actor`'s
    /// read is recorded first.
    pub async fn read_quarantined(&self, task_id: &str, path: &str, actor: &str) -> Result<String> {
        let state = self.resume_state(task_id).await?.unwrap_or_default();
        if !state.quarantined || state.session_id.is_empty() {
            return Err(Error::Conflict(format!(
                "task {task_id} has no quarantined workspace"
            )));
        }
        self.inner
            .audit(
                actor,
                "quarantine.file_read",
                task_id,
                serde_json::json!({ "path": path }),
            )
            .await?;
        let file = self
            .inner
            .clients
            .sandbox
            .read_file(ReadFileRequest {
                session_id: state.session_id,
                path: path.to_owned(),
            })
            .await
            .map_err(|status| Error::upstream("sandbox", status))?;
        Ok(cap_secrets::redact(&String::from_utf8_lossy(&file.content)))
    }
}
