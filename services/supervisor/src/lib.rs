//! The supervisor service: owns tasks, their events and checkpoints, and runs each task
//! through the workflow graph (`cap-workflow`). It serves the `TaskService` API the gateway
//! uses and the `AgentOrchestrator` contract, so it can itself be driven like an agent.

use std::pin::Pin;

use anyhow::Context as _;

use cap_proto::agent::v1::agent_orchestrator_client::AgentOrchestratorClient;
use cap_proto::agent::v1::agent_orchestrator_server::{AgentOrchestrator, AgentOrchestratorServer};
use cap_proto::agent::v1::{Ack, AgentId, AgentStatus, Constraint, TaskEvent, TaskId, TaskRequest};
use cap_proto::github::v1::git_hub_client::GitHubClient;
use cap_proto::supervisor::v1::task_service_server::{TaskService, TaskServiceServer};
use cap_proto::supervisor::v1::{
    AbortTaskRequest, AddConstraintRequest, AuditRecord, DecideTaskRequest, GetTaskRequest,
    InterruptTaskRequest, ListAuditRequest, ListAuditResponse, ListCheckpointsRequest,
    ListCheckpointsResponse, ListQuarantinedRequest, ListQuarantinedResponse, ListTasksRequest,
    ListTasksResponse, QuarantinedTask, ReadQuarantinedFileRequest, ReadQuarantinedFileResponse,
    ResumeTaskRequest, RollbackTaskRequest, RollbackTaskResponse, SubmitTaskRequest,
    SubmitTaskResponse, Task, TaskCheckpoint, TaskEventRecord, WatchTaskRequest,
};
use cap_sandbox_client::{GrpcSandbox, MAX_MESSAGE_BYTES};
use cap_workflow::{
    Clients, Coordination, Engine, EngineConfig, Error, RedisConfig, Store, TaskRecord, TaskSpec,
};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

/// The supervisor's configuration.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "cap-supervisor",
    about = "Runs tasks through the workflow graph"
)]
pub struct Config {
    /// Flags every service takes.
    #[command(flatten)]
    pub common: cap_runtime::CommonArgs,
    /// The store: `postgres://...`, or a SQLite URL; default a SQLite file in the data dir.
    #[arg(long, env = "CAP_SUPERVISOR_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The sandbox service (`https://host:port`).
    #[arg(long, env = "CAP_SANDBOX_URL")]
    pub sandbox_url: String,
    /// The GitHub service.
    #[arg(long, env = "CAP_GITHUB_URL")]
    pub github_url: String,
    /// The coding agent.
    #[arg(long, env = "CAP_CODING_AGENT_URL")]
    pub coding_agent_url: String,
    /// The testing agent.
    #[arg(long, env = "CAP_TESTING_AGENT_URL")]
    pub testing_agent_url: String,
    /// The context agent; without it, plans carry no repository map.
    #[arg(long, env = "CAP_CONTEXT_AGENT_URL")]
    pub context_agent_url: Option<String>,
    /// How many times in a row the coding agent may try while the tests fail before the task
    /// pauses for a human (who may guide it and resume for another round).
    #[arg(long, env = "CAP_MAX_FIX_ATTEMPTS", default_value_t = 3)]
    pub max_fix_attempts: u32,
    /// Tasks running at once.
    #[arg(long, env = "CAP_MAX_CONCURRENT_TASKS", default_value_t = 4)]
    pub max_concurrent_tasks: usize,
    /// This replica's name among the supervisors sharing a store, the same across its
    /// restarts; default the host name (the pod's name on Kubernetes).
    #[arg(long, env = "CAP_SUPERVISOR_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// How long a task's lease lasts unrenewed, in seconds; another replica takes over the
    /// tasks of one that stopped renewing after this.
    #[arg(
        long,
        env = "CAP_SUPERVISOR_LEASE_SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(3..=3600)
    )]
    pub lease_seconds: u64,
    /// The longest wait for a pull request's required status checks (GitHub) before the task
    /// fails naming the pending ones.
    #[arg(
        long,
        env = "CAP_CHECKS_TIMEOUT_MINUTES",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=1440)
    )]
    pub checks_timeout_minutes: u64,
    /// Redis (`redis://host:port`) for the replicas to coordinate through: task leases,
    /// events and interrupts across replicas at once, checkpoint copies. Without it they
    /// coordinate through the store (row leases; watchers poll it every 2 s). Start fails if
    /// it is set and Redis does not answer.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// The operator's advisory and licence snapshots (`cap advisories import`), checked
    /// against the dependencies a change adds; unset or empty: not checked, with a warning.
    #[arg(long, env = "CAP_ADVISORIES_DIR")]
    pub advisories: Option<std::path::PathBuf>,
    /// The operator's licence policy (`licences.toml`: a default and per-repository
    /// entries); unset or absent: licences are not checked.
    #[arg(long, env = "CAP_LICENCE_POLICY")]
    pub licence_policy: Option<std::path::PathBuf>,
    /// How long one run of a task may take, in minutes, before it stops and hands its
    /// partial change to a human as a draft pull request with hand-off notes (the task then
    /// fails naming the timeout); 0: no limit. A resume gets a budget of its own.
    #[arg(long, env = "CAP_TASK_TIMEOUT_MINUTES", default_value_t = 60)]
    pub task_timeout_minutes: u64,
    /// Where the audit log's Ed25519 signing key is kept (made on first start); replicas
    /// sharing a store share it too, so one public key verifies every checkpoint. Default
    /// the data dir.
    #[arg(long, env = "CAP_AUDIT_KEY_DIR")]
    pub audit_key_dir: Option<std::path::PathBuf>,
}

impl Config {
    /// The time budget of one run of a task: `--task-timeout-minutes`, `None` for 0.
    pub fn task_time_budget(&self) -> Option<std::time::Duration> {
        (self.task_timeout_minutes > 0)
            .then(|| std::time::Duration::from_secs(self.task_timeout_minutes.saturating_mul(60)))
    }

    /// The replica name: the flag, else the host name, else `local`.
    pub fn replica_id(&self) -> String {
        self.replica_id
            .clone()
            .filter(|id| !id.trim().is_empty())
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|name| name.trim().to_owned())
                    .filter(|name| !name.is_empty())
            })
            .unwrap_or_else(|| "local".to_owned())
    }
}

/// Serves the supervisor until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let tls = config.common.tls("supervisor")?;
    let database_url = config
        .database_url
        .clone()
        .unwrap_or_else(|| cap_storage::sqlite_url(&config.common.data_dir.join("supervisor.db")));
    std::fs::create_dir_all(&config.common.data_dir)?;
    let key_dir = config
        .audit_key_dir
        .as_deref()
        .unwrap_or(&config.common.data_dir);
    let signer = cap_audit::Signer::load_or_create(key_dir)?;
    let store = Store::open(&database_url).await?.with_audit_signer(signer);
    store.audit().spawn_checkpoints();
    let clients = Clients {
        github: GitHubClient::new(tls.channel(&config.github_url)?),
        sandbox: GrpcSandbox::shared(tls.channel(&config.sandbox_url)?, MAX_MESSAGE_BYTES),
        coding: AgentOrchestratorClient::new(tls.channel(&config.coding_agent_url)?),
        testing: AgentOrchestratorClient::new(tls.channel(&config.testing_agent_url)?),
        context: match &config.context_agent_url {
            Some(url) => Some(AgentOrchestratorClient::new(tls.channel(url)?)),
            None => None,
        },
    };
    let engine_config = EngineConfig {
        max_fix_attempts: config.max_fix_attempts.max(1),
        max_concurrent_tasks: config.max_concurrent_tasks.max(1),
        replica_id: config.replica_id(),
        lease: std::time::Duration::from_secs(config.lease_seconds),
        checks_timeout: std::time::Duration::from_secs(config.checks_timeout_minutes * 60),
        advisories_dir: config.advisories.clone(),
        licence_policy: config.licence_policy.clone(),
        task_time_budget: config.task_time_budget(),
        ..EngineConfig::default()
    };
    let coordination = match config
        .redis_url
        .as_deref()
        .filter(|url| !url.trim().is_empty())
    {
        Some(url) => {
            let coordination = Coordination::connect(RedisConfig::new(url))
                .await
                .context("REDIS_URL")?;
            tracing::info!("replicas coordinate through redis");
            coordination
        }
        None => Coordination::Sql,
    };
    tracing::info!(replica = %engine_config.replica_id, "supervisor replica");
    let engine = Engine::with_coordination(store, clients, engine_config, coordination);
    let resumed = engine.resume_unfinished().await?;
    engine.spawn_takeover();
    if resumed > 0 {
        tracing::info!(resumed, "resumed unfinished tasks");
    }
    let listener = config.common.bind().await?;
    let service = SupervisorService { engine };
    let router = cap_runtime::grpc_server(&tls)?
        .add_service(cap_runtime::health_service::<TaskServiceServer<SupervisorService>>().await)
        .add_service(TaskServiceServer::new(service.clone()))
        .add_service(AgentOrchestratorServer::new(service));
    cap_runtime::serve(router, listener).await?;
    Ok(())
}

/// The gRPC face of the workflow engine.
#[derive(Debug, Clone)]
pub struct SupervisorService {
    engine: Engine,
}

impl SupervisorService {
    /// A service over `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

/// The one place workflow errors become gRPC statuses. Clients get a short message; the
/// whole chain goes to the log.
fn to_status(error: Error) -> Status {
    match &error {
        Error::TaskNotFound(_) | Error::CheckpointNotFound { .. } => {
            Status::not_found(error.to_string())
        }
        Error::InvalidRequest(_) => Status::invalid_argument(error.to_string()),
        Error::Conflict(_) | Error::LeaseLost(_) => Status::failed_precondition(error.to_string()),
        Error::Upstream { .. }
        | Error::TaskFailed(_)
        | Error::SecretsFound(_)
        | Error::NeedsHuman(_)
        | Error::Interrupted => Status::unavailable(error.to_string()),
        Error::Redis { .. } => {
            tracing::error!(error = ?error, "redis error");
            Status::unavailable("the supervisors' coordination (redis) failed; try again")
        }
        Error::Audit(_) => {
            tracing::error!(error = ?error, "audit log error");
            Status::unavailable("the supervisor's audit log failed; try again")
        }
        Error::Storage(_)
        | Error::Sql(_)
        | Error::Write(_)
        | Error::Json(_)
        | Error::Corrupt(_) => {
            tracing::error!(error = ?error, "supervisor store error");
            Status::internal("the supervisor's store failed")
        }
    }
}

/// The signed-in user a call acts for; refused for a service of the fleet or a caller without
/// a name, since only the gateway (which checks roles) names users.
fn signed_in_user<T>(request: &Request<T>) -> Result<String, Status> {
    let actor = cap_runtime::acting_user(request);
    if actor == "anonymous" || actor.starts_with("service:") {
        return Err(Status::permission_denied(format!(
            "{actor} may not read quarantined workspaces: only a signed-in Admin, through the \
             gateway"
        )));
    }
    Ok(actor)
}

fn check_task_id(task_id: &str) -> Result<(), Status> {
    uuid::Uuid::parse_str(task_id)
        .map(|_| ())
        .map_err(|_| Status::invalid_argument(format!("task_id: {task_id:?} is not a UUID")))
}

fn task_to_proto(task: TaskRecord) -> Task {
    Task {
        task_id: task.task_id,
        repository_id: task.spec.repository_id,
        prompt: task.spec.prompt,
        status: task.status.as_str().to_owned(),
        current_agent: task.current_agent,
        progress_percentage: task.progress_percentage,
        current_node: task.current_node,
        pull_request_id: task.pull_request_id,
        branch: task.branch,
        error_message: task.error_message,
        priority: task.spec.priority,
        created_at_ms: task.created_at_ms,
        updated_at_ms: task.updated_at_ms,
        requested_by: task.spec.requested_by,
        parent_task_id: task.parent_task_id,
        forked_from_checkpoint: task.forked_from_checkpoint,
    }
}

/// A rough estimate shown to users; refined once tasks have history to learn from.
const ESTIMATED_DURATION_MINUTES: u32 = 15;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl TaskService for SupervisorService {
    async fn submit_task(
        &self,
        request: Request<SubmitTaskRequest>,
    ) -> Result<Response<SubmitTaskResponse>, Status> {
        let requested_by = cap_runtime::acting_user(&request);
        let request = request.into_inner();
        let spec = TaskSpec {
            repository_id: request.repository_id,
            prompt: request.prompt,
            avoid_files: request.avoid_files,
            max_files_changed: request.max_files_changed,
            priority: request.priority,
            test_command: request.test_command,
            requested_by,
        };
        let task = self.engine.submit(spec).await.map_err(to_status)?;
        Ok(Response::new(SubmitTaskResponse {
            task: Some(task_to_proto(task)),
            estimated_duration_minutes: ESTIMATED_DURATION_MINUTES,
        }))
    }

    async fn get_task(&self, request: Request<GetTaskRequest>) -> Result<Response<Task>, Status> {
        let task_id = request.into_inner().task_id;
        check_task_id(&task_id)?;
        let task = self.engine.get(&task_id).await.map_err(to_status)?;
        Ok(Response::new(task_to_proto(task)))
    }

    async fn list_tasks(
        &self,
        request: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        let limit = match request.into_inner().limit {
            0 => 50,
            n => n.min(500),
        };
        let tasks = self.engine.list(limit).await.map_err(to_status)?;
        Ok(Response::new(ListTasksResponse {
            tasks: tasks.into_iter().map(task_to_proto).collect(),
        }))
    }

    type WatchTaskStream = BoxStream<TaskEventRecord>;

    async fn watch_task(
        &self,
        request: Request<WatchTaskRequest>,
    ) -> Result<Response<Self::WatchTaskStream>, Status> {
        let request = request.into_inner();
        check_task_id(&request.task_id)?;
        if request.after_seq < 0 {
            return Err(Status::invalid_argument("after_seq: must not be negative"));
        }
        let task_id = request.task_id.clone();
        let stream = self
            .engine
            .watch(&request.task_id, request.after_seq)
            .await
            .map_err(to_status)?
            .map(move |record| {
                record.map_err(to_status).map(|record| TaskEventRecord {
                    task_id: task_id.clone(),
                    seq: record.seq,
                    event: Some(record.event),
                })
            });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn interrupt_task(
        &self,
        request: Request<InterruptTaskRequest>,
    ) -> Result<Response<Task>, Status> {
        let actor = cap_runtime::acting_user(&request);
        let task_id = request.into_inner().task_id;
        check_task_id(&task_id)?;
        self.engine
            .interrupt(&task_id, &actor)
            .await
            .map_err(to_status)?;
        let task = self.engine.get(&task_id).await.map_err(to_status)?;
        Ok(Response::new(task_to_proto(task)))
    }

    async fn resume_task(
        &self,
        request: Request<ResumeTaskRequest>,
    ) -> Result<Response<Task>, Status> {
        let actor = cap_runtime::acting_user(&request);
        let task_id = request.into_inner().task_id;
        check_task_id(&task_id)?;
        let task = self
            .engine
            .resume(&task_id, &actor)
            .await
            .map_err(to_status)?;
        Ok(Response::new(task_to_proto(task)))
    }

    async fn add_constraint(
        &self,
        request: Request<AddConstraintRequest>,
    ) -> Result<Response<Task>, Status> {
        let actor = cap_runtime::acting_user(&request);
        let request = request.into_inner();
        check_task_id(&request.task_id)?;
        let task = self
            .engine
            .add_constraint(&request.task_id, &request.text, &actor)
            .await
            .map_err(to_status)?;
        Ok(Response::new(task_to_proto(task)))
    }

    async fn decide_task(
        &self,
        request: Request<DecideTaskRequest>,
    ) -> Result<Response<Task>, Status> {
        let actor = cap_runtime::acting_user(&request);
        let request = request.into_inner();
        check_task_id(&request.task_id)?;
        let task = self
            .engine
            .decide(&request.task_id, request.approve, &request.reason, &actor)
            .await
            .map_err(to_status)?;
        Ok(Response::new(task_to_proto(task)))
    }

    async fn abort_task(
        &self,
        request: Request<AbortTaskRequest>,
    ) -> Result<Response<Task>, Status> {
        let actor = cap_runtime::acting_user(&request);
        let request = request.into_inner();
        check_task_id(&request.task_id)?;
        let task = self
            .engine
            .abort_task(&request.task_id, &request.reason, &actor)
            .await
            .map_err(to_status)?;
        Ok(Response::new(task_to_proto(task)))
    }

    async fn list_quarantined(
        &self,
        request: Request<ListQuarantinedRequest>,
    ) -> Result<Response<ListQuarantinedResponse>, Status> {
        let limit = match request.into_inner().limit {
            0 => 50,
            n => n.min(500) as usize,
        };
        let tasks = self.engine.quarantined(limit).await.map_err(to_status)?;
        Ok(Response::new(ListQuarantinedResponse {
            tasks: tasks
                .into_iter()
                .map(|quarantined| QuarantinedTask {
                    task: Some(task_to_proto(quarantined.task)),
                    session_id: quarantined.session_id,
                    files: quarantined.files,
                })
                .collect(),
        }))
    }

    async fn read_quarantined_file(
        &self,
        request: Request<ReadQuarantinedFileRequest>,
    ) -> Result<Response<ReadQuarantinedFileResponse>, Status> {
        let actor = signed_in_user(&request)?;
        let request = request.into_inner();
        check_task_id(&request.task_id)?;
        let content = self
            .engine
            .read_quarantined(&request.task_id, &request.path, &actor)
            .await
            .map_err(to_status)?;
        Ok(Response::new(ReadQuarantinedFileResponse { content }))
    }

    async fn list_audit(
        &self,
        request: Request<ListAuditRequest>,
    ) -> Result<Response<ListAuditResponse>, Status> {
        let request = request.into_inner();
        if !request.task_id.is_empty() {
            check_task_id(&request.task_id)?;
        }
        let limit = match request.limit {
            0 => 100,
            n => n.min(1000),
        };
        let task_id = (!request.task_id.is_empty()).then_some(request.task_id.as_str());
        let records = self
            .engine
            .store()
            .audit()
            .records(task_id, limit)
            .await
            .map_err(|error| to_status(error.into()))?;
        Ok(Response::new(ListAuditResponse {
            records: records
                .into_iter()
                .map(|record| AuditRecord {
                    seq: record.seq,
                    created_at_ms: record.created_at_ms,
                    actor: record.actor,
                    action: record.action,
                    task_id: record.task_id,
                    details_json: record.details_json,
                    hash: record.hash,
                })
                .collect(),
        }))
    }

    async fn list_checkpoints(
        &self,
        request: Request<ListCheckpointsRequest>,
    ) -> Result<Response<ListCheckpointsResponse>, Status> {
        let task_id = request.into_inner().task_id;
        check_task_id(&task_id)?;
        let checkpoints = self
            .engine
            .list_checkpoints(&task_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(ListCheckpointsResponse {
            checkpoints: checkpoints
                .into_iter()
                .map(|checkpoint| TaskCheckpoint {
                    checkpoint_id: checkpoint.checkpoint_id,
                    seq: checkpoint.seq,
                    node: checkpoint.node,
                    kind: checkpoint.kind,
                    event_seq: checkpoint.event_seq,
                    created_at_ms: checkpoint.created_at_ms,
                })
                .collect(),
        }))
    }

    async fn rollback_task(
        &self,
        request: Request<RollbackTaskRequest>,
    ) -> Result<Response<RollbackTaskResponse>, Status> {
        let actor = cap_runtime::acting_user(&request);
        let request = request.into_inner();
        check_task_id(&request.task_id)?;
        let task = self
            .engine
            .rollback(&request.task_id, &request.checkpoint_id, &actor)
            .await
            .map_err(to_status)?;
        Ok(Response::new(RollbackTaskResponse {
            task: Some(task_to_proto(task)),
        }))
    }
}

#[tonic::async_trait]
impl AgentOrchestrator for SupervisorService {
    type ExecuteTaskStream = BoxStream<TaskEvent>;

    /// Runs a whole task through the workflow and streams its events: the supervisor seen as
    /// one agent by a caller higher up.
    async fn execute_task(
        &self,
        request: Request<TaskRequest>,
    ) -> Result<Response<Self::ExecuteTaskStream>, Status> {
        let requested_by = cap_runtime::acting_user(&request);
        let request = request.into_inner();
        let repo = request.repo.unwrap_or_default();
        let spec = TaskSpec {
            repository_id: repo.repository_id,
            prompt: request.objective,
            priority: request.context.unwrap_or_default().priority,
            test_command: repo.test_command,
            requested_by,
            ..TaskSpec::default()
        };
        let task = self.engine.submit(spec).await.map_err(to_status)?;
        let stream = self
            .engine
            .watch(&task.task_id, 0)
            .await
            .map_err(to_status)?
            .map(|record| record.map_err(to_status).map(|record| record.event));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_agent_status(
        &self,
        _request: Request<AgentId>,
    ) -> Result<Response<AgentStatus>, Status> {
        let running = self.engine.running_tasks();
        Ok(Response::new(AgentStatus {
            agent: "supervisor".into(),
            state: if running.is_empty() { "idle" } else { "busy" }.into(),
            running_task_ids: running,
            tasks_completed: self.engine.finished_runs(),
            version: env!("CARGO_PKG_VERSION").into(),
        }))
    }

    async fn interrupt_task(&self, request: Request<TaskId>) -> Result<Response<Ack>, Status> {
        let actor = cap_runtime::acting_user(&request);
        let task_id = request.into_inner().task_id;
        check_task_id(&task_id)?;
        let accepted = self
            .engine
            .interrupt(&task_id, &actor)
            .await
            .map_err(to_status)?;
        let message = if accepted {
            "the task stops at its next step and is paused"
        } else {
            "the task is not running in this supervisor"
        };
        Ok(Response::new(Ack {
            accepted,
            message: message.into(),
        }))
    }

    async fn add_constraint(&self, request: Request<Constraint>) -> Result<Response<Ack>, Status> {
        let actor = cap_runtime::acting_user(&request);
        let Constraint { task_id, text } = request.into_inner();
        check_task_id(&task_id)?;
        self.engine
            .add_constraint(&task_id, &text, &actor)
            .await
            .map_err(to_status)?;
        Ok(Response::new(Ack {
            accepted: true,
            message: "the task follows the constraint from its next step".into(),
        }))
    }
}
