//! The human in the loop, beyond pause and resume: constraints added to a task while it is
//! queued, running or paused, and aborting a task for good.
//!
//! A constraint is kept with the task (`task_constraints`), reported once by the run that
//! first sees it (a `constraint_added` checkpoint), given to every later agent call
//! (`TaskContext.human_constraints`) and at once to the agent running when it was added
//! (`AddConstraint`). A run on another replica sees it at its next agent call.
//!
//! An abort is asked in the task's row (so any replica can ask it) and reaches the run as an
//! interrupt; where the run would pause, it ends the task instead: failed, its workspace
//! released, an `aborted` checkpoint naming who asked and why. A paused task is aborted by a
//! short run of its own that does just that.

use cap_proto::agent::v1::task_event::Payload;
use cap_proto::agent::v1::{Checkpoint, CheckpointKind};

use crate::engine::{Engine, Run};
use crate::store::{TaskRecord, TaskStatus};
use crate::{Error, Result};

/// The longest constraint a human may add, in characters.
pub const MAX_CONSTRAINT_CHARS: usize = 2000;

/// The task's constraints as a run sees them.
pub(crate) struct Constraints {
    /// All of them, oldest first.
    pub(crate) all: Vec<String>,
    /// Those this run had not seen.
    pub(crate) new: Vec<String>,
}

impl Engine {
    /// Adds a constraint to a queued, running or paused task: kept with it, given to every
    /// later agent call, and at once to the agent running now if the task runs here.
    pub async fn add_constraint(
        &self,
        task_id: &str,
        text: &str,
        actor: &str,
    ) -> Result<TaskRecord> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::InvalidRequest("text: must not be empty".into()));
        }
        let chars = text.chars().count();
        if chars > MAX_CONSTRAINT_CHARS {
            return Err(Error::InvalidRequest(format!(
                "text: {chars} characters; a constraint has at most {MAX_CONSTRAINT_CHARS}"
            )));
        }
        let task = self.store().get_task(task_id).await?;
        if !matches!(
            task.status,
            TaskStatus::Queued | TaskStatus::Running | TaskStatus::Paused
        ) {
            return Err(Error::Conflict(format!(
                "task {task_id} is {}; constraints can be added to queued, running or paused tasks",
                task.status.as_str()
            )));
        }
        self.store().add_constraint(task_id, text).await?;
        if let Some(steered) = crate::lock(&self.inner.steering).get(task_id) {
            // A permit is kept if the run is not waiting right now.
            steered.notify_one();
        }
        tracing::info!(%task_id, "constraint added");
        self.inner
            .audit(
                actor,
                "task.constraint_added",
                task_id,
                serde_json::json!({ "text": text }),
            )
            .await?;
        Ok(task)
    }

    /// Ends a queued, running or paused task for good: it fails as aborted (`reason` in its
    /// error message) and its workspace is released. The run stops at its next step.
    pub async fn abort_task(&self, task_id: &str, reason: &str, actor: &str) -> Result<TaskRecord> {
        let reason = reason.trim();
        let task = self.store().get_task(task_id).await?;
        let refused = || {
            Error::Conflict(format!(
                "task {task_id} is {} and cannot be aborted",
                task.status.as_str()
            ))
        };
        if task.status.is_terminal() || !self.store().request_abort(task_id, reason).await? {
            return Err(refused());
        }
        match task.status {
            TaskStatus::Paused => {
                // Nobody runs it: a run of its own ends it, with the lease and the fence of
                // any run.
                let from = [TaskStatus::Paused];
                if self
                    .store()
                    .transition(task_id, &from, TaskStatus::Queued)
                    .await?
                {
                    let state = self
                        .resume_state(task_id)
                        .await?
                        .unwrap_or_else(crate::WorkflowState::new);
                    self.spawn(self.store().get_task(task_id).await?, state);
                }
            }
            TaskStatus::Queued | TaskStatus::Running => {
                if !self.interrupt_here(task_id) {
                    self.interrupt_elsewhere(task_id).await?;
                }
            }
            TaskStatus::Completed | TaskStatus::Failed => return Err(refused()),
        }
        tracing::info!(%task_id, "abort asked");
        self.inner
            .audit(
                actor,
                "task.aborted",
                task_id,
                serde_json::json!({ "reason": reason }),
            )
            .await?;
        self.store().get_task(task_id).await
    }
}

impl Run {
    /// The task's constraints, reporting (once) those this run had not seen.
    pub(crate) async fn take_constraints(&mut self) -> Result<Constraints> {
        let all = self.inner.store.constraints(&self.task.task_id).await?;
        let new: Vec<String> = all
            .get(self.state.constraints_seen..)
            .unwrap_or_default()
            .to_vec();
        for text in &new {
            self.state.constraints_seen += 1;
            self.emit(
                "supervisor",
                Payload::Checkpoint(Checkpoint {
                    kind: CheckpointKind::ConstraintAdded.into(),
                    description: text.clone(),
                    state_json: self.state_json()?,
                }),
            )
            .await?;
        }
        Ok(Constraints { all, new })
    }

    /// Ends the task as a human asked: failed, the workspace released.
    pub(crate) async fn abort(&mut self, reason: &str) -> Result<()> {
        let message = if reason.is_empty() {
            "aborted by a human".to_owned()
        } else {
            format!("aborted by a human: {reason}")
        };
        tracing::info!(task_id = %self.task.task_id, %message, "task aborted");
        self.state.next_node = None;
        self.emit(
            "supervisor",
            Payload::Checkpoint(Checkpoint {
                kind: CheckpointKind::Aborted.into(),
                description: message.clone(),
                state_json: self.state_json()?,
            }),
        )
        .await?;
        self.destroy_session().await;
        self.task.error_message = message;
        self.set_status(TaskStatus::Failed).await
    }
}
