//! The supervisor's store: tasks, their event log and their checkpoints.
//!
//! The event log is the source of truth for what a watcher sees: every event is written (with
//! the checkpoint taken after it) in one transaction before anyone is told about it, so a
//! watcher that reconnects, or a supervisor that restarts, reads exactly what happened. The
//! runs' writes go through one writer that commits them in batches (`writer.rs`).

use cap_audit::{AuditConfig, AuditLog};
use cap_proto::agent::v1::TaskEvent;
use cap_storage::{AnyPool, now_ms};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::writer::{Bind, Write, Writer};
use crate::{Error, Result};

/// The supervisor's migrations (versions 1xxx).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Accepted, not started.
    Queued,
    /// The workflow is running.
    Running,
    /// Stopped by a human; resumable.
    Paused,
    /// A pull request was opened.
    Completed,
    /// Ended without a pull request; `error_message` says why.
    Failed,
}

impl TaskStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            other => return Err(Error::Corrupt(format!("unknown task status {other:?}"))),
        })
    }

    /// Whether the task will not change any more on its own.
    pub fn is_terminal(self) -> bool {
        match self {
            Self::Completed | Self::Failed => true,
            Self::Queued | Self::Running | Self::Paused => false,
        }
    }
}

/// What the user asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Repository as the forge names it.
    pub repository_id: String,
    /// The request in natural language.
    pub prompt: String,
    /// Files the change must not touch.
    #[serde(default)]
    pub avoid_files: Vec<String>,
    /// Most files the change may touch; 0 means no limit.
    #[serde(default)]
    pub max_files_changed: u32,
    /// `low`, `normal` or `high`.
    pub priority: String,
    /// Test command overriding detection; empty means detect.
    #[serde(default)]
    pub test_command: String,
    /// Who asked for it: the signed-in user the gateway named (`cap_runtime::acting_user`).
    #[serde(default)]
    pub requested_by: String,
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    /// UUID.
    pub task_id: String,
    /// The request.
    pub spec: TaskSpec,
    /// Status.
    pub status: TaskStatus,
    /// The workflow node the task is at.
    pub current_node: String,
    /// The agent working on it now.
    pub current_agent: String,
    /// 0..=100.
    pub progress_percentage: u32,
    /// Set once the pull request is open.
    pub pull_request_id: String,
    /// The branch holding the change.
    pub branch: String,
    /// Why the task failed.
    pub error_message: String,
    /// Milliseconds since the epoch.
    pub created_at_ms: i64,
    /// Milliseconds since the epoch.
    pub updated_at_ms: i64,
    /// The task this one was rolled back from; empty for a task submitted.
    pub parent_task_id: String,
    /// The parent's checkpoint (its id, `<task_id>:<seq>`) this task's run started from;
    /// empty for a task submitted.
    pub forked_from_checkpoint: String,
}

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// 1-based, per task, without gaps.
    pub seq: i64,
    /// The event.
    pub event: TaskEvent,
}

/// One stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRecord {
    /// 1-based, per task.
    pub seq: i64,
    /// The node it was taken in or after.
    pub node: String,
    /// `node_completed`, `event`, ...
    pub kind: String,
    /// The last event written before it.
    pub event_seq: i64,
    /// The workflow state as JSON.
    pub state_json: String,
    /// Milliseconds since the epoch.
    pub created_at_ms: i64,
}

/// The checkpoint taken with an event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckpointOf<'a> {
    /// The node it is taken in.
    pub(crate) node: &'a str,
    /// `event`, `node_completed`, ...
    pub(crate) kind: &'a str,
    /// The workflow state as JSON.
    pub(crate) state_json: &'a str,
}

/// The store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// Every write of a run goes through it (group commit).
    writer: Writer,
    /// The audit log, in the same database (`cap-audit`'s own tables).
    audit: AuditLog,
}

const TASK_COLUMNS: &str = "task_id, request_json, status, current_node, current_agent, \
     progress_percentage, pull_request_id, branch, error_message, created_at_ms, updated_at_ms, \
     parent_task_id, forked_from_checkpoint";

impl Store {
    /// Opens the store at `database_url`, running migrations, with its audit log there
    /// (checkpoints unsigned until [`Store::with_audit_signer`]).
    pub async fn open(database_url: &str) -> Result<Self> {
        let backend = cap_storage::Backend::of_url(database_url)?;
        let pool = cap_storage::open(database_url, &MIGRATOR).await?;
        let audit = AuditLog::open(database_url, None, AuditConfig::default()).await?;
        Ok(Self {
            writer: Writer::spawn(pool.clone(), backend),
            pool,
            audit,
        })
    }

    /// The same store, signing its audit log's checkpoints with `signer`.
    pub fn with_audit_signer(mut self, signer: cap_audit::Signer) -> Self {
        self.audit = self.audit.with_signer(signer);
        self
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Creates a queued task.
    pub async fn create_task(&self, spec: TaskSpec) -> Result<TaskRecord> {
        let record = Self::new_task(spec);
        self.insert_task(&record).await?;
        Ok(record)
    }

    /// A queued task not stored yet, with a new id.
    pub fn new_task(spec: TaskSpec) -> TaskRecord {
        let now = now_ms();
        TaskRecord {
            task_id: uuid::Uuid::new_v4().to_string(),
            spec,
            status: TaskStatus::Queued,
            current_node: "plan".to_owned(),
            current_agent: "Supervisor".to_owned(),
            progress_percentage: 0,
            pull_request_id: String::new(),
            branch: String::new(),
            error_message: String::new(),
            created_at_ms: now,
            updated_at_ms: now,
            parent_task_id: String::new(),
            forked_from_checkpoint: String::new(),
        }
    }

    /// Stores a task made by [`Store::new_task`].
    pub async fn insert_task(&self, record: &TaskRecord) -> Result<()> {
        let sql = "INSERT INTO tasks (task_id, repository_id, prompt, priority, request_json, \
             status, current_node, current_agent, progress_percentage, pull_request_id, branch, \
             error_message, created_at_ms, updated_at_ms, parent_task_id, forked_from_checkpoint) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";
        let binds = vec![
            Bind::Text(record.task_id.clone()),
            Bind::Text(record.spec.repository_id.clone()),
            Bind::Text(record.spec.prompt.clone()),
            Bind::Text(record.spec.priority.clone()),
            Bind::Text(serde_json::to_string(&record.spec)?),
            Bind::Text(record.status.as_str().to_owned()),
            Bind::Text(record.current_node.clone()),
            Bind::Text(record.current_agent.clone()),
            Bind::Int(i64::from(record.progress_percentage)),
            Bind::Text(record.pull_request_id.clone()),
            Bind::Text(record.branch.clone()),
            Bind::Text(record.error_message.clone()),
            Bind::Int(record.created_at_ms),
            Bind::Int(record.updated_at_ms),
            Bind::Text(record.parent_task_id.clone()),
            Bind::Text(record.forked_from_checkpoint.clone()),
        ];
        self.writer.submit(Write::Exec { sql, binds }).await?;
        Ok(())
    }

    /// The task, or `Error::TaskNotFound`.
    pub async fn get_task(&self, task_id: &str) -> Result<TaskRecord> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = $1");
        let row = sqlx::query(&sql)
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => task_from_row(&row),
            None => Err(Error::TaskNotFound(task_id.to_owned())),
        }
    }

    /// The newest tasks first.
    pub async fn list_tasks(&self, limit: u32) -> Result<Vec<TaskRecord>> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks ORDER BY created_at_ms DESC, task_id LIMIT $1"
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(task_from_row).collect()
    }

    /// Claims `task_id` for `owner` for `lease` from now: it succeeds when the task is
    /// unfinished and nobody else holds an unexpired lease on it (a replica that restarts
    /// under the same name gets its own tasks back at once). Returns whether `owner` holds it.
    pub async fn claim(&self, task_id: &str, owner: &str, lease: Duration) -> Result<bool> {
        let now = now_ms();
        let sql = "UPDATE tasks SET lease_owner = $1, lease_until_ms = $2 WHERE task_id = $3 \
             AND status IN ('queued', 'running') \
             AND (lease_owner = $1 OR lease_owner = '' OR lease_until_ms < $4)";
        let binds = vec![
            Bind::Text(owner.to_owned()),
            Bind::Int(now + lease_ms(lease)),
            Bind::Text(task_id.to_owned()),
            Bind::Int(now),
        ];
        Ok(self.writer.submit(Write::Exec { sql, binds }).await? == 1)
    }

    /// Extends `owner`'s lease on `task_id`: `None` when it has lost it (another replica took
    /// the task over after it expired), else whether an interrupt was asked of the task.
    pub async fn renew(&self, task_id: &str, owner: &str, lease: Duration) -> Result<Option<bool>> {
        let done = sqlx::query(
            "UPDATE tasks SET lease_until_ms = $1 WHERE task_id = $2 AND lease_owner = $3",
        )
        .bind(now_ms() + lease_ms(lease))
        .bind(task_id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let asked: i64 = sqlx::query("SELECT interrupt_requested FROM tasks WHERE task_id = $1")
            .bind(task_id)
            .fetch_one(&self.pool)
            .await?
            .try_get("interrupt_requested")?;
        Ok(Some(asked != 0))
    }

    /// Asks for the queued or running task to be interrupted, whichever replica runs it;
    /// returns whether the task was queued or running.
    pub async fn request_interrupt(&self, task_id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET interrupt_requested = 1 WHERE task_id = $1 \
             AND status IN ('queued', 'running')",
        )
        .bind(task_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether an interrupt was asked of the task (through any replica) and not yet answered.
    pub async fn interrupt_requested(&self, task_id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT interrupt_requested FROM tasks WHERE task_id = $1")
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(row.try_get::<i64, _>("interrupt_requested")? != 0),
            None => Err(Error::TaskNotFound(task_id.to_owned())),
        }
    }

    /// How many of the task's checkpoints were taken at or after its event `event_seq`: 1
    /// when the checkpoint stored with that event is the newest.
    pub async fn checkpoints_since_event(&self, task_id: &str, event_seq: i64) -> Result<i64> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS taken FROM checkpoints WHERE task_id = $1 AND event_seq >= $2",
        )
        .bind(task_id)
        .bind(event_seq)
        .fetch_one(&self.pool)
        .await?
        .try_get("taken")?)
    }

    /// Adds a constraint to the task, after those it has.
    pub async fn add_constraint(&self, task_id: &str, text: &str) -> Result<()> {
        let sql = "INSERT INTO task_constraints (task_id, seq, text, created_at_ms) \
             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3 FROM task_constraints \
             WHERE task_id = $1";
        let binds = vec![
            Bind::Text(task_id.to_owned()),
            Bind::Text(text.to_owned()),
            Bind::Int(now_ms()),
        ];
        self.writer.submit(Write::Exec { sql, binds }).await?;
        Ok(())
    }

    /// The task's constraints, oldest first.
    pub async fn constraints(&self, task_id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT text FROM task_constraints WHERE task_id = $1 ORDER BY seq")
            .bind(task_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("text")?))
            .collect()
    }

    /// Asks for the queued, running or paused task to be aborted, for `reason`; returns
    /// whether it was one of those.
    pub async fn request_abort(&self, task_id: &str, reason: &str) -> Result<bool> {
        let sql = "UPDATE tasks SET abort_requested = 1, abort_reason = $2, \
             interrupt_requested = 1 \
             WHERE task_id = $1 AND status IN ('queued', 'running', 'paused')";
        let binds = vec![
            Bind::Text(task_id.to_owned()),
            Bind::Text(reason.to_owned()),
        ];
        Ok(self.writer.submit(Write::Exec { sql, binds }).await? == 1)
    }

    /// Why the task was asked to abort (`Some("")`: no reason given), or `None`.
    pub async fn abort_requested(&self, task_id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT abort_requested, abort_reason FROM tasks WHERE task_id = $1")
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::TaskNotFound(task_id.to_owned()))?;
        let asked: i64 = row.try_get("abort_requested")?;
        Ok((asked != 0)
            .then(|| row.try_get("abort_reason"))
            .transpose()?)
    }

    /// Records a human's decision (`approved` or `rejected`) on the task's protected change,
    /// while the task is paused waiting for it; returns whether it was paused.
    pub async fn decide_approval(
        &self,
        task_id: &str,
        decision: &str,
        reason: &str,
    ) -> Result<bool> {
        let sql = "UPDATE tasks SET approval = $2, approval_reason = $3 \
             WHERE task_id = $1 AND status = 'paused'";
        let binds = vec![
            Bind::Text(task_id.to_owned()),
            Bind::Text(decision.to_owned()),
            Bind::Text(reason.to_owned()),
        ];
        Ok(self.writer.submit(Write::Exec { sql, binds }).await? == 1)
    }

    /// The human's decision on the task's protected change (`""` when none) and its reason.
    pub async fn approval(&self, task_id: &str) -> Result<(String, String)> {
        let row = sqlx::query("SELECT approval, approval_reason FROM tasks WHERE task_id = $1")
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::TaskNotFound(task_id.to_owned()))?;
        Ok((row.try_get("approval")?, row.try_get("approval_reason")?))
    }

    /// [`Store::approval`], cleared once read, so the next protected change is asked about
    /// again.
    pub async fn take_approval(&self, task_id: &str) -> Result<(String, String)> {
        let decision = self.approval(task_id).await?;
        if !decision.0.is_empty() {
            let sql = "UPDATE tasks SET approval = '', approval_reason = '' WHERE task_id = $1";
            let binds = vec![Bind::Text(task_id.to_owned())];
            self.writer.submit(Write::Exec { sql, binds }).await?;
        }
        Ok(decision)
    }

    /// Gives up `owner`'s lease on `task_id` (when its run ended here).
    pub async fn release(&self, task_id: &str, owner: &str) -> Result<()> {
        let sql = "UPDATE tasks SET lease_owner = '', lease_until_ms = 0 \
             WHERE task_id = $1 AND lease_owner = $2";
        let binds = vec![Bind::Text(task_id.to_owned()), Bind::Text(owner.to_owned())];
        self.writer.submit(Write::Exec { sql, binds }).await?;
        Ok(())
    }

    /// Unfinished tasks `owner` may claim now (no lease, its own, or an expired one), oldest
    /// first.
    pub async fn claimable_tasks(&self, owner: &str) -> Result<Vec<TaskRecord>> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE status IN ('queued', 'running') \
             AND (lease_owner = $1 OR lease_owner = '' OR lease_until_ms < $2) \
             ORDER BY created_at_ms, task_id"
        );
        let rows = sqlx::query(&sql)
            .bind(owner)
            .bind(now_ms())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(task_from_row).collect()
    }

    /// Writes the task's mutable fields, while `lease_owner` holds its lease (`""`: the
    /// task is run without leases).
    pub async fn update_task(&self, task: &mut TaskRecord, lease_owner: &str) -> Result<()> {
        task.updated_at_ms = now_ms();
        self.writer
            .submit(Write::Task {
                task: Box::new(task.clone()),
                lease_owner: lease_owner.to_owned(),
            })
            .await?;
        Ok(())
    }

    /// Moves the task from one of `from` to `to`, atomically; returns whether it moved (false:
    /// someone else changed its status first).
    pub async fn transition(
        &self,
        task_id: &str,
        from: &[TaskStatus],
        to: TaskStatus,
    ) -> Result<bool> {
        let from: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
        // The statuses are our own constants, not input: inlining them is safe.
        let sql = format!(
            "UPDATE tasks SET status = $1, error_message = '', interrupt_requested = 0, \
             updated_at_ms = $2 WHERE task_id = $3 AND status IN ({})",
            from.join(", ")
        );
        let done = sqlx::query(&sql)
            .bind(to.as_str())
            .bind(now_ms())
            .bind(task_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Appends `event` to the task's log and, in the same transaction, the checkpoint (of
    /// `kind`) taken after it. Returns the event's sequence number.
    pub async fn record_event(
        &self,
        task_id: &str,
        lease_owner: &str,
        event: &TaskEvent,
        node: &str,
        kind: &str,
        state_json: &str,
    ) -> Result<i64> {
        let checkpoint = CheckpointOf {
            node,
            kind,
            state_json,
        };
        self.append_event(task_id, lease_owner, event, Some(checkpoint), None)
            .await
    }

    /// Appends `event` to the task's log with, in the same transaction, the checkpoint taken
    /// after it (if any) and the task's mutable fields (if given; a status change and the
    /// event telling it are then seen together or not at all). Returns the event's sequence
    /// number.
    pub(crate) async fn append_event(
        &self,
        task_id: &str,
        lease_owner: &str,
        event: &TaskEvent,
        checkpoint: Option<CheckpointOf<'_>>,
        task: Option<&mut TaskRecord>,
    ) -> Result<i64> {
        let task = task.map(|task| {
            task.updated_at_ms = now_ms();
            Box::new(task.clone())
        });
        self.writer
            .submit(Write::Event {
                task_id: task_id.to_owned(),
                lease_owner: lease_owner.to_owned(),
                event_json: crate::history::encode(event)?,
                checkpoint: checkpoint.map(|c| {
                    (
                        c.node.to_owned(),
                        c.kind.to_owned(),
                        c.state_json.to_owned(),
                    )
                }),
                task,
            })
            .await
    }

    /// Saves a checkpoint that follows no event (after a node, for instance).
    pub async fn save_checkpoint(
        &self,
        task_id: &str,
        lease_owner: &str,
        node: &str,
        kind: &str,
        state_json: &str,
    ) -> Result<i64> {
        self.writer
            .submit(Write::Checkpoint {
                task_id: task_id.to_owned(),
                lease_owner: lease_owner.to_owned(),
                node: node.to_owned(),
                kind: kind.to_owned(),
                state_json: state_json.to_owned(),
            })
            .await
    }

    /// Events with `seq > after_seq`, oldest first, at most `limit`.
    pub async fn events_after(
        &self,
        task_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<EventRecord>> {
        let rows = sqlx::query(
            "SELECT seq, event_json FROM task_events WHERE task_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(task_id)
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let json: String = row.try_get("event_json")?;
                Ok(EventRecord {
                    seq: row.try_get("seq")?,
                    event: crate::history::decode(&json)?,
                })
            })
            .collect()
    }

    /// The newest checkpoint of the task.
    pub async fn latest_checkpoint(&self, task_id: &str) -> Result<Option<CheckpointRecord>> {
        Ok(self.checkpoints_query(task_id, "DESC LIMIT 1").await?.pop())
    }

    /// All checkpoints of the task, oldest first.
    pub async fn checkpoints(&self, task_id: &str) -> Result<Vec<CheckpointRecord>> {
        self.checkpoints_query(task_id, "ASC").await
    }

    /// The task's checkpoint `seq`, if it has one.
    pub async fn checkpoint(&self, task_id: &str, seq: i64) -> Result<Option<CheckpointRecord>> {
        let rows = sqlx::query(
            "SELECT seq, node, kind, event_seq, state_json, created_at_ms FROM checkpoints \
             WHERE task_id = $1 AND seq = $2",
        )
        .bind(task_id)
        .bind(seq)
        .fetch_all(&self.pool)
        .await?;
        Ok(checkpoints_from_rows(&rows)?.pop())
    }

    async fn checkpoints_query(&self, task_id: &str, order: &str) -> Result<Vec<CheckpointRecord>> {
        let sql = format!(
            "SELECT seq, node, kind, event_seq, state_json, created_at_ms FROM checkpoints \
             WHERE task_id = $1 ORDER BY seq {order}"
        );
        let rows = sqlx::query(&sql)
            .bind(task_id)
            .fetch_all(&self.pool)
            .await?;
        checkpoints_from_rows(&rows)
    }
}

fn checkpoints_from_rows(rows: &[AnyRow]) -> Result<Vec<CheckpointRecord>> {
    rows.iter()
        .map(|row| {
            Ok(CheckpointRecord {
                seq: row.try_get("seq")?,
                node: row.try_get("node")?,
                kind: row.try_get("kind")?,
                event_seq: row.try_get("event_seq")?,
                state_json: row.try_get("state_json")?,
                created_at_ms: row.try_get("created_at_ms")?,
            })
        })
        .collect()
}

fn task_from_row(row: &AnyRow) -> Result<TaskRecord> {
    let request_json: String = row.try_get("request_json")?;
    let status: String = row.try_get("status")?;
    let progress: i64 = row.try_get("progress_percentage")?;
    Ok(TaskRecord {
        task_id: row.try_get("task_id")?,
        spec: serde_json::from_str(&request_json)?,
        status: TaskStatus::parse(&status)?,
        current_node: row.try_get("current_node")?,
        current_agent: row.try_get("current_agent")?,
        progress_percentage: u32::try_from(progress.clamp(0, 100)).unwrap_or(0),
        pull_request_id: row.try_get("pull_request_id")?,
        branch: row.try_get("branch")?,
        error_message: row.try_get("error_message")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        parent_task_id: row.try_get("parent_task_id")?,
        forked_from_checkpoint: row.try_get("forked_from_checkpoint")?,
    })
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
