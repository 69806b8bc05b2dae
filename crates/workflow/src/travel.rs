//! Time travel (FR-004): a task's checkpoints listed, and a fresh run from any of them.
//!
//! Rolling a task back never rewrites it: the run from the chosen checkpoint is a NEW task (a
//! fork) that names its parent and the checkpoint, starts its own event log at sequence 1,
//! and makes its own workspace, branch and pull request. The parent, its events and its
//! checkpoints stay as they were, so the earlier branch of history is kept and the same
//! checkpoint can be forked again.
//!
//! What a fork takes from the checkpoint's state and what it leaves:
//! - kept: the repository and base commit the parent worked from, its plan, its attempt
//!   count, the base commit's secret allow-list and the constraints it had seen (copied to
//!   the fork's own list);
//! - left: everything that belongs to the parent's workspace or to the forge. The sandbox
//!   session is the parent's (a paused parent still holds it; a quarantined one keeps it for
//!   an Admin), so the fork makes a workspace of its own at the same base commit. The branch,
//!   commit and pull request are the parent's: the fork names its own branch and never
//!   touches the parent's pull request. Approvals a human gave the parent's change, and the
//!   findings and test results about it, describe a change the fork's workspace does not
//!   hold, so every gate asks again.
//!
//! XXX: checkpoints record the workspace's changes by file name, not content, so a fork
//! cannot restore the agent's edits as they were at a checkpoint taken after execute: such a
//! fork runs execute again (then review) in its fresh workspace. A fork from plan or execute
//! loses nothing by this.

use serde_json::json;

use crate::engine::Engine;
use crate::nodes::{Node, WorkflowState};
use crate::store::{CheckpointRecord, Store, TaskRecord, TaskStatus};
use crate::{Error, Result};
use cap_audit::Entry;

/// One checkpoint of a task, as a user picks one to roll back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// `<task_id>:<seq>`: what [`Engine::rollback`] takes.
    pub checkpoint_id: String,
    /// 1-based, per task.
    pub seq: i64,
    /// The node the task was at or going to next; `done` once the graph had ended.
    pub node: String,
    /// What took it: `node_completed`, `event`, `session_created`, ...
    pub kind: String,
    /// The task's last event at that point (0: before its first).
    pub event_seq: i64,
    /// Milliseconds since the epoch.
    pub created_at_ms: i64,
}

/// The id of the task's checkpoint `seq`.
pub fn checkpoint_id(task_id: &str, seq: i64) -> String {
    format!("{task_id}:{seq}")
}

/// The sequence number `checkpoint_id` names among `task_id`'s checkpoints, if it names one of
/// them at all (another task's checkpoint, or no checkpoint id, names none).
fn checkpoint_seq(task_id: &str, checkpoint_id: &str) -> Option<i64> {
    let (task, seq) = checkpoint_id.rsplit_once(':')?;
    if task != task_id {
        return None;
    }
    seq.parse().ok().filter(|seq| *seq > 0)
}

impl CheckpointInfo {
    fn of(task_id: &str, record: CheckpointRecord) -> Self {
        Self {
            checkpoint_id: checkpoint_id(task_id, record.seq),
            seq: record.seq,
            node: record.node,
            kind: record.kind,
            event_seq: record.event_seq,
            created_at_ms: record.created_at_ms,
        }
    }
}

/// The state a fork from a checkpoint holding `state` starts with (see the module's notes),
/// or `None` when the graph had ended there and nothing is left to run from it.
pub(crate) fn fork_state(state: WorkflowState) -> Option<WorkflowState> {
    let next = state.next_node?;
    let resolved = !state.clone_url.is_empty() && !state.base_sha.is_empty();
    let (next, execute_attempts) = match next {
        Node::Plan => (Node::Plan, state.execute_attempts),
        _ if !resolved => (Node::Plan, state.execute_attempts),
        Node::Execute => (Node::Execute, state.execute_attempts),
        // Review checks the change in the workspace, which the fork's does not hold: the
        // attempt that made it is made again.
        Node::Review => (Node::Execute, state.execute_attempts.saturating_sub(1)),
    };
    Some(WorkflowState {
        next_node: Some(next),
        clone_url: state.clone_url,
        base_sha: state.base_sha,
        default_branch: state.default_branch,
        plan: state.plan,
        execute_attempts,
        constraints_seen: state.constraints_seen,
        secrets_allow_list: state.secrets_allow_list,
        ..WorkflowState::default()
    })
}

impl Engine {
    /// The task's checkpoints, oldest first.
    pub async fn list_checkpoints(&self, task_id: &str) -> Result<Vec<CheckpointInfo>> {
        // An unknown task is not found, not a task without checkpoints.
        self.store().get_task(task_id).await?;
        let checkpoints = self.store().checkpoints(task_id).await?;
        Ok(checkpoints
            .into_iter()
            .map(|record| CheckpointInfo::of(task_id, record))
            .collect())
    }

    /// Rolls a paused, failed or completed task back to its checkpoint `checkpoint_id`: a new
    /// task, asked for by `actor`, runs from that checkpoint's state (see the module's notes);
    /// the task rolled back is left as it is. Returns the new task, queued.
    pub async fn rollback(
        &self,
        task_id: &str,
        checkpoint_id: &str,
        actor: &str,
    ) -> Result<TaskRecord> {
        let checkpoint_id = checkpoint_id.trim();
        if checkpoint_id.is_empty() {
            return Err(Error::InvalidRequest(
                "checkpoint_id: must not be empty".into(),
            ));
        }
        let parent = self.store().get_task(task_id).await?;
        match parent.status {
            TaskStatus::Paused | TaskStatus::Failed | TaskStatus::Completed => {}
            TaskStatus::Queued | TaskStatus::Running => {
                return Err(Error::Conflict(format!(
                    "task {task_id} is {}; only a paused, failed or completed task can be \
                     rolled back (interrupt it first)",
                    parent.status.as_str()
                )));
            }
        }
        let not_found = || Error::CheckpointNotFound {
            task_id: task_id.to_owned(),
            checkpoint_id: checkpoint_id.to_owned(),
        };
        let seq = checkpoint_seq(task_id, checkpoint_id).ok_or_else(not_found)?;
        let checkpoint = self
            .store()
            .checkpoint(task_id, seq)
            .await?
            .ok_or_else(not_found)?;
        let stored: WorkflowState = serde_json::from_str(&checkpoint.state_json)?;
        let state = fork_state(stored).ok_or_else(|| {
            Error::Conflict(format!(
                "checkpoint {checkpoint_id} was taken once task {task_id}'s workflow had \
                 ended, so nothing is left to run from it; choose an earlier checkpoint"
            ))
        })?;

        let mut spec = parent.spec.clone();
        spec.requested_by = if actor.trim().is_empty() {
            "anonymous".to_owned()
        } else {
            actor.to_owned()
        };
        let mut fork = Store::new_task(spec);
        fork.parent_task_id = parent.task_id.clone();
        fork.forked_from_checkpoint = checkpoint_id.to_owned();
        let next = state.next_node.unwrap_or(Node::Plan).name();
        fork.current_node = next.to_owned();
        let mut request = serde_json::to_value(&fork.spec)?;
        if let Some(fields) = request.as_object_mut() {
            fields.insert("parent_task_id".into(), json!(parent.task_id));
            fields.insert("forked_from_checkpoint".into(), json!(checkpoint_id));
        }
        // Recorded before the fork is stored, as a submission is: no task runs unrecorded.
        let actor = fork.spec.requested_by.as_str();
        self.inner
            .audit_all(vec![
                Entry::new(
                    actor,
                    "task.rolled_back",
                    task_id,
                    json!({
                        "checkpoint_id": checkpoint_id,
                        "checkpoint_node": checkpoint.node,
                        "checkpoint_kind": checkpoint.kind,
                        "event_seq": checkpoint.event_seq,
                        "fork_task_id": fork.task_id,
                        "fork_starts_at": next,
                    }),
                ),
                Entry::new(actor, "task.submitted", &fork.task_id, request),
            ])
            .await?;
        self.store().insert_task(&fork).await?;
        let constraints = self.store().constraints(task_id).await?;
        for text in constraints.iter().take(state.constraints_seen) {
            self.store().add_constraint(&fork.task_id, text).await?;
        }
        // The fork's first checkpoint, before it runs: a supervisor that stops before the
        // fork's first step resumes it from here, not from a plan of its own.
        self.store()
            .save_checkpoint(
                &fork.task_id,
                "",
                next,
                "forked",
                &serde_json::to_string(&state)?,
            )
            .await?;
        tracing::info!(
            %task_id,
            checkpoint = %checkpoint_id,
            fork = %fork.task_id,
            node = next,
            "task rolled back into a new task"
        );
        self.spawn(fork.clone(), state);
        Ok(fork)
    }
}

#[cfg(test)]
#[path = "travel_tests.rs"]
mod tests;
