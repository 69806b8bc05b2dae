//! The supervisor's workflow: each task runs as a graph of nodes (plan -> execute -> review,
//! with review looping back to execute while the repository's tests fail), and every event and
//! every node leaves a checkpoint in the SQL store, so a restarted supervisor resumes each
//! unfinished task from its last checkpoint and a watcher replays exactly what happened.
//!
//! The workflow talks to the other services only through their gRPC clients: the GitHub
//! service (repository, branch, commit, pull request), the sandbox service (the workspace)
//! and the agents (`AgentOrchestrator`).

mod audit;
mod checks;
mod codecheck;
mod coordination;
mod dependencies;
mod engine;
mod gates;
mod handoff;
mod history;
mod hitl;
mod live;
mod naming;
mod nodes;
mod quarantine;
mod queue;
pub mod store;
mod travel;
mod writer;

pub use coordination::{CheckpointCopy, Coordination, RedisConfig, RedisCoordination};
pub use engine::{Clients, Engine, EngineConfig, WatchStream};
pub use naming::{branch_name, feature_slug};
pub use nodes::{Node, WorkflowState};
pub use quarantine::QuarantinedTask;
pub use store::{Store, TaskRecord, TaskSpec, TaskStatus};
pub use travel::{CheckpointInfo, checkpoint_id};

/// Errors of the workflow.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store could not be opened.
    #[error("store")]
    Storage(#[from] cap_storage::Error),
    /// A query failed.
    #[error("database query failed")]
    Sql(#[from] sqlx::Error),
    /// A batch of writes could not begin or commit; every write in it sees the same cause.
    #[error("database write failed")]
    Write(#[source] std::sync::Arc<sqlx::Error>),
    /// Stored JSON could not be read or written.
    #[error("stored JSON is invalid")]
    Json(#[from] serde_json::Error),
    /// Stored data does not make sense.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// No task with this id.
    #[error("task {0} not found")]
    TaskNotFound(String),
    /// The task has no checkpoint with this id (it may be another task's, or none at all).
    #[error("checkpoint {checkpoint_id:?} not found among task {task_id}'s checkpoints")]
    CheckpointNotFound {
        /// The task asked about.
        task_id: String,
        /// The checkpoint id as given.
        checkpoint_id: String,
    },
    /// The request is not valid; the message names the field.
    #[error("{0}")]
    InvalidRequest(String),
    /// The task is not in a state that allows the operation.
    #[error("{0}")]
    Conflict(String),
    /// Another service answered with an error.
    #[error("{service} service: {message}")]
    Upstream {
        /// Which service.
        service: &'static str,
        /// What it said.
        message: String,
        /// Its status.
        #[source]
        status: tonic::Status,
    },
    /// The task failed for a reason the workflow decided (tests failing, constraints broken).
    #[error("{0}")]
    TaskFailed(String),
    /// The change holds what looks like a credential (error category D): the task stops
    /// with its workspace quarantined. The message names rules, files and lines with the
    /// secrets' redacted fingerprints only.
    #[error("{0}")]
    SecretsFound(String),
    /// The task needs a human (the message says for what: approving a protected change, or
    /// guidance once the fix attempts ran out); it pauses until one acts.
    #[error("{0}")]
    NeedsHuman(String),
    /// A human interrupted the task.
    #[error("interrupted")]
    Interrupted,
    /// Another replica holds the task now: this one stops writing for it.
    #[error("task {0} is run by another supervisor replica now")]
    LeaseLost(String),
    /// The audit log could not record what was done.
    #[error("audit log")]
    Audit(#[from] cap_audit::Error),
    /// Redis, where the replicas coordinate, failed or could not be reached.
    #[error("redis {what}")]
    Redis {
        /// Where and what: `at host:port: lease claim failed`.
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// An upstream error from `status`.
    pub fn upstream(service: &'static str, status: tonic::Status) -> Self {
        Self::Upstream {
            service,
            message: status.message().to_owned(),
            status,
        }
    }

    /// Whether running the failed step again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Upstream { status, .. } => {
                matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Aborted
                ) || broke_in_transport(status)
            }
            Self::Sql(error) => cap_storage::is_transient(error),
            Self::Write(error) => cap_storage::is_transient(error),
            Self::Audit(error) => error.is_transient(),
            Self::Storage(_)
            | Self::Json(_)
            | Self::Corrupt(_)
            | Self::TaskNotFound(_)
            | Self::CheckpointNotFound { .. }
            | Self::InvalidRequest(_)
            | Self::Conflict(_)
            | Self::TaskFailed(_)
            | Self::SecretsFound(_)
            | Self::NeedsHuman(_)
            | Self::Interrupted
            | Self::LeaseLost(_)
            | Self::Redis { .. } => false,
        }
    }
}

impl Error {
    /// Whether this is the store failing for a passing reason (contention, a lost
    /// connection): the run goes on from where it was once the store answers again.
    pub fn is_transient_store(&self) -> bool {
        match self {
            Self::Sql(error) => cap_storage::is_transient(error),
            Self::Write(error) => cap_storage::is_transient(error),
            Self::Audit(error) => error.is_transient(),
            _ => false,
        }
    }
}

/// Whether the call failed because its connection broke, not because the service answered
/// an error: a service killed mid-stream leaves tonic an `Unknown` status ("h2 protocol error:
/// error reading a body from connection") whose causes end in an I/O error (inside an h2
/// error, which does not expose it as a source). Running the step again once the service is
/// back can succeed (found by the chaos tests: an agent killed mid-task failed its task).
fn broke_in_transport(status: &tonic::Status) -> bool {
    let mut cause = std::error::Error::source(status);
    while let Some(error) = cause {
        let io = error.is::<std::io::Error>()
            || error
                .downcast_ref::<h2::Error>()
                .is_some_and(h2::Error::is_io);
        if io {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Locks `mutex` even if a holder panicked: every map and list the engine keeps behind one
/// is changed whole, so it is consistent whatever that holder did.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Result of the workflow.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
