//! The context agent's role: indexes a task's workspace and reports the context the planner
//! needs. [`cap_agent_server::AgentServer`] serves it as `AgentOrchestrator`.
//!
//! `ExecuteTask` copies the source and configuration files of the task's sandbox workspace
//! through the sandbox's `ListDirectory`/`ReadFile` RPCs (the agent never runs anything the
//! repository controls, and may live on another machine), indexes them with [`cap_index`],
//! and ends with a `context_ready` Checkpoint whose state holds the index's counts, the
//! detected patterns, the repository map cut to a token budget, the skipped files with their
//! reasons and, when the task carries a stack trace (context key `stack_trace`), the files
//! most likely at fault, and the symbols matching the objective (`semantic_ranking` says how
//! they were ranked: full text, or hybrid with an embeddings endpoint, or full text after the
//! endpoint failed). Infrastructure failures end the stream with an error status after an
//! ErrorReport event; `InterruptTask` stops a running task at its next file, copying or
//! indexing, with an `interrupted` Checkpoint naming the stage; nothing half-written is kept
//! and the repository's stored index stays usable for the next task.
//!
//! The same agent answers `ContextService` (`proto/context/v1/context.proto`): the model's
//! analysis tools (`get_file_summary`, `parse_ast`, `find_dependencies`, `semantic_search`,
//! `detect_patterns`, the repository map, stack-trace mapping) over workspaces indexed with
//! `IndexWorkspace`, which re-parses only files whose content changed: the methods in
//! [`ContextAgent`]'s `ContextService` block, which the service's gRPC doors call.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cap_agent_server::{Events, Reported, Role, RoleError};
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::agent::v1::{
    Action, Checkpoint, CheckpointKind, Observation, TaskEvent, TaskRequest, Thought,
};
use cap_proto::sandbox::v1::{ListDirectoryRequest, ReadFileRequest};
use cap_sandbox_client::Sandbox;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};

pub mod contract;
mod rpc;

/// The name this agent signs its events with and answers to in `GetAgentStatus`.
pub const AGENT_NAME: &str = contract::AGENT_NAME;

/// The repository map's size in tokens when the request names none.
const DEFAULT_MAP_TOKENS: usize = 1024;

/// How many symbols matching the objective the checkpoint names.
const RELEVANT_SYMBOLS: usize = 10;

/// Configuration files read besides source files (for `detect_patterns`).
const CONFIG_FILES: &[&str] = &[
    "pyproject.toml",
    "setup.cfg",
    "setup.py",
    "tox.ini",
    "pytest.ini",
    "requirements.txt",
    "requirements-dev.txt",
    "poetry.lock",
    "uv.lock",
    "Pipfile",
    "ruff.toml",
    ".flake8",
    ".pylintrc",
    "mypy.ini",
    ".isort.cfg",
    "package.json",
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "tsconfig.json",
    ".prettierrc",
    ".prettierrc.json",
    "prettier.config.js",
    ".eslintrc.json",
    ".eslintrc.js",
    ".eslintrc.cjs",
    "eslint.config.js",
    "eslint.config.mjs",
    "jest.config.js",
    "jest.config.ts",
    "vitest.config.ts",
    ".mocharc.json",
    "vite.config.ts",
    "vite.config.js",
    "webpack.config.js",
    "go.mod",
    ".golangci.yml",
    ".golangci.yaml",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "checkstyle.xml",
    "Makefile",
    ".gitignore",
];

/// What can go wrong serving a task.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request lacks something the agent needs.
    #[error("invalid task request: {0}")]
    InvalidRequest(&'static str),
    /// The sandbox refused or failed a call.
    #[error("the sandbox failed to {action}")]
    Sandbox {
        /// What was asked of it.
        action: &'static str,
        /// Its status.
        #[source]
        source: Status,
    },
    /// The workspace listed a path leaving it.
    #[error("the workspace listed an unsafe path {0:?}")]
    UnsafePath(String),
    /// The local copy could not be written.
    #[error("cannot write the local copy of the workspace")]
    Io(#[source] std::io::Error),
    /// A context call named a session that was not indexed here.
    #[error("session {0} is not indexed here; call IndexWorkspace first")]
    NotIndexed(String),
    /// Indexing failed.
    #[error("indexing failed")]
    Index(#[source] cap_index::Error),
    /// `InterruptTask` stopped the task.
    #[error("the task was interrupted while {0}")]
    Interrupted(&'static str),
    /// The receiver of the task's events went away.
    #[error(transparent)]
    EventsClosed(#[from] cap_agent_server::EventsClosed),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl RoleError for Error {
    fn code(&self) -> Code {
        match self {
            Error::InvalidRequest(_) => Code::InvalidArgument,
            Error::Sandbox { source, .. } => match source.code() {
                Code::NotFound => Code::NotFound,
                Code::InvalidArgument | Code::FailedPrecondition => Code::FailedPrecondition,
                _ => Code::Unavailable,
            },
            Error::UnsafePath(_) | Error::NotIndexed(_) => Code::FailedPrecondition,
            Error::Index(cap_index::Error::PathOutsideRepository(_)) => Code::InvalidArgument,
            Error::Index(cap_index::Error::NotIndexed(_)) => Code::NotFound,
            Error::Interrupted(_) | Error::EventsClosed(_) => Code::Cancelled,
            Error::Io(_) | Error::Index(_) => Code::Internal,
        }
    }

    fn reported(&self) -> Reported {
        let recoverable = match self {
            Error::Sandbox { source, .. } => matches!(
                source.code(),
                Code::Unavailable | Code::Unknown | Code::DeadlineExceeded
            ),
            Error::Io(_) | Error::Interrupted(_) => true,
            Error::InvalidRequest(_)
            | Error::UnsafePath(_)
            | Error::NotIndexed(_)
            | Error::Index(_)
            | Error::EventsClosed(_) => false,
        };
        Reported::ByAdapter { recoverable }
    }
}

/// Limits on what is copied from a workspace.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Larger files are left out.
    pub max_file_bytes: u64,
    /// At most this many files are copied.
    pub max_files: usize,
}

/// The context agent: the `AgentOrchestrator` role and the `ContextService` calls. Cheap to
/// clone.
#[derive(Clone)]
pub struct ContextAgent {
    inner: Arc<Inner>,
}

struct Inner {
    sandbox: Sandbox,
    /// Indexed workspaces served by the `ContextService` RPCs, by session.
    workspaces: rpc::Workspaces,
    /// Where the per-repository full-text indexes are kept.
    store: PathBuf,
    limits: Limits,
    /// The endpoint embedding chunks for hybrid ranking, when configured.
    embeddings: Option<cap_index::EmbeddingsConfig>,
}

impl ContextAgent {
    /// An agent reading workspaces through `sandbox`, keeping its full-text indexes under
    /// `store`, ranking hybrid with `embeddings` when given.
    pub fn new(
        sandbox: Sandbox,
        store: PathBuf,
        limits: Limits,
        embeddings: Option<cap_index::EmbeddingsConfig>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                sandbox,
                workspaces: rpc::Workspaces::default(),
                store,
                limits,
                embeddings,
            }),
        }
    }
}

/// A validated task.
#[derive(Debug)]
pub struct Job {
    task_id: String,
    repository_id: String,
    objective: String,
    session_id: String,
    stack_trace: Option<String>,
    map_tokens: usize,
}

impl Job {
    fn from_request(request: TaskRequest) -> Result<Self> {
        if request.task_id.trim().is_empty() {
            return Err(Error::InvalidRequest("task_id is empty"));
        }
        let repo = request.repo.ok_or(Error::InvalidRequest(
            "repo is missing; the context agent needs repo.sandbox_session_id",
        ))?;
        if repo.sandbox_session_id.trim().is_empty() {
            return Err(Error::InvalidRequest("repo.sandbox_session_id is empty"));
        }
        let context = request.context.unwrap_or_default();
        let map_tokens = context
            .repo_map_tokens
            .map_or(DEFAULT_MAP_TOKENS, |tokens| tokens as usize);
        let stack_trace = Some(context.stack_trace).filter(|t| !t.trim().is_empty());
        Ok(Self {
            task_id: request.task_id,
            repository_id: repo.repository_id,
            objective: request.objective,
            session_id: repo.sandbox_session_id,
            stack_trace,
            map_tokens,
        })
    }
}

/// A directory name for a repository's index: its id with anything but `[A-Za-z0-9_-]`
/// replaced, so `acme/widgets` and `../x` stay one safe component.
fn store_name(repository_id: &str) -> String {
    let name: String = repository_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "_".to_owned()
    } else {
        name
    }
}

/// Whether a workspace path is worth copying: a source file or a configuration file.
fn wanted(path: &str) -> bool {
    let p = Path::new(path);
    cap_index::Lang::from_path(p).is_some()
        || p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| CONFIG_FILES.contains(&n))
}

/// A workspace path as a safe relative path, or an error naming it.
fn safe_relative(path: &str) -> Result<&Path> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if ok {
        Ok(p)
    } else {
        Err(Error::UnsafePath(path.to_owned()))
    }
}

impl Role for ContextAgent {
    const AGENT: &'static str = AGENT_NAME;
    type Job = Job;
    type Error = Error;

    fn accept(&self, request: TaskRequest) -> Result<Job> {
        Job::from_request(request)
    }

    /// An interrupt stops the work at its next file, copying or indexing. The analysis does
    /// not change course mid-run: constraints reach it with its next task.
    async fn run(
        &self,
        job: Job,
        events: mpsc::Sender<TaskEvent>,
        interrupt: CancellationToken,
        _steering: cap_agent_server::Steering,
    ) -> Result<()> {
        let events = Events::new(AGENT_NAME, events);
        let cancel = Arc::new(AtomicBool::new(false));
        let work = self.inner.work(&job, &events, &cancel);
        tokio::pin!(work);
        let result = tokio::select! {
            result = &mut work => result,
            () = interrupt.cancelled() => {
                // The work is not dropped here: the indexing thread stops at its next file and
                // lets go of the full-text index (its writer lock), so the next task on this
                // repository finds it whole and free.
                cancel.store(true, Ordering::Relaxed);
                work.await
            }
        };
        match result {
            Err(Error::Interrupted(stage)) => {
                tracing::info!(task_id = %job.task_id, stage, "task interrupted");
                let state = serde_json::json!({ "task_id": job.task_id, "stopped_while": stage });
                events
                    .checkpoint(
                        CheckpointKind::Interrupted,
                        format!(
                            "interrupted on request while {stage}; nothing half-written was kept"
                        ),
                        state.to_string(),
                    )
                    .await?;
                Ok(())
            }
            other => other,
        }
    }
}

impl Inner {
    /// The task's steps.
    async fn work(&self, job: &Job, events: &Events, cancel: &Arc<AtomicBool>) -> Result<()> {
        events
            .send(Payload::Thought(Thought {
                reasoning: "I will index the workspace's source and configuration files to give \
                            the planner summaries, the import graph, the repository's conventions \
                            and a ranked map."
                    .to_owned(),
            }))
            .await?;
        let copy_id = format!("{}:copy_workspace", job.task_id);
        let arguments = serde_json::json!({ "session_id": job.session_id }).to_string();
        events
            .send(Payload::Action(Action {
                call_id: copy_id.clone(),
                tool: "copy_workspace".to_owned(),
                arguments_json: arguments.clone(),
            }))
            .await?;
        let copy = tempfile::tempdir().map_err(Error::Io)?;
        let copied = self
            .mirror(&job.session_id, copy.path(), cancel)
            .await?
            .len();
        events
            .send(Payload::Observation(Observation {
                call_id: copy_id,
                tool: "copy_workspace".to_owned(),
                is_error: false,
                content: format!("copied {copied} source and configuration files"),
                detail: None,
            }))
            .await?;
        let call_id = format!("{}:index_repository", job.task_id);
        events
            .send(Payload::Action(Action {
                call_id: call_id.clone(),
                tool: "index_repository".to_owned(),
                arguments_json: arguments,
            }))
            .await?;
        let root = copy.path().to_owned();
        let trace = job.stack_trace.clone();
        let tokens = job.map_tokens;
        let objective = job.objective.clone();
        let store = self.store.join(store_name(&job.repository_id));
        let embeddings = self.embeddings.clone();
        let options = cap_index::IndexOptions {
            cancel: Some(cancel.clone()),
            ..cap_index::IndexOptions::default()
        };
        let report = tokio::task::spawn_blocking(move || -> Result<serde_json::Value> {
            let index = cap_index::Index::build(&root, options).map_err(index_error)?;
            let patterns = cap_index::detect_patterns(&root, Some(&index));
            let map = cap_index::repo_map(&index, tokens);
            let trace = trace.map(|t| cap_index::analyze_trace(&index, &t));
            // The full-text index persists per repository: the next task re-chunks only the
            // files whose content changed.
            let mut semantic = cap_index::SemanticIndex::open(&store).map_err(Error::Index)?;
            if let Some(config) = embeddings {
                semantic.set_embeddings(config).map_err(Error::Index)?;
            }
            let sync = semantic.sync(&index).map_err(index_error)?;
            if let Some(error) = &sync.embeddings_error {
                tracing::warn!(%error, "chunks left without vectors; full text still ranks");
            }
            let relevant = if objective.trim().is_empty() {
                None
            } else {
                Some(
                    semantic
                        .search(&objective, RELEVANT_SYMBOLS)
                        .map_err(Error::Index)?,
                )
            };
            Ok(serde_json::json!({
                "stats": index.stats(),
                "patterns": patterns,
                "repo_map": map,
                "relevant_symbols": relevant.as_ref().map(|r| &r.hits),
                "semantic_ranking": relevant.map(|r| r.ranking),
                "semantic_sync": sync,
                "skipped": index.skipped(),
                "stack_trace": trace,
            }))
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        let files = report["stats"]["files_indexed"].as_u64().unwrap_or(0);
        let edges = report["stats"]["edges"].as_u64().unwrap_or(0);
        let summary =
            format!("indexed {files} source files ({copied} files copied), {edges} import edges");
        events
            .send(Payload::Observation(Observation {
                call_id,
                tool: "index_repository".to_owned(),
                is_error: false,
                content: format!("{summary}\n\n{}", report["repo_map"].as_str().unwrap_or("")),
                detail: None,
            }))
            .await?;
        events
            .send(Payload::Checkpoint(Checkpoint {
                kind: CheckpointKind::ContextReady.into(),
                description: summary,
                state_json: report.to_string(),
            }))
            .await?;
        Ok(())
    }

    /// Copies the workspace's source and configuration files into `to`; returns their paths.
    pub(crate) async fn mirror(
        &self,
        session_id: &str,
        to: &Path,
        cancel: &AtomicBool,
    ) -> Result<BTreeSet<String>> {
        let sandbox = &self.sandbox;
        let listing = sandbox
            .list_directory(ListDirectoryRequest {
                session_id: session_id.to_owned(),
                path: String::new(),
                recursive: true,
            })
            .await
            .map_err(|source| Error::Sandbox {
                action: "list the workspace",
                source,
            })?;
        if listing.truncated {
            tracing::warn!(
                session_id,
                "workspace listing truncated; indexing what was listed"
            );
        }
        let mut copied = BTreeSet::new();
        for entry in listing.entries {
            if entry.is_dir || entry.size > self.limits.max_file_bytes || !wanted(&entry.path) {
                continue;
            }
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Interrupted("copying the workspace"));
            }
            if copied.len() >= self.limits.max_files {
                tracing::warn!(
                    session_id,
                    max = self.limits.max_files,
                    "file limit reached"
                );
                break;
            }
            let rel = safe_relative(&entry.path)?;
            let content = sandbox
                .read_file(ReadFileRequest {
                    session_id: session_id.to_owned(),
                    path: entry.path.clone(),
                })
                .await
                .map_err(|source| Error::Sandbox {
                    action: "read a workspace file",
                    source,
                })?
                .content;
            let target = to.join(rel);
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent).await.map_err(Error::Io)?;
            }
            tokio::fs::write(&target, content)
                .await
                .map_err(Error::Io)?;
            copied.insert(entry.path);
        }
        Ok(copied)
    }
}

/// An index error, or the interrupt that caused it.
fn index_error(error: cap_index::Error) -> Error {
    match error {
        cap_index::Error::Cancelled => Error::Interrupted("indexing"),
        other => Error::Index(other),
    }
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
