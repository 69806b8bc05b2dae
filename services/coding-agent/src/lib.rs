//! Coding agent service: AgentOrchestrator over the tool-calling loop.
//!
//! `ExecuteTask` runs [`cap_agent::CodingAgent`] on the task's sandbox session and streams
//! its events (Thought, Action, Observation, Checkpoint, ErrorReport) as they happen. The
//! stream ends OK when the agent finished, stopped at its step limit or was interrupted, and
//! with an error status (after an ErrorReport event) when the model endpoint or the sandbox
//! failed. `GetAgentStatus` reports the running tasks; `InterruptTask` stops one at its next
//! step (its staged edits are written first, a Checkpoint `interrupted` ends the stream).
//! A caller that stops listening interrupts its task too.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cap_agent::{AgentConfig, CancellationToken, CodingAgent};
use cap_llm::ModelConfig;
use cap_mtls::ServiceTls;
use cap_proto::agent::v1::agent_orchestrator_server::{AgentOrchestrator, AgentOrchestratorServer};
use cap_proto::agent::v1::{Ack, AgentId, AgentStatus, TaskEvent, TaskId, TaskRequest};
use cap_runtime::tasks::{RunningGuard, RunningTasks};
use cap_sandbox_client::{GrpcSandbox, MAX_MESSAGE_BYTES};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};

/// The service's name in the fleet (its TLS identity).
pub const SERVICE_NAME: &str = "coding-agent";

/// The name this agent signs its events with and answers to in `GetAgentStatus`.
pub const AGENT_NAME: &str = cap_agent::AGENT_NAME;

/// The coding agent's configuration.
#[derive(Clone, clap::Parser)]
#[command(
    name = "cap-coding-agent",
    about = "Changes a repository with a model and tools, in the sandbox"
)]
pub struct Config {
    /// Flags every service takes.
    #[command(flatten)]
    pub common: cap_runtime::CommonArgs,
    /// The sandbox service (`https://host:port`).
    #[arg(long, env = "CAP_SANDBOX_URL")]
    pub sandbox_url: String,
    /// Base URL of the OpenAI-compatible model endpoint, e.g. `http://127.0.0.1:1234/v1`.
    #[arg(long, env = "CAP_MODEL_BASE_URL")]
    pub model_base_url: String,
    /// Bearer token for the model endpoint, if it needs one. Never logged.
    #[arg(long, env = "CAP_MODEL_API_KEY", hide_env_values = true)]
    pub model_api_key: Option<String>,
    /// Model name sent with every request.
    #[arg(long, env = "CAP_MODEL", default_value = "qwen2.5-coder")]
    pub model: String,
    /// Model turns allowed per task.
    #[arg(
        long,
        env = "CAP_MAX_STEPS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub max_steps: u32,
    /// Timeout of one model request, in seconds.
    #[arg(
        long,
        env = "CAP_MODEL_TIMEOUT_SECONDS",
        default_value_t = 120,
        value_parser = clap::value_parser!(u64).range(1..=3_600)
    )]
    pub model_timeout_seconds: u64,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("common", &self.common)
            .field("sandbox_url", &self.sandbox_url)
            .field("model_base_url", &self.model_base_url)
            .field(
                "model_api_key",
                &self.model_api_key.as_ref().map(|_| "<redacted>"),
            )
            .field("model", &self.model)
            .field("max_steps", &self.max_steps)
            .field("model_timeout_seconds", &self.model_timeout_seconds)
            .finish()
    }
}

impl Config {
    /// The agent configuration these flags describe.
    pub fn agent_config(&self) -> AgentConfig {
        AgentConfig::new(
            ModelConfig {
                base_url: self.model_base_url.clone(),
                api_key: self.model_api_key.clone().filter(|key| !key.is_empty()),
                model: self.model.clone(),
                timeout: Duration::from_secs(self.model_timeout_seconds),
            },
            self.max_steps,
        )
    }
}

/// Serves the coding agent until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = config.common.bind().await?;
    serve(config, listener).await
}

/// Serves the coding agent on an already bound listener (tests bind port 0 themselves).
pub async fn serve(config: Config, listener: TcpListener) -> anyhow::Result<()> {
    let tls = config.common.tls(SERVICE_NAME)?;
    let router = router(&config, &tls).await?;
    tracing::info!(model = %config.model, base_url = %config.model_base_url, "coding agent ready");
    cap_runtime::serve(router, listener).await?;
    Ok(())
}

/// The gRPC router: the agent and the health service over mutual TLS with `tls`, the
/// sandbox dialled with the same identity.
pub async fn router(config: &Config, tls: &ServiceTls) -> anyhow::Result<Router> {
    let sandbox = GrpcSandbox::shared(tls.channel(&config.sandbox_url)?, MAX_MESSAGE_BYTES);
    let agent = CodingAgent::new(config.agent_config(), sandbox)?;
    let service = CodingAgentService::new(agent);
    let health = cap_runtime::health_service::<AgentOrchestratorServer<CodingAgentService>>().await;
    Ok(cap_runtime::grpc_server(tls)?
        .add_service(health)
        .add_service(AgentOrchestratorServer::new(service)))
}

/// What can go wrong serving a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A task with this id is already running here.
    #[error("task {0} is already running on the coding agent")]
    AlreadyRunning(String),
    /// `GetAgentStatus` asked for another agent.
    #[error("agent {0:?} is not served here; this is the {AGENT_NAME} agent")]
    UnknownAgent(String),
    /// `InterruptTask` without a task id.
    #[error("task_id is empty")]
    EmptyTaskId,
    /// The agent refused or failed the task.
    #[error(transparent)]
    Agent(#[from] cap_agent::Error),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The one place errors become statuses. The client gets a message naming what went wrong;
/// the whole chain is logged.
pub fn to_status(error: &Error) -> Status {
    use cap_agent::Error as Agent;
    let message = match error {
        Error::Agent(inner) => inner.chain(),
        other => other.to_string(),
    };
    tracing::warn!(error = %message, "request failed");
    match error {
        Error::AlreadyRunning(_) => Status::already_exists(message),
        Error::UnknownAgent(_) => Status::not_found(message),
        Error::EmptyTaskId => Status::invalid_argument(message),
        Error::Agent(inner) => match inner {
            Agent::InvalidRequest { .. } => Status::invalid_argument(message),
            Agent::Config { .. } => Status::failed_precondition(message),
            Agent::Model { .. } => Status::unavailable(message),
            // The named session does not exist or cannot be used.
            Agent::Session { source, .. } => match source.as_ref() {
                Agent::Sandbox { source, .. } if source.code() == tonic::Code::NotFound => {
                    Status::failed_precondition(message)
                }
                _ => Status::unavailable(message),
            },
            Agent::Sandbox { source, .. } => match source.code() {
                tonic::Code::InvalidArgument
                | tonic::Code::NotFound
                | tonic::Code::FailedPrecondition
                | tonic::Code::AlreadyExists
                | tonic::Code::OutOfRange
                | tonic::Code::PermissionDenied => Status::failed_precondition(message),
                _ => Status::unavailable(message),
            },
            Agent::ExecIncomplete | Agent::TestRun { .. } | Agent::Format { .. } => {
                Status::unavailable(message)
            }
            Agent::EventsClosed => Status::cancelled(message),
        },
    }
}

/// The `AgentOrchestrator` implementation.
#[derive(Clone)]
pub struct CodingAgentService {
    inner: Arc<Inner>,
}

struct Inner {
    agent: CodingAgent,
    /// Running tasks and the token that interrupts each.
    tasks: RunningTasks,
}

impl CodingAgentService {
    /// A service running tasks with `agent`.
    pub fn new(agent: CodingAgent) -> Self {
        Self {
            inner: Arc::new(Inner {
                agent,
                tasks: RunningTasks::new(),
            }),
        }
    }

    /// Registers a task as running; the guard unregisters it when dropped.
    fn register(&self, task_id: &str) -> Result<(CancellationToken, RunningGuard)> {
        self.inner
            .tasks
            .register(task_id)
            .map_err(|taken| Error::AlreadyRunning(taken.0))
    }
}

impl Inner {
    /// Runs one task, forwarding its events to `out`; a caller that goes away interrupts it.
    async fn execute(
        &self,
        request: TaskRequest,
        cancel: CancellationToken,
        out: &mpsc::Sender<std::result::Result<TaskEvent, Status>>,
    ) {
        let task_id = request.task_id.clone();
        let (events, mut received) = mpsc::channel::<TaskEvent>(64);
        let run = self.agent.run(request, events, cancel.clone());
        let forward = async {
            let mut gone = false;
            loop {
                tokio::select! {
                    event = received.recv() => match event {
                        Some(event) => {
                            if !gone && out.send(Ok(event)).await.is_err() {
                                gone = true;
                                cancel.cancel();
                            }
                        }
                        // The run ended and dropped its sender.
                        None => break,
                    },
                    () = out.closed(), if !gone => {
                        tracing::info!(%task_id, "caller went away; interrupting the task");
                        gone = true;
                        cancel.cancel();
                    }
                }
            }
        };
        let (result, ()) = tokio::join!(run, forward);
        if let Err(error) = result {
            let _ = out.send(Err(to_status(&Error::Agent(error)))).await;
        }
    }
}

#[tonic::async_trait]
impl AgentOrchestrator for CodingAgentService {
    type ExecuteTaskStream = ReceiverStream<std::result::Result<TaskEvent, Status>>;

    async fn execute_task(
        &self,
        request: Request<TaskRequest>,
    ) -> std::result::Result<Response<Self::ExecuteTaskStream>, Status> {
        let request = request.into_inner();
        CodingAgent::validate(&request).map_err(|e| to_status(&Error::Agent(e)))?;
        let (cancel, guard) = self.register(&request.task_id).map_err(|e| to_status(&e))?;
        let session = request
            .repo
            .as_ref()
            .map(|repo| repo.sandbox_session_id.clone())
            .unwrap_or_default();
        tracing::info!(task_id = %request.task_id, session_id = %session, "task accepted");
        let (tx, rx) = mpsc::channel(64);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            inner.execute(request, cancel, &tx).await;
            // Unregistered before the stream ends: a caller that saw the end sees the task
            // done in `GetAgentStatus`.
            drop(guard);
            drop(tx);
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
            return Err(to_status(&Error::EmptyTaskId));
        }
        Ok(Response::new(
            self.inner.tasks.interrupt_ack(&task_id, AGENT_NAME),
        ))
    }
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
