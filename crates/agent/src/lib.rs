//! The coding agent's tool-calling loop and the PRD's tools, run against a sandbox session.
//!
//! [`CodingAgent::run`] takes a `TaskRequest`, talks to an OpenAI-compatible model through
//! `cap-llm`, offers it the PRD's tools (`read_file`, `list_directory`, `search_files`,
//! `edit_file`, `create_file`, `delete_file`, `apply_diff`, `run_tests`, `run_command`) and
//! runs every tool call against the task's sandbox session, streaming `TaskEvent`s (Thought,
//! Action, Observation, Checkpoint, ErrorReport) as it goes.
//!
//! Edits are staged in memory (an overlay the file tools read through) and written to the
//! workspace with one atomic `WriteFiles` call before a command or the tests run and when the
//! loop ends. Where the repository configures formatters (black, Prettier, gofmt, Spotless),
//! an edit of a file they format is written at once and formatted in the sandbox (FR-005):
//! the model reads the formatted file next, and is told what was reformatted or could not be.
//! Whatever the model sends — invalid JSON, an unknown tool, a missing parameter, a path
//! escaping the workspace — becomes an error observation the model can react to; only
//! infrastructure failures (model endpoint after retries, sandbox unreachable) end the task
//! with an error.
//!
//! The tools reach the workspace through the [`Workspace`] trait: [`SandboxWorkspace`] (the
//! sandbox service's gRPC client) is the product path; tests may bring another.

use std::time::Duration;

use cap_llm::{ModelConfig, RetryPolicy};
use serde::{Deserialize, Serialize};

mod condense;
pub mod contract;
mod diff;
mod overlay;
mod paths;
mod prompt;
mod role;
mod run;
mod tools;
mod workspace;

#[cfg(test)]
mod memory;

pub use prompt::{SYSTEM_PROMPT, task_prompt};
pub use run::CodingAgent;
pub use tokio_util::sync::CancellationToken;
pub use tools::{TOOL_NAMES, tool_specs};
pub use workspace::{
    CommandOutput, Entry, Listing, SandboxWorkspace, SearchHit, SearchResult, Workspace,
    WriteChange,
};

/// The name the coding agent signs its events with.
pub const AGENT_NAME: &str = contract::AGENT_NAME;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The task request cannot be run as given.
    #[error("invalid task request: {reason}")]
    InvalidRequest {
        /// What is wrong with it.
        reason: String,
    },
    /// The agent's configuration cannot be used.
    #[error("invalid agent configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
        /// The cause, when another crate found it.
        #[source]
        source: Option<cap_llm::Error>,
    },
    /// The model endpoint failed (after retries, when the failure was retryable).
    #[error("the model endpoint failed")]
    Model {
        /// The cause.
        #[source]
        source: cap_llm::Error,
    },
    /// The task's sandbox session cannot be used at all.
    #[error("sandbox session {session_id} is not usable")]
    Session {
        /// The session.
        session_id: String,
        /// What the sandbox answered.
        #[source]
        source: Box<Error>,
    },
    /// A sandbox RPC failed.
    #[error("sandbox {operation} failed")]
    Sandbox {
        /// The RPC, e.g. `ReadFile`.
        operation: &'static str,
        /// The status the sandbox (or the transport) returned.
        #[source]
        source: tonic::Status,
    },
    /// The `Exec` stream ended without reporting how the command exited.
    #[error("sandbox Exec stream ended without an exit status")]
    ExecIncomplete,
    /// Detecting or running the tests failed.
    #[error("running the tests failed")]
    TestRun {
        /// The cause.
        #[source]
        source: cap_testrun::Error,
    },
    /// Detecting or running the repository's formatters failed.
    #[error("formatting the modified files failed")]
    Format {
        /// The cause.
        #[source]
        source: cap_testrun::Error,
    },
    /// The receiver of the task's events went away.
    #[error("the task's event stream was closed by its receiver")]
    EventsClosed,
}

impl Error {
    /// Whether the failure is the infrastructure's (the task cannot go on) rather than a
    /// refusal the model can react to (missing file, invalid path, invalid pattern).
    pub fn is_fatal(&self) -> bool {
        match self {
            Error::Sandbox { source, .. } => status_is_fatal(source.code()),
            Error::TestRun { source } | Error::Format { source } => {
                source.sandbox_code().is_some_and(status_is_fatal)
            }
            Error::InvalidRequest { .. }
            | Error::Config { .. }
            | Error::Model { .. }
            | Error::Session { .. }
            | Error::ExecIncomplete
            | Error::EventsClosed => true,
        }
    }

    /// Whether the sandbox said the file or directory does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Sandbox { source, .. } if source.code() == tonic::Code::NotFound)
    }

    /// The message and its causes, `: `-separated.
    pub fn chain(&self) -> String {
        cap_agent_server::error_chain(self)
    }
}

impl From<cap_agent_server::EventsClosed> for Error {
    fn from(_: cap_agent_server::EventsClosed) -> Self {
        Error::EventsClosed
    }
}

fn status_is_fatal(code: tonic::Code) -> bool {
    use tonic::Code;
    match code {
        Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::PermissionDenied => false,
        Code::Ok
        | Code::Cancelled
        | Code::Unknown
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Unimplemented
        | Code::Internal
        | Code::Unavailable
        | Code::DataLoss
        | Code::Unauthenticated => true,
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The context window assumed when none is configured: what the smaller local coding
/// models (Qwen2.5-Coder, DeepSeek-Coder) serve by default.
pub const DEFAULT_CONTEXT_WINDOW: u32 = 32_768;

/// How the coding agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The model endpoint.
    pub model: ModelConfig,
    /// Endpoints asked in turn when `model` fails (after its retries) or its circuit is open.
    pub fallbacks: Vec<ModelConfig>,
    /// The model's context window in tokens; the conversation is condensed before it would
    /// pass three quarters of it. 0: never condensed.
    pub context_window: u32,
    /// The model that writes the summaries of condensed turns; `None`: the endpoints of
    /// `model` (and its fallbacks).
    pub summariser: Option<ModelConfig>,
    /// Model turns allowed per task.
    pub max_steps: u32,
    /// Retries of failed model requests.
    pub retry: RetryPolicy,
    /// Timeout of one `run_tests` call.
    pub test_timeout: Duration,
    /// Timeout of `run_command` when the model gives none.
    pub command_timeout: Duration,
    /// Largest timeout the model may ask `run_command` for.
    pub max_command_timeout: Duration,
}

impl AgentConfig {
    /// A configuration with the default retry policy and timeouts (tests 10 min, commands
    /// 2 min by default and 10 min at most).
    pub fn new(model: ModelConfig, max_steps: u32) -> Self {
        Self {
            model,
            fallbacks: Vec::new(),
            context_window: DEFAULT_CONTEXT_WINDOW,
            summariser: None,
            max_steps,
            retry: RetryPolicy::default(),
            test_timeout: Duration::from_secs(600),
            command_timeout: Duration::from_secs(120),
            max_command_timeout: Duration::from_secs(600),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// The model answered without tool calls.
    Finished,
    /// `max_steps` model turns were used up.
    StepLimitReached,
    /// The run was interrupted.
    Interrupted,
}

/// What happened to a file during the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The file did not exist before.
    Created,
    /// The file's content changed.
    Modified,
    /// The file was deleted.
    Deleted,
}

impl Change {
    /// `created`, `modified` or `deleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Modified => "modified",
            Change::Deleted => "deleted",
        }
    }
}

/// A file the agent's tools changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChangedFile {
    /// Path relative to the workspace root.
    pub path: String,
    /// What happened to it.
    pub change: Change,
    /// The digest ([`cap_sandbox_client::content_digest`]) of the content the tools left in
    /// it, formatter output included; absent when deleted. A different content at the end
    /// was written by a command, not by the tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The result of a run that did not fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// How it ended.
    pub finish: Finish,
    /// The model's final answer (empty unless finished).
    pub summary: String,
    /// Model turns used.
    pub steps: u32,
    /// Files changed through the file tools, sorted by path (commands may change more).
    pub files_changed: Vec<ChangedFile>,
}
