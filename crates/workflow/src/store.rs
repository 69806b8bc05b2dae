//! The supervisor's store: tasks, their event log and their checkpoints.
//!
//! The event log is the source of truth for what a watcher sees: every event is written (with
//! the checkpoint taken after it) in one transaction before anyone is told about it, so a
//! watcher that reconnects, or a supervisor that restarts, reads exactly what happened.

use cap_proto::agent::v1::TaskEvent;
use cap_storage::{AnyPool, now_ms};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use sqlx::Row;
use sqlx::any::AnyRow;

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

/// The store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: cap_storage::Backend,
}

const TASK_COLUMNS: &str = "task_id, request_json, status, current_node, current_agent, \
     progress_percentage, pull_request_id, branch, error_message, created_at_ms, updated_at_ms";

impl Store {
    /// Opens the store at `database_url`, running migrations.
    pub async fn open(database_url: &str) -> Result<Self> {
        Ok(Self {
            pool: cap_storage::open(database_url, &MIGRATOR).await?,
            backend: cap_storage::Backend::of_url(database_url)?,
        })
    }

    /// Creates a queued task.
    pub async fn create_task(&self, spec: TaskSpec) -> Result<TaskRecord> {
        let now = now_ms();
        let record = TaskRecord {
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
        };
        sqlx::query(
            "INSERT INTO tasks (task_id, repository_id, prompt, priority, request_json, status, \
             current_node, current_agent, progress_percentage, pull_request_id, branch, \
             error_message, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&record.task_id)
        .bind(&record.spec.repository_id)
        .bind(&record.spec.prompt)
        .bind(&record.spec.priority)
        .bind(serde_json::to_string(&record.spec)?)
        .bind(record.status.as_str())
        .bind(&record.current_node)
        .bind(&record.current_agent)
        .bind(i64::from(record.progress_percentage))
        .bind(&record.pull_request_id)
        .bind(&record.branch)
        .bind(&record.error_message)
        .bind(record.created_at_ms)
        .bind(record.updated_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(record)
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
        let done = sqlx::query(
            "UPDATE tasks SET lease_owner = $1, lease_until_ms = $2 WHERE task_id = $3 \
             AND status IN ('queued', 'running') \
             AND (lease_owner = $1 OR lease_owner = '' OR lease_until_ms < $4)",
        )
        .bind(owner)
        .bind(now + lease_ms(lease))
        .bind(task_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
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

    /// Gives up `owner`'s lease on `task_id` (when its run ended here).
    pub async fn release(&self, task_id: &str, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE tasks SET lease_owner = '', lease_until_ms = 0 \
             WHERE task_id = $1 AND lease_owner = $2",
        )
        .bind(task_id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
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
        let done = sqlx::query(
            "UPDATE tasks SET status = $1, current_node = $2, current_agent = $3, \
             progress_percentage = $4, pull_request_id = $5, branch = $6, error_message = $7, \
             updated_at_ms = $8 WHERE task_id = $9 AND lease_owner = $10",
        )
        .bind(task.status.as_str())
        .bind(&task.current_node)
        .bind(&task.current_agent)
        .bind(i64::from(task.progress_percentage))
        .bind(&task.pull_request_id)
        .bind(&task.branch)
        .bind(&task.error_message)
        .bind(task.updated_at_ms)
        .bind(&task.task_id)
        .bind(lease_owner)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            // Either gone or held by another replica; say which.
            self.get_task(&task.task_id).await?;
            return Err(Error::LeaseLost(task.task_id.clone()));
        }
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
        let mut tx = cap_storage::begin_write(&self.pool, self.backend).await?;
        fence(&mut tx, task_id, lease_owner).await?;
        // The next sequence number taken in the insert itself (as the forge numbers reviews).
        let seq: i64 = sqlx::query(
            "INSERT INTO task_events (task_id, seq, event_json, created_at_ms) \
             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3 FROM task_events WHERE task_id = $1 \
             RETURNING seq",
        )
        .bind(task_id)
        .bind(crate::history::encode(event)?)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?
        .try_get("seq")?;
        insert_checkpoint(&mut tx, task_id, node, kind, seq, state_json).await?;
        tx.commit().await?;
        Ok(seq)
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
        let mut tx = cap_storage::begin_write(&self.pool, self.backend).await?;
        fence(&mut tx, task_id, lease_owner).await?;
        let event_seq: i64 =
            sqlx::query("SELECT COALESCE(MAX(seq), 0) AS last FROM task_events WHERE task_id = $1")
                .bind(task_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("last")?;
        let seq = insert_checkpoint(&mut tx, task_id, node, kind, event_seq, state_json).await?;
        tx.commit().await?;
        Ok(seq)
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

    async fn checkpoints_query(&self, task_id: &str, order: &str) -> Result<Vec<CheckpointRecord>> {
        let sql = format!(
            "SELECT seq, node, kind, event_seq, state_json, created_at_ms FROM checkpoints \
             WHERE task_id = $1 ORDER BY seq {order}"
        );
        let rows = sqlx::query(&sql)
            .bind(task_id)
            .fetch_all(&self.pool)
            .await?;
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
}

async fn insert_checkpoint(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    task_id: &str,
    node: &str,
    kind: &str,
    event_seq: i64,
    state_json: &str,
) -> Result<i64> {
    let seq: i64 =
        sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM checkpoints WHERE task_id = $1")
            .bind(task_id)
            .fetch_one(&mut **tx)
            .await?
            .try_get("next")?;
    sqlx::query(
        "INSERT INTO checkpoints (task_id, seq, node, kind, event_seq, state_json, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(task_id)
    .bind(seq)
    .bind(node)
    .bind(kind)
    .bind(event_seq)
    .bind(state_json)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(seq)
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
    })
}

/// Refuses the write unless `lease_owner` still holds the task's lease (`""`: the task is
/// run without leases): a replica that lost a task to another never writes into its log.
async fn fence(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    task_id: &str,
    lease_owner: &str,
) -> Result<()> {
    let held =
        sqlx::query("UPDATE tasks SET updated_at_ms = $1 WHERE task_id = $2 AND lease_owner = $3")
            .bind(now_ms())
            .bind(task_id)
            .bind(lease_owner)
            .execute(&mut **tx)
            .await?;
    if held.rows_affected() == 1 {
        Ok(())
    } else {
        Err(Error::LeaseLost(task_id.to_owned()))
    }
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
