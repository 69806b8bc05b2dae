//! Context agent service: AgentOrchestrator that indexes a task's workspace and reports the
//! context the planner needs.
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
//! The same server answers `ContextService` (`proto/context/v1/context.proto`): the model's
//! analysis tools (`get_file_summary`, `parse_ast`, `find_dependencies`, `semantic_search`,
//! `detect_patterns`, the repository map, stack-trace mapping) over workspaces indexed with
//! `IndexWorkspace`, which re-parses only files whose content changed.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cap_proto::agent::v1::agent_orchestrator_server::{AgentOrchestrator, AgentOrchestratorServer};
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::agent::v1::{
    Ack, Action, AgentId, AgentStatus, Checkpoint, ErrorReport, Observation, TaskEvent, TaskId,
    TaskRequest, Thought,
};
use cap_proto::context::v1::context_service_server::ContextServiceServer;
use cap_proto::sandbox::v1::{ListDirectoryRequest, ReadFileRequest};
use cap_runtime::tasks::RunningTasks;
use cap_sandbox_client::{GrpcSandbox, MAX_MESSAGE_BYTES, Sandbox};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// The name this agent signs its events with and answers to in `GetAgentStatus`.
pub const AGENT_NAME: &str = "context";

/// The service's name in the fleet (its TLS identity).
pub const SERVICE_NAME: &str = "context-agent";

/// The context key holding a stack trace or error log to map onto the repository.
pub const STACK_TRACE_KEY: &str = "stack_trace";

/// The context key holding the repository map's token budget.
pub const MAP_TOKENS_KEY: &str = "repo_map_tokens";

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

/// The context agent's configuration.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "cap-context-agent",
    about = "Indexes a workspace and reports its context"
)]
pub struct Config {
    /// Flags every service takes.
    #[command(flatten)]
    pub common: cap_runtime::CommonArgs,
    /// The sandbox service (`https://host:port`).
    #[arg(long, env = "CAP_SANDBOX_URL")]
    pub sandbox_url: String,
    /// Files larger than this are not copied or indexed, in bytes.
    #[arg(long, env = "CAP_CONTEXT_MAX_FILE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_file_bytes: u64,
    /// At most this many files are copied from a workspace.
    #[arg(long, env = "CAP_CONTEXT_MAX_FILES", default_value_t = 50_000)]
    pub max_files: usize,
    /// An OpenAI-compatible embeddings endpoint's base URL (`http://host:port/v1`); with it
    /// `semantic_search` fuses vector similarity with full-text ranking, without it full text
    /// alone ranks.
    #[arg(long, env = "CAP_EMBEDDINGS_BASE_URL", requires = "embeddings_model")]
    pub embeddings_base_url: Option<String>,
    /// The embedding model's name at that endpoint.
    #[arg(long, env = "CAP_EMBEDDINGS_MODEL")]
    pub embeddings_model: Option<String>,
    /// The endpoint's bearer token, when it needs one.
    #[arg(long, env = "CAP_EMBEDDINGS_API_KEY", hide_env_values = true)]
    pub embeddings_api_key: Option<String>,
    /// Chunks sent per embeddings request.
    #[arg(long, env = "CAP_EMBEDDINGS_BATCH_SIZE", default_value_t = cap_index::DEFAULT_BATCH_SIZE)]
    pub embeddings_batch_size: usize,
}

impl Config {
    /// The embeddings endpoint, when one is configured; checked, so a bad one stops the start.
    pub fn embeddings(&self) -> cap_index::Result<Option<cap_index::EmbeddingsConfig>> {
        let Some(base_url) = &self.embeddings_base_url else {
            return Ok(None);
        };
        let config = cap_index::EmbeddingsConfig {
            base_url: base_url.clone(),
            model: self.embeddings_model.clone().unwrap_or_default(),
            api_key: self.embeddings_api_key.clone(),
            batch_size: self.embeddings_batch_size,
        };
        config.validate()?;
        Ok(Some(config))
    }
}

/// Serves the context agent until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = config.common.bind().await?;
    serve(config, listener).await
}

/// Serves the context agent on an already bound listener (tests bind port 0 themselves).
pub async fn serve(config: Config, listener: TcpListener) -> anyhow::Result<()> {
    let tls = config.common.tls(SERVICE_NAME)?;
    let sandbox = GrpcSandbox::shared(tls.channel(&config.sandbox_url)?, MAX_MESSAGE_BYTES);
    let limits = Limits {
        max_file_bytes: config.max_file_bytes,
        max_files: config.max_files,
    };
    let store = config.common.data_dir.join("context-index");
    let agent = ContextAgent::new(sandbox, store, limits, config.embeddings()?);
    // One health service reporting both gRPC services (the runtime's helper names one).
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<AgentOrchestratorServer<ContextAgent>>()
        .await;
    reporter
        .set_serving::<ContextServiceServer<ContextAgent>>()
        .await;
    let router = cap_runtime::grpc_server(&tls)?
        .add_service(health)
        .add_service(AgentOrchestratorServer::new(agent.clone()))
        .add_service(ContextServiceServer::new(agent));
    cap_runtime::serve(router, listener).await?;
    Ok(())
}

/// What can go wrong serving a task.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request lacks something the agent needs.
    #[error("invalid task request: {0}")]
    InvalidRequest(&'static str),
    /// A task with this id is already running here.
    #[error("task {0} is already running on the context agent")]
    AlreadyRunning(String),
    /// `GetAgentStatus` asked for another agent.
    #[error("agent {0:?} is not served here; this is the {AGENT_NAME} agent")]
    UnknownAgent(String),
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
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The one place errors become statuses.
pub(crate) fn to_status(error: &Error) -> Status {
    let message = chain(error);
    tracing::warn!(error = %message, "request failed");
    match error {
        Error::InvalidRequest(_) => Status::invalid_argument(message),
        Error::AlreadyRunning(_) => Status::already_exists(message),
        Error::UnknownAgent(_) => Status::not_found(message),
        Error::Sandbox { source, .. } => match source.code() {
            tonic::Code::NotFound => Status::not_found(message),
            tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => {
                Status::failed_precondition(message)
            }
            _ => Status::unavailable(message),
        },
        Error::UnsafePath(_) => Status::failed_precondition(message),
        Error::NotIndexed(_) => Status::failed_precondition(message),
        Error::Index(cap_index::Error::PathOutsideRepository(_)) => {
            Status::invalid_argument(message)
        }
        Error::Index(cap_index::Error::NotIndexed(_)) => Status::not_found(message),
        Error::Interrupted(_) => Status::cancelled(message),
        Error::Io(_) | Error::Index(_) => Status::internal(message),
    }
}

fn is_recoverable(error: &Error) -> bool {
    match error {
        Error::Sandbox { source, .. } => matches!(
            source.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::DeadlineExceeded
        ),
        Error::Io(_) | Error::Interrupted(_) => true,
        Error::InvalidRequest(_)
        | Error::AlreadyRunning(_)
        | Error::UnknownAgent(_)
        | Error::UnsafePath(_)
        | Error::NotIndexed(_)
        | Error::Index(_) => false,
    }
}

fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        match cause.downcast_ref::<Status>() {
            Some(status) => text.push_str(status.message()),
            None => text.push_str(&cause.to_string()),
        }
        source = cause.source();
    }
    text
}

/// Limits on what is copied from a workspace.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Larger files are left out.
    pub max_file_bytes: u64,
    /// At most this many files are copied.
    pub max_files: usize,
}

/// The `AgentOrchestrator` implementation.
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
    /// Running tasks and the token that interrupts each.
    tasks: RunningTasks,
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
                tasks: RunningTasks::new(),
            }),
        }
    }
}

#[derive(Debug)]
struct Job {
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
        let map_tokens = match request.context.get(MAP_TOKENS_KEY) {
            None => 1024,
            Some(text) => text
                .trim()
                .parse()
                .map_err(|_| Error::InvalidRequest("repo_map_tokens is not a whole number"))?,
        };
        let stack_trace = request
            .context
            .get(STACK_TRACE_KEY)
            .filter(|t| !t.trim().is_empty())
            .cloned();
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

struct Events {
    tx: mpsc::Sender<std::result::Result<TaskEvent, Status>>,
}

/// The caller stopped listening.
struct Gone;

impl Events {
    async fn send(&self, payload: Payload) -> std::result::Result<(), Gone> {
        let event = TaskEvent {
            payload: Some(payload),
            agent: AGENT_NAME.to_owned(),
            created_at_ms: now_ms(),
        };
        self.tx.send(Ok(event)).await.map_err(|_| Gone)
    }

    async fn fail(&self, error: Error) {
        let report = ErrorReport {
            severity: "error".to_owned(),
            message: chain(&error),
            recoverable: is_recoverable(&error),
        };
        if self.send(Payload::Error(report)).await.is_ok() {
            let _ = self.tx.send(Err(to_status(&error))).await;
        }
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

impl Inner {
    async fn execute(&self, job: Job, interrupt: CancellationToken, events: &Events) {
        let cancel = Arc::new(AtomicBool::new(false));
        let work = self.work(&job, events, &cancel);
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
            Ok(()) => {}
            Err(None) => tracing::info!(task_id = %job.task_id, "caller went away"),
            Err(Some(Error::Interrupted(stage))) => {
                tracing::info!(task_id = %job.task_id, stage, "task interrupted");
                let state = serde_json::json!({ "task_id": job.task_id, "stopped_while": stage });
                let _ = events
                    .send(Payload::Checkpoint(Checkpoint {
                        kind: "interrupted".to_owned(),
                        description: format!(
                            "interrupted on request while {stage}; nothing half-written was kept"
                        ),
                        state_json: state.to_string(),
                    }))
                    .await;
            }
            Err(Some(error)) => events.fail(error).await,
        }
    }

    /// `Err(None)`: the caller went away; `Err(Some(e))`: the task failed.
    async fn work(
        &self,
        job: &Job,
        events: &Events,
        cancel: &Arc<AtomicBool>,
    ) -> std::result::Result<(), Option<Error>> {
        let gone = |_: Gone| None;
        events
            .send(Payload::Thought(Thought {
                reasoning: "I will index the workspace's source and configuration files to give \
                            the planner summaries, the import graph, the repository's conventions \
                            and a ranked map."
                    .to_owned(),
            }))
            .await
            .map_err(gone)?;
        let copy_id = format!("{}:copy_workspace", job.task_id);
        let arguments = serde_json::json!({ "session_id": job.session_id }).to_string();
        events
            .send(Payload::Action(Action {
                call_id: copy_id.clone(),
                tool: "copy_workspace".to_owned(),
                arguments_json: arguments.clone(),
            }))
            .await
            .map_err(gone)?;
        let copy = tempfile::tempdir().map_err(|e| Some(Error::Io(e)))?;
        let copied = self
            .mirror(&job.session_id, copy.path(), cancel)
            .await
            .map_err(Some)?
            .len();
        events
            .send(Payload::Observation(Observation {
                call_id: copy_id,
                tool: "copy_workspace".to_owned(),
                is_error: false,
                content: format!("copied {copied} source and configuration files"),
                detail: None,
            }))
            .await
            .map_err(gone)?;
        let call_id = format!("{}:index_repository", job.task_id);
        events
            .send(Payload::Action(Action {
                call_id: call_id.clone(),
                tool: "index_repository".to_owned(),
                arguments_json: arguments,
            }))
            .await
            .map_err(gone)?;
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
        .map_err(|e| Some(Error::Io(std::io::Error::other(e))))?
        .map_err(Some)?;
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
            .await
            .map_err(gone)?;
        events
            .send(Payload::Checkpoint(Checkpoint {
                kind: "context_ready".to_owned(),
                description: summary,
                state_json: report.to_string(),
            }))
            .await
            .map_err(gone)
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

#[tonic::async_trait]
impl AgentOrchestrator for ContextAgent {
    type ExecuteTaskStream = ReceiverStream<std::result::Result<TaskEvent, Status>>;

    async fn execute_task(
        &self,
        request: Request<TaskRequest>,
    ) -> std::result::Result<Response<Self::ExecuteTaskStream>, Status> {
        let job = Job::from_request(request.into_inner()).map_err(|e| to_status(&e))?;
        let (interrupt, guard) = match self.inner.tasks.register(&job.task_id) {
            Ok(registered) => registered,
            Err(taken) => return Err(to_status(&Error::AlreadyRunning(taken.0))),
        };
        tracing::info!(task_id = %job.task_id, session_id = %job.session_id, "task started");
        let (tx, rx) = mpsc::channel(16);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let events = Events { tx };
            inner.execute(job, interrupt, &events).await;
            drop(guard);
            drop(events);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_agent_status(
        &self,
        request: Request<AgentId>,
    ) -> std::result::Result<Response<AgentStatus>, Status> {
        let asked = request.into_inner().agent;
        if !asked.is_empty() && asked != AGENT_NAME {
            return Err(to_status(&Error::UnknownAgent(asked)));
        }
        Ok(Response::new(self.inner.tasks.status(AGENT_NAME)))
    }

    async fn interrupt_task(
        &self,
        request: Request<TaskId>,
    ) -> std::result::Result<Response<Ack>, Status> {
        let task_id = request.into_inner().task_id;
        if task_id.trim().is_empty() {
            return Err(to_status(&Error::InvalidRequest("task_id is empty")));
        }
        Ok(Response::new(
            self.inner.tasks.interrupt_ack(&task_id, AGENT_NAME),
        ))
    }
}

mod rpc;

/// An index error, or the interrupt that caused it.
fn index_error(error: cap_index::Error) -> Error {
    match error {
        cap_index::Error::Cancelled => Error::Interrupted("indexing"),
        other => Error::Index(other),
    }
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
