//! The store's one writer: the runs' writes (events with their checkpoints, checkpoints alone,
//! task rows) wait in a queue and are committed together, as many as are waiting in one
//! transaction (group commit). Many workflows at once then cost one commit per batch instead
//! of one per event, and on SQLite no two writers ever contend for the lock.
//!
//! Each write is fenced by its task's lease as before; a write refused by its fence writes
//! nothing, so the rest of its batch commits. A statement that fails rolls its batch back and
//! every write of it is run again alone, so each error reaches the write that caused it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cap_storage::{AnyPool, Backend, now_ms};
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use crate::store::TaskRecord;
use crate::{Error, Result};

/// Writes committed in one transaction at most: bounds a batch's latency.
const MAX_BATCH: usize = 256;

/// One write a run asks for.
#[derive(Debug)]
pub(crate) enum Write {
    /// An event with the checkpoint taken after it, and the task row when it changed with it.
    Event {
        task_id: String,
        lease_owner: String,
        event_json: String,
        /// The checkpoint's node, kind and state, when one is taken with it.
        checkpoint: Option<(String, String, String)>,
        task: Option<Box<TaskRecord>>,
    },
    /// A checkpoint that follows no event.
    Checkpoint {
        task_id: String,
        lease_owner: String,
        node: String,
        kind: String,
        state_json: String,
    },
    /// The task row's mutable fields.
    Task {
        task: Box<TaskRecord>,
        lease_owner: String,
    },
    /// A statement of its own, unfenced (creating a task, claiming or releasing its lease):
    /// run in a batch so that, on SQLite, no write of the store contends with the writer for
    /// the lock. Yields how many rows it changed.
    Exec { sql: &'static str, binds: Vec<Bind> },
}

/// A value bound to an [`Write::Exec`] statement.
#[derive(Debug)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

struct Pending {
    write: Write,
    reply: oneshot::Sender<Result<i64>>,
}

/// The queue in front of the writer task. Cheap to clone; the task ends with the last clone.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    queue: mpsc::UnboundedSender<Pending>,
}

impl Writer {
    /// Starts the writer task on `pool`.
    pub(crate) fn spawn(pool: AnyPool, backend: Backend) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, backend, waiting));
        Self { queue }
    }

    /// Commits `write` (with whatever else is waiting) and returns what it yields: the
    /// event's sequence number, the checkpoint's, or 0 for a task row.
    pub(crate) async fn submit(&self, write: Write) -> Result<i64> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { write, reply })
            .map_err(|_| Error::Corrupt("the store's writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Corrupt("the store's writer stopped before answering".into()))?
    }
}

async fn run(pool: AnyPool, backend: Backend, mut waiting: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit(&pool, backend, &mut batch).await;
    }
}

/// Why a batch did not commit.
enum BatchError {
    /// Beginning or committing failed: the same for every write in it.
    Transaction(sqlx::Error),
    /// One write's statement failed.
    Statement,
}

async fn commit(pool: &AnyPool, backend: Backend, batch: &mut Vec<Pending>) {
    match commit_together(pool, backend, batch).await {
        Ok(outcomes) => {
            for (pending, outcome) in batch.drain(..).zip(outcomes) {
                // The run may have stopped waiting; nothing to tell then.
                let _ = pending.reply.send(outcome);
            }
        }
        Err(BatchError::Transaction(error)) => {
            let error = Arc::new(error);
            for pending in batch.drain(..) {
                let _ = pending.reply.send(Err(Error::Write(error.clone())));
            }
        }
        Err(BatchError::Statement) => {
            for pending in batch.drain(..) {
                let outcome = commit_alone(pool, backend, &pending.write).await;
                let _ = pending.reply.send(outcome);
            }
        }
    }
}

async fn commit_together(
    pool: &AnyPool,
    backend: Backend,
    batch: &[Pending],
) -> std::result::Result<Vec<Result<i64>>, BatchError> {
    let mut tx = cap_storage::begin_write(pool, backend)
        .await
        .map_err(BatchError::Transaction)?;
    let writes: Vec<&Write> = batch.iter().map(|pending| &pending.write).collect();
    let outcomes = apply(&mut tx, &writes)
        .await
        .map_err(|_| BatchError::Statement)?; // dropping `tx` rolls back
    tx.commit().await.map_err(BatchError::Transaction)?;
    Ok(outcomes)
}

async fn commit_alone(pool: &AnyPool, backend: Backend, write: &Write) -> Result<i64> {
    let mut tx = cap_storage::begin_write(pool, backend).await?;
    let outcome = apply(&mut tx, &[write]).await?.pop();
    tx.commit().await?;
    outcome.unwrap_or_else(|| Err(Error::Corrupt("a write yielded no outcome".into())))
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

impl Write {
    /// The task a fenced write is for (an `Exec` is never fenced: none).
    fn task_id(&self) -> &str {
        match self {
            Self::Event { task_id, .. } | Self::Checkpoint { task_id, .. } => task_id,
            Self::Task { task, .. } => &task.task_id,
            Self::Exec { .. } => "",
        }
    }

    fn lease_owner(&self) -> &str {
        match self {
            Self::Event { lease_owner, .. }
            | Self::Checkpoint { lease_owner, .. }
            | Self::Task { lease_owner, .. } => lease_owner,
            Self::Exec { .. } => "",
        }
    }

    /// The task row this write leaves behind, if it changes it.
    fn task(&self) -> Option<&TaskRecord> {
        match self {
            Self::Event { task, .. } => task.as_deref(),
            Self::Task { task, .. } => Some(task),
            Self::Checkpoint { .. } | Self::Exec { .. } => None,
        }
    }
}

/// A checkpoint row about to be inserted.
struct CheckpointRow<'a> {
    task_id: &'a str,
    seq: i64,
    node: &'a str,
    kind: &'a str,
    event_seq: i64,
    state_json: &'a str,
}

/// Applies `writes` in order inside `tx`, with a handful of statements whatever their number:
/// one fence for all, the last sequence numbers of their tasks, one insert of all events, one
/// of all checkpoints, one update of all task rows. A write whose fence refuses it writes
/// nothing and yields its error; an `Err` means a statement failed (roll back).
async fn apply(tx: &mut Tx, writes: &[&Write]) -> Result<Vec<Result<i64>>> {
    // Statements of their own first: a task created or claimed in the same batch is then
    // there for the fence.
    let mut executed = HashMap::new();
    for (index, write) in writes.iter().enumerate() {
        if let Write::Exec { sql, binds } = write {
            let mut query = sqlx::query(sql);
            for bind in binds {
                query = match bind {
                    Bind::Text(text) => query.bind(text),
                    Bind::Int(int) => query.bind(*int),
                };
            }
            let done = query.execute(&mut **tx).await?;
            executed.insert(
                index,
                i64::try_from(done.rows_affected()).unwrap_or(i64::MAX),
            );
        }
    }
    let writes_of_tasks: Vec<&Write> = writes
        .iter()
        .copied()
        .filter(|write| !matches!(write, Write::Exec { .. }))
        .collect();
    // Each held task with the last sequence numbers of its events and checkpoints.
    let held = fence(tx, &writes_of_tasks).await?;
    let refused: Vec<&str> = writes_of_tasks
        .iter()
        .map(|write| write.task_id())
        .filter(|task_id| !held.contains_key(*task_id))
        .collect();
    let existing = existing_tasks(tx, &refused).await?;
    let mut last_event: HashMap<&str, i64> = HashMap::new();
    let mut last_checkpoint: HashMap<&str, i64> = HashMap::new();
    for (task_id, last) in &held {
        last_event.insert(task_id, last.events);
        last_checkpoint.insert(task_id, last.checkpoints);
    }

    let mut outcomes = Vec::with_capacity(writes.len());
    let mut events = Vec::new();
    let mut checkpoints = Vec::new();
    // The last row each task is left with, in the order first seen.
    let mut tasks: Vec<&TaskRecord> = Vec::new();
    for (index, write) in writes.iter().enumerate() {
        if let Some(changed) = executed.remove(&index) {
            outcomes.push(Ok(changed));
            continue;
        }
        let task_id = write.task_id();
        if !held.contains_key(task_id) {
            outcomes.push(Err(if existing.contains(task_id) {
                Error::LeaseLost(task_id.to_owned())
            } else {
                Error::TaskNotFound(task_id.to_owned())
            }));
            continue;
        }
        let outcome = match write {
            Write::Event {
                event_json,
                checkpoint,
                ..
            } => {
                let seq = next(&mut last_event, task_id);
                events.push((task_id, seq, event_json.as_str()));
                if let Some((node, kind, state_json)) = checkpoint {
                    checkpoints.push(CheckpointRow {
                        task_id,
                        seq: next(&mut last_checkpoint, task_id),
                        node,
                        kind,
                        event_seq: seq,
                        state_json,
                    });
                }
                seq
            }
            Write::Checkpoint {
                node,
                kind,
                state_json,
                ..
            } => {
                let seq = next(&mut last_checkpoint, task_id);
                checkpoints.push(CheckpointRow {
                    task_id,
                    seq,
                    node,
                    kind,
                    event_seq: last_event.get(task_id).copied().unwrap_or(0),
                    state_json,
                });
                seq
            }
            Write::Task { .. } | Write::Exec { .. } => 0,
        };
        if let Some(task) = write.task() {
            match tasks.iter_mut().find(|seen| seen.task_id == task.task_id) {
                Some(seen) => *seen = task,
                None => tasks.push(task),
            }
        }
        outcomes.push(Ok(outcome));
    }
    insert_events(tx, &events).await?;
    insert_checkpoints(tx, &checkpoints).await?;
    update_tasks(tx, &tasks).await?;
    Ok(outcomes)
}

/// The sequence number after the task's last one, taken.
fn next<'a>(last: &mut HashMap<&'a str, i64>, task_id: &'a str) -> i64 {
    let seq = last.entry(task_id).or_insert(0);
    *seq += 1;
    *seq
}

/// The last sequence numbers of a task's log.
struct Last {
    events: i64,
    checkpoints: i64,
}

/// Touches the row of each write's task while its writer still holds the task's lease (`""`:
/// the task is run without leases), taking the row's lock: a replica that lost a task to
/// another never writes into its log. Returns the tasks held, with their logs' last sequence
/// numbers (read through the primary keys, in the same statement).
async fn fence(tx: &mut Tx, writes: &[&Write]) -> Result<HashMap<String, Last>> {
    // One statement per lease owner: in practice one, the replica's own name.
    let mut by_owner: Vec<(&str, Vec<&str>)> = Vec::new();
    for write in writes {
        let (owner, task_id) = (write.lease_owner(), write.task_id());
        match by_owner.iter_mut().find(|(seen, _)| *seen == owner) {
            Some((_, task_ids)) if task_ids.contains(&task_id) => {}
            Some((_, task_ids)) => task_ids.push(task_id),
            None => by_owner.push((owner, vec![task_id])),
        }
    }
    let mut held = HashMap::new();
    for (owner, task_ids) in by_owner {
        let sql = format!(
            "UPDATE tasks SET updated_at_ms = $1 WHERE lease_owner = $2 AND task_id IN ({}) \
             RETURNING task_id, \
             COALESCE((SELECT MAX(seq) FROM task_events e WHERE e.task_id = tasks.task_id), 0) \
             AS last_event, \
             COALESCE((SELECT MAX(seq) FROM checkpoints c WHERE c.task_id = tasks.task_id), 0) \
             AS last_checkpoint",
            placeholders(3, task_ids.len())
        );
        let mut query = sqlx::query(&sql).bind(now_ms()).bind(owner);
        for task_id in task_ids {
            query = query.bind(task_id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let last = Last {
                events: row.try_get("last_event")?,
                checkpoints: row.try_get("last_checkpoint")?,
            };
            held.insert(row.try_get("task_id")?, last);
        }
    }
    Ok(held)
}

/// Which of `task_ids` exist (to tell a lost lease from a missing task).
async fn existing_tasks(tx: &mut Tx, task_ids: &[&str]) -> Result<HashSet<String>> {
    if task_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!(
        "SELECT task_id FROM tasks WHERE task_id IN ({})",
        placeholders(1, task_ids.len())
    );
    let mut query = sqlx::query(&sql);
    for task_id in task_ids {
        query = query.bind(*task_id);
    }
    let rows = query.fetch_all(&mut **tx).await?;
    rows.iter()
        .map(|row| Ok(row.try_get::<String, _>("task_id")?))
        .collect()
}

/// `$first, $first+1, ...`, `count` of them.
fn placeholders(first: usize, count: usize) -> String {
    let numbered: Vec<String> = (first..first + count).map(|n| format!("${n}")).collect();
    numbered.join(", ")
}

async fn insert_events(tx: &mut Tx, events: &[(&str, i64, &str)]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = (0..events.len())
        .map(|i| format!("(${}, ${}, ${}, $1)", 3 * i + 2, 3 * i + 3, 3 * i + 4))
        .collect();
    let sql = format!(
        "INSERT INTO task_events (task_id, seq, event_json, created_at_ms) VALUES {}",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(now_ms());
    for (task_id, seq, event_json) in events {
        query = query.bind(*task_id).bind(*seq).bind(*event_json);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

async fn insert_checkpoints(tx: &mut Tx, checkpoints: &[CheckpointRow<'_>]) -> Result<()> {
    if checkpoints.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = (0..checkpoints.len())
        .map(|i| {
            let n = 6 * i + 2;
            format!(
                "(${n}, ${}, ${}, ${}, ${}, ${}, $1)",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO checkpoints (task_id, seq, node, kind, event_seq, state_json, \
         created_at_ms) VALUES {}",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(now_ms());
    for row in checkpoints {
        query = query
            .bind(row.task_id)
            .bind(row.seq)
            .bind(row.node)
            .bind(row.kind)
            .bind(row.event_seq)
            .bind(row.state_json);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Writes the tasks' mutable fields in one statement (an update from a `VALUES` list, whose
/// columns SQLite and PostgreSQL both name `column1`, `column2`, ...).
async fn update_tasks(tx: &mut Tx, tasks: &[&TaskRecord]) -> Result<()> {
    if tasks.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = (0..tasks.len())
        .map(|i| format!("({})", placeholders(9 * i + 1, 9)))
        .collect();
    let sql = format!(
        "UPDATE tasks SET status = v.column2, current_node = v.column3, \
         current_agent = v.column4, progress_percentage = v.column5, \
         pull_request_id = v.column6, branch = v.column7, error_message = v.column8, \
         updated_at_ms = v.column9 \
         FROM (VALUES {}) AS v WHERE tasks.task_id = v.column1",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for task in tasks {
        query = query
            .bind(&task.task_id)
            .bind(task.status.as_str())
            .bind(&task.current_node)
            .bind(&task.current_agent)
            .bind(i64::from(task.progress_percentage))
            .bind(&task.pull_request_id)
            .bind(&task.branch)
            .bind(&task.error_message)
            .bind(task.updated_at_ms);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}
