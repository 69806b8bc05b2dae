//! Stub agents and a stub GitHub service served in process, and an engine wired to them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cap_proto::agent::v1::agent_orchestrator_client::AgentOrchestratorClient;
use cap_proto::agent::v1::agent_orchestrator_server::{AgentOrchestrator, AgentOrchestratorServer};
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::agent::v1::{
    Ack, AgentId, AgentStatus, Checkpoint, CheckpointKind, Constraint, TaskEvent, TaskId,
    TaskRequest, Thought,
};
use cap_proto::common::v1::file_change::Change;
use cap_proto::github::v1 as gh;
use cap_proto::github::v1::git_hub_client::GitHubClient;
use cap_proto::github::v1::git_hub_server::{GitHub, GitHubServer};
use cap_testkit::sandbox::MemorySandbox;
use cap_workflow::store::EventRecord;
use cap_workflow::{Clients, Engine, EngineConfig, Store, TaskRecord, TaskSpec};
use futures::Stream;
use tokio::sync::Notify;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};

pub const REPO: &str = "acme/calc";
pub const CLONE_URL: &str = "/forge/acme/calc.git";
pub const BASE_SHA: &str = "1111111111111111111111111111111111111111";

/// What one `ExecuteTask` call of a stub agent does.
#[derive(Debug, Clone)]
pub enum Step {
    /// Writes `writes` into the session, then ends with a checkpoint of `kind`.
    Finish {
        kind: &'static str,
        writes: Vec<(&'static str, &'static str)>,
    },
    /// Answers the call with this status.
    Fail(Status),
    /// Waits for `InterruptTask`, then ends with an `interrupted` checkpoint.
    Hang,
    /// Writes `path`, then waits for `InterruptTask` and ends with an `interrupted`
    /// checkpoint: an agent stopped mid-change.
    #[allow(dead_code)] // not used by the bench, which shares this file
    EditThenHang {
        path: &'static str,
        content: &'static str,
    },
    /// Waits until `gate` is opened, then writes `path` and ends with `agent_finished`.
    EditWhenOpened {
        gate: Arc<Notify>,
        path: &'static str,
        content: &'static str,
    },
}

impl Step {
    pub fn finish(kind: &'static str) -> Self {
        Self::Finish {
            kind,
            writes: Vec::new(),
        }
    }

    pub fn edit(path: &'static str, content: &'static str) -> Self {
        Self::Finish {
            kind: "agent_finished",
            writes: vec![(path, content)],
        }
    }
}

/// An agent that plays its steps in order, one per `ExecuteTask`.
#[derive(Debug)]
pub struct StubAgent {
    name: &'static str,
    sandbox: Arc<MemorySandbox>,
    steps: Mutex<VecDeque<Step>>,
    requests: Mutex<Vec<TaskRequest>>,
    constraints: Mutex<Vec<Constraint>>,
    interrupted: Arc<Notify>,
    /// Told when a call starts, so a test can interrupt a hanging agent once it runs.
    pub started: Arc<Notify>,
    /// How long each call works before it answers (a model's think time, for the bench).
    delay: Mutex<Duration>,
}

impl StubAgent {
    fn new(name: &'static str, sandbox: Arc<MemorySandbox>) -> Arc<Self> {
        Arc::new(Self {
            name,
            sandbox,
            steps: Mutex::default(),
            requests: Mutex::default(),
            constraints: Mutex::default(),
            interrupted: Arc::default(),
            started: Arc::default(),
            delay: Mutex::default(),
        })
    }

    pub fn script(&self, steps: impl IntoIterator<Item = Step>) {
        self.steps.lock().unwrap().extend(steps);
    }

    /// Makes every call take `delay` before it answers.
    #[allow(dead_code)] // used by the bench, which shares this file
    pub fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<TaskRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// The constraints received through `AddConstraint` so far.
    #[allow(dead_code)] // not used by the bench, which shares this file
    pub fn constraints(&self) -> Vec<Constraint> {
        self.constraints.lock().unwrap().clone()
    }
}

type EventStream = std::pin::Pin<Box<dyn Stream<Item = Result<TaskEvent, Status>> + Send>>;

fn event(agent: &str, payload: Payload) -> TaskEvent {
    TaskEvent {
        payload: Some(payload),
        agent: agent.to_owned(),
        created_at_ms: cap_storage::now_ms(),
    }
}

/// The ending checkpoint of `kind`, reporting `edited` (path, content) as the files the agent
/// changed through its own edit tools, with the digest of what it left (as the coding agent
/// does).
fn checkpoint(agent: &str, kind: &str, edited: &[(&str, &str)]) -> TaskEvent {
    let files: Vec<serde_json::Value> = edited
        .iter()
        .map(|(path, content)| {
            let digest = cap_sandbox_client::content_digest(content.as_bytes());
            serde_json::json!({"path": path, "change": "modified", "sha256": digest})
        })
        .collect();
    let state =
        serde_json::json!({"summary": format!("{agent} did its part"), "files_changed": files});
    event(
        agent,
        Payload::Checkpoint(Checkpoint {
            kind: CheckpointKind::from_name(kind)
                .unwrap_or_else(|| panic!("no checkpoint kind {kind}"))
                .into(),
            description: format!("{agent} ended with {kind}"),
            state_json: state.to_string(),
        }),
    )
}

#[tonic::async_trait]
impl AgentOrchestrator for StubAgent {
    type ExecuteTaskStream = EventStream;

    async fn execute_task(
        &self,
        request: Request<TaskRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let request = request.into_inner();
        self.requests.lock().unwrap().push(request.clone());
        self.started.notify_one();
        let step = self.steps.lock().unwrap().pop_front();
        let step =
            step.ok_or_else(|| Status::internal(format!("{} has no step left", self.name)))?;
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let name = self.name;
        let thought = event(
            name,
            Payload::Thought(Thought {
                reasoning: format!("{name} at work"),
            }),
        );
        match step {
            Step::Fail(status) => Err(status),
            Step::Finish { kind, writes } => {
                let session = request
                    .repo
                    .map(|repo| repo.sandbox_session_id)
                    .unwrap_or_default();
                for (path, content) in &writes {
                    self.sandbox.put_file(&session, path, content);
                }
                let events = vec![Ok(thought), Ok(checkpoint(name, kind, &writes))];
                Ok(Response::new(Box::pin(futures::stream::iter(events))))
            }
            Step::EditWhenOpened {
                gate,
                path,
                content,
            } => {
                let session = request
                    .repo
                    .map(|repo| repo.sandbox_session_id)
                    .unwrap_or_default();
                let sandbox = self.sandbox.clone();
                let stream = async_stream::stream! {
                    gate.notified().await;
                    sandbox.put_file(&session, path, content);
                    yield Ok(thought);
                    yield Ok(checkpoint(name, "agent_finished", &[(path, content)]));
                };
                Ok(Response::new(Box::pin(stream)))
            }
            Step::EditThenHang { path, content } => {
                let session = request
                    .repo
                    .map(|repo| repo.sandbox_session_id)
                    .unwrap_or_default();
                self.sandbox.put_file(&session, path, content);
                let interrupted = self.interrupted.clone();
                let stream = async_stream::stream! {
                    yield Ok(thought);
                    interrupted.notified().await;
                    yield Ok(checkpoint(name, "interrupted", &[]));
                };
                Ok(Response::new(Box::pin(stream)))
            }
            Step::Hang => {
                let interrupted = self.interrupted.clone();
                let stream = async_stream::stream! {
                    yield Ok(thought);
                    interrupted.notified().await;
                    yield Ok(checkpoint(name, "interrupted", &[]));
                };
                Ok(Response::new(Box::pin(stream)))
            }
        }
    }

    async fn get_agent_status(
        &self,
        _request: Request<AgentId>,
    ) -> Result<Response<AgentStatus>, Status> {
        Err(Status::unimplemented("not used by the workflow"))
    }

    async fn interrupt_task(&self, _request: Request<TaskId>) -> Result<Response<Ack>, Status> {
        self.interrupted.notify_one();
        Ok(Response::new(Ack {
            accepted: true,
            message: String::new(),
        }))
    }

    async fn add_constraint(&self, request: Request<Constraint>) -> Result<Response<Ack>, Status> {
        self.constraints.lock().unwrap().push(request.into_inner());
        Ok(Response::new(Ack {
            accepted: true,
            message: String::new(),
        }))
    }
}

/// The GitHub service as far as the workflow uses it: one repository, branches, commits and
/// pull requests in memory; calls of an operation can be made to fail.
#[derive(Debug, Default)]
pub struct StubGitHub {
    pub branches: Mutex<Vec<String>>,
    pub commits: Mutex<Vec<gh::CommitChangesRequest>>,
    pub pull_requests: Mutex<Vec<gh::OpenPullRequestRequest>>,
    /// Answers of `GetRequiredChecks`, in order; once empty, "none required".
    pub checks: Mutex<std::collections::VecDeque<gh::GetRequiredChecksResponse>>,
    failures: Mutex<Vec<(&'static str, Status)>>,
}

impl StubGitHub {
    pub fn fail(&self, operation: &'static str, status: Status) {
        self.failures.lock().unwrap().push((operation, status));
    }

    fn check(&self, operation: &'static str) -> Result<(), Status> {
        let mut failures = self.failures.lock().unwrap();
        match failures.iter().position(|(op, _)| *op == operation) {
            Some(index) => Err(failures.remove(index).1),
            None => Ok(()),
        }
    }
}

#[tonic::async_trait]
impl GitHub for StubGitHub {
    async fn get_repository(
        &self,
        request: Request<gh::GetRepositoryRequest>,
    ) -> Result<Response<gh::Repository>, Status> {
        self.check("GetRepository")?;
        let request = request.into_inner();
        if request.repository_id != REPO {
            return Err(Status::not_found(format!(
                "repository {} not found",
                request.repository_id
            )));
        }
        Ok(Response::new(gh::Repository {
            repository_id: REPO.into(),
            clone_url: CLONE_URL.into(),
            default_branch: "main".into(),
            head_sha: BASE_SHA.into(),
        }))
    }

    async fn create_branch(
        &self,
        request: Request<gh::CreateBranchRequest>,
    ) -> Result<Response<gh::CreateBranchResponse>, Status> {
        self.check("CreateBranch")?;
        let request = request.into_inner();
        self.branches.lock().unwrap().push(request.branch.clone());
        Ok(Response::new(gh::CreateBranchResponse {
            branch: request.branch,
            head_sha: request.from_sha,
        }))
    }

    async fn commit_changes(
        &self,
        request: Request<gh::CommitChangesRequest>,
    ) -> Result<Response<gh::CommitChangesResponse>, Status> {
        self.check("CommitChanges")?;
        self.commits.lock().unwrap().push(request.into_inner());
        Ok(Response::new(gh::CommitChangesResponse {
            commit_sha: "2222222222222222222222222222222222222222".into(),
        }))
    }

    async fn open_pull_request(
        &self,
        request: Request<gh::OpenPullRequestRequest>,
    ) -> Result<Response<gh::PullRequest>, Status> {
        self.check("OpenPullRequest")?;
        let request = request.into_inner();
        let mut pull_requests = self.pull_requests.lock().unwrap();
        pull_requests.push(request.clone());
        Ok(Response::new(gh::PullRequest {
            pull_request_id: format!("pr-{}", pull_requests.len()),
            repository_id: request.repository_id,
            number: pull_requests.len() as u64,
            title: request.title,
            head_branch: request.head_branch,
            base_branch: request.base_branch,
            state: "open".into(),
            task_id: request.task_id,
            ..gh::PullRequest::default()
        }))
    }

    /// The pull request as opened, with a diff of what was committed to its branch.
    async fn get_pull_request(
        &self,
        request: Request<gh::GetPullRequestRequest>,
    ) -> Result<Response<gh::PullRequest>, Status> {
        let id = request.into_inner().pull_request_id;
        let number: usize = id
            .strip_prefix("pr-")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Status::not_found(id.clone()))?;
        let opened = self.pull_requests.lock().unwrap()[number - 1].clone();
        let mut diff = String::new();
        for commit in self.commits.lock().unwrap().iter() {
            if commit.branch != opened.head_branch {
                continue;
            }
            for change in &commit.changes {
                let path = &change.path;
                diff.push_str(&format!("diff --git a/{path} b/{path}\n+++ b/{path}\n"));
                if let Some(Change::Content(content)) = &change.change {
                    for line in String::from_utf8_lossy(content).lines() {
                        diff.push_str(&format!("+{line}\n"));
                    }
                }
            }
        }
        Ok(Response::new(gh::PullRequest {
            pull_request_id: id,
            repository_id: opened.repository_id,
            number: number as u64,
            head_branch: opened.head_branch,
            base_branch: opened.base_branch,
            state: "open".into(),
            task_id: opened.task_id,
            draft: opened.draft,
            diff,
            ..gh::PullRequest::default()
        }))
    }

    async fn list_pull_requests(
        &self,
        _request: Request<gh::ListPullRequestsRequest>,
    ) -> Result<Response<gh::ListPullRequestsResponse>, Status> {
        Err(Status::unimplemented("not used by the workflow"))
    }

    async fn review_pull_request(
        &self,
        _request: Request<gh::ReviewPullRequestRequest>,
    ) -> Result<Response<gh::PullRequest>, Status> {
        Err(Status::unimplemented("not used by the workflow"))
    }

    async fn import_repository(
        &self,
        _request: Request<gh::ImportRepositoryRequest>,
    ) -> Result<Response<gh::ImportRepositoryResponse>, Status> {
        Err(Status::unimplemented("not used by the workflow"))
    }

    async fn merge_pull_request(
        &self,
        _request: Request<gh::MergePullRequestRequest>,
    ) -> Result<Response<gh::PullRequest>, Status> {
        Err(Status::unimplemented("not used by the workflow"))
    }

    async fn get_required_checks(
        &self,
        _request: Request<gh::GetRequiredChecksRequest>,
    ) -> Result<Response<gh::GetRequiredChecksResponse>, Status> {
        self.check("GetRequiredChecks")?;
        let next = self.checks.lock().unwrap().pop_front();
        Ok(Response::new(next.unwrap_or_else(|| {
            gh::GetRequiredChecksResponse {
                head_sha: "2222222222222222222222222222222222222222".into(),
                state: "none".into(),
                checks: Vec::new(),
            }
        })))
    }
}

/// Serves `router` on a loopback port; a plain-HTTP/2 channel to it.
async fn serve(router: tonic::transport::server::Router) -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(
        router.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy()
}

/// An engine over a SQLite store in a temporary directory, driving stub agents, a stub
/// GitHub service and the in-memory sandbox holding the repository [`REPO`].
pub struct Harness {
    /// The store's URL.
    pub url: String,
    pub engine: Engine,
    pub store: Store,
    pub sandbox: Arc<MemorySandbox>,
    pub github: Arc<StubGitHub>,
    pub context: Arc<StubAgent>,
    pub coding: Arc<StubAgent>,
    pub testing: Arc<StubAgent>,
    clients: Clients,
    _dir: tempfile::TempDir,
}

/// The engine's tunables for tests: quick retries, two fix attempts.
pub fn config() -> EngineConfig {
    EngineConfig {
        max_fix_attempts: 2,
        max_concurrent_tasks: 4,
        node_retries: 2,
        retry_backoff: Duration::from_millis(200),
        ..EngineConfig::default()
    }
}

/// The PostgreSQL the machine runs for tests.
pub const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

impl Harness {
    /// On a SQLite store of its own.
    pub async fn start(config: EngineConfig) -> Self {
        Self::start_on(None, config).await
    }

    /// On the store at `database_url`, or a SQLite file of its own.
    pub async fn start_on(database_url: Option<&str>, config: EngineConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = match database_url {
            Some(url) => url.to_owned(),
            None => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("supervisor.db").display()
            ),
        };
        let store = Store::open(&url).await.unwrap();
        let sandbox = MemorySandbox::new();
        sandbox.add_repository(
            CLONE_URL,
            BASE_SHA,
            &[
                ("calc.py", "def add(a, b):\n    return a - b\n"),
                ("test_calc.py", ""),
            ],
        );
        let github = Arc::new(StubGitHub::default());
        let context = StubAgent::new("context", sandbox.clone());
        let coding = StubAgent::new("coding", sandbox.clone());
        let testing = StubAgent::new("testing", sandbox.clone());
        let agent = |stub: &Arc<StubAgent>| {
            Server::builder().add_service(AgentOrchestratorServer::from_arc(stub.clone()))
        };
        let clients = Clients {
            github: GitHubClient::new(
                serve(Server::builder().add_service(GitHubServer::from_arc(github.clone()))).await,
            ),
            sandbox: sandbox.clone(),
            coding: AgentOrchestratorClient::new(serve(agent(&coding)).await),
            testing: AgentOrchestratorClient::new(serve(agent(&testing)).await),
            context: Some(AgentOrchestratorClient::new(serve(agent(&context)).await)),
        };
        let engine = Engine::new(store.clone(), clients.clone(), config);
        Self {
            url,
            engine,
            store,
            sandbox,
            github,
            context,
            coding,
            testing,
            clients,
            _dir: dir,
        }
    }

    /// A second engine over the same store and services: a restarted supervisor, or another
    /// replica when `config` names another `replica_id`.
    pub fn restart(&self, config: EngineConfig) -> Engine {
        Engine::new(self.store.clone(), self.clients.clone(), config)
    }

    /// Another replica over the same store and services, coordinating through `coordination`.
    pub fn replica_with(
        &self,
        config: EngineConfig,
        coordination: cap_workflow::Coordination,
    ) -> Engine {
        Engine::with_coordination(
            self.store.clone(),
            self.clients.clone(),
            config,
            coordination,
        )
    }

    pub async fn submit(&self, prompt: &str) -> TaskRecord {
        self.engine
            .submit(TaskSpec {
                repository_id: REPO.into(),
                prompt: prompt.into(),
                ..TaskSpec::default()
            })
            .await
            .unwrap()
    }

    /// Waits until the task is `status` (at most 60 s: a hang is a failure, not a wait).
    pub async fn wait_for(&self, task_id: &str, status: &str) -> TaskRecord {
        for _ in 0..6000 {
            let task = self.store.get_task(task_id).await.unwrap();
            if task.status.as_str() == status {
                return task;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let task = self.store.get_task(task_id).await.unwrap();
        panic!(
            "task {task_id} is {} ({:?}), not {status}; events: {:#?}",
            task.status.as_str(),
            task.error_message,
            self.events(task_id).await
        );
    }

    pub async fn events(&self, task_id: &str) -> Vec<EventRecord> {
        self.store.events_after(task_id, 0, u32::MAX).await.unwrap()
    }

    /// The task's events as `agent:kind` lines (checkpoints with their kind, errors with
    /// their severity), for comparing whole runs.
    pub async fn trail(&self, task_id: &str) -> Vec<String> {
        self.events(task_id)
            .await
            .into_iter()
            .filter_map(|record| {
                let agent = record.event.agent.clone();
                match record.event.payload? {
                    Payload::Checkpoint(c) => {
                        Some(format!("{agent}:checkpoint:{}", c.kind().name()))
                    }
                    Payload::Error(e) => Some(format!("{agent}:error:{}", e.severity)),
                    Payload::Status(s) if s.status != "running" => {
                        Some(format!("{agent}:status:{}", s.status))
                    }
                    _ => None,
                }
            })
            .collect()
    }
}

/// A fake GitHub token (built at test time) and a `calc.py` holding the fix and that token
/// on line 4: the change a careless model makes.
pub fn fix_leaking_a_token() -> (String, &'static str) {
    let secret = cap_testkit::fake_github_token();
    let content = Box::leak(
        format!("def add(a, b):\n    return a + b\n\nTOKEN = \"{secret}\"\n").into_boxed_str(),
    );
    (secret, content)
}
