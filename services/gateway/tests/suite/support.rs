//! In-test stand-ins for the supervisor and github services, served over mTLS on port 0 with
//! a tempdir PKI, and helpers to call the gateway.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cap_gateway::{AppState, app};
use cap_identity::Role;
use cap_mtls::Pki;
use cap_proto::agent::v1::{TaskEvent, task_event::Payload};
use cap_proto::github::v1::git_hub_server::{GitHub, GitHubServer};
use cap_proto::github::v1::{
    CommitChangesRequest, CommitChangesResponse, CreateBranchRequest, CreateBranchResponse,
    GetPullRequestRequest, GetRepositoryRequest, ImportRepositoryRequest, ImportRepositoryResponse,
    ListPullRequestsRequest, ListPullRequestsResponse, MergePullRequestRequest,
    OpenPullRequestRequest, PullRequest, Repository, Review, ReviewAction,
    ReviewPullRequestRequest,
};
use cap_proto::supervisor::v1::task_service_server::{TaskService, TaskServiceServer};
use cap_proto::supervisor::v1::{
    AbortTaskRequest, AddConstraintRequest, DecideTaskRequest, GetTaskRequest,
    InterruptTaskRequest, ListCheckpointsRequest, ListCheckpointsResponse, ListTasksRequest,
    ListTasksResponse, ResumeTaskRequest, RollbackTaskRequest, RollbackTaskResponse,
    SubmitTaskRequest, SubmitTaskResponse, Task, TaskCheckpoint, TaskEventRecord, WatchTaskRequest,
};
use cap_proto::supervisor::v1::{
    AuditRecord, ListAuditRequest, ListAuditResponse, ListQuarantinedRequest,
    ListQuarantinedResponse, QuarantinedTask, ReadQuarantinedFileRequest,
    ReadQuarantinedFileResponse,
};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Code, Request as GrpcRequest, Response as GrpcResponse, Status};
use tower::ServiceExt;

pub const CREATED_MS: i64 = 1_700_000_000_000;
pub const UPDATED_MS: i64 = 1_700_000_060_000;

/// Something sent on a task's live channel.
#[derive(Debug, Clone)]
pub enum Live {
    Record(TaskEventRecord),
    Fail(Code, String),
}

#[derive(Debug)]
struct TaskEntry {
    task: Task,
    records: Vec<TaskEventRecord>,
    /// Present while the task runs; dropping it ends every watcher's stream.
    live: Option<broadcast::Sender<Live>>,
    /// Constraints added through `AddConstraint`, oldest first.
    constraints: Vec<String>,
}

/// The supervisor's `TaskService`, in memory.
#[derive(Debug, Clone, Default)]
pub struct FakeTasks {
    tasks: Arc<Mutex<HashMap<String, TaskEntry>>>,
    submitted: Arc<Mutex<Vec<SubmitTaskRequest>>>,
    fail_next: Arc<Mutex<Option<Status>>>,
    submit_without_task: Arc<AtomicBool>,
    /// The acting user each submission named in its metadata.
    pub actors: Arc<Mutex<Vec<String>>>,
    /// Open `WatchTask` streams.
    pub watchers: Arc<watch::Sender<usize>>,
}

impl FakeTasks {
    /// Adds a task with stored events; a `running` one keeps its stream open.
    /// Moves a task from status `from` to `to` as the supervisor would, or refuses.
    fn set_status(&self, id: &str, from: &str, to: &str) -> Result<GrpcResponse<Task>, Status> {
        let mut tasks = self.tasks.lock().unwrap();
        let entry = tasks
            .get_mut(id)
            .ok_or_else(|| Status::not_found(format!("task {id} not found")))?;
        if entry.task.status != from {
            return Err(Status::failed_precondition(format!(
                "task {id} is {}",
                entry.task.status
            )));
        }
        entry.task.status = to.to_owned();
        Ok(GrpcResponse::new(entry.task.clone()))
    }

    pub fn add_task(&self, task: Task, payloads: Vec<Payload>) {
        let running = task.status == "running" || task.status == "queued";
        let records = payloads
            .into_iter()
            .enumerate()
            .map(|(index, payload)| record(&task.task_id, index as i64 + 1, payload))
            .collect();
        let live = running.then(|| broadcast::channel(64).0);
        self.tasks.lock().unwrap().insert(
            task.task_id.clone(),
            TaskEntry {
                task,
                records,
                live,
                constraints: Vec::new(),
            },
        );
    }

    /// Appends a live event to a running task and returns its sequence number.
    pub fn push(&self, task_id: &str, payload: Payload) -> i64 {
        let mut tasks = self.tasks.lock().unwrap();
        let entry = tasks.get_mut(task_id).expect("task exists");
        let seq = entry.records.len() as i64 + 1;
        let record = record(task_id, seq, payload);
        entry.records.push(record.clone());
        if let Some(live) = &entry.live {
            let _ = live.send(Live::Record(record));
        }
        seq
    }

    /// Ends a running task: every open stream ends with OK.
    pub fn finish(&self, task_id: &str) {
        let mut tasks = self.tasks.lock().unwrap();
        let entry = tasks.get_mut(task_id).expect("task exists");
        entry.task.status = "completed".to_owned();
        entry.live = None;
    }

    /// Breaks every open stream of the task with `code`.
    pub fn break_streams(&self, task_id: &str, code: Code) {
        let tasks = self.tasks.lock().unwrap();
        let entry = tasks.get(task_id).expect("task exists");
        if let Some(live) = &entry.live {
            let _ = live.send(Live::Fail(code, "stream broke".to_owned()));
        }
    }

    /// The next call of any RPC fails with `status`.
    pub fn fail_next(&self, status: Status) {
        *self.fail_next.lock().unwrap() = Some(status);
    }

    /// `SubmitTask` answers without its task.
    pub fn submit_without_task(&self) {
        self.submit_without_task.store(true, Ordering::SeqCst);
    }

    /// Requests `SubmitTask` received.
    pub fn constraints(&self, task_id: &str) -> Vec<String> {
        self.tasks.lock().unwrap()[task_id].constraints.clone()
    }

    pub fn submitted(&self) -> Vec<SubmitTaskRequest> {
        self.submitted.lock().unwrap().clone()
    }

    fn take_failure(&self) -> Result<(), Status> {
        match self.fail_next.lock().unwrap().take() {
            Some(status) => Err(status),
            None => Ok(()),
        }
    }
}

pub fn record(task_id: &str, seq: i64, payload: Payload) -> TaskEventRecord {
    TaskEventRecord {
        task_id: task_id.to_owned(),
        seq,
        event: Some(TaskEvent {
            payload: Some(payload),
            agent: "coding".to_owned(),
            created_at_ms: CREATED_MS + seq,
        }),
    }
}

struct WatcherGuard(Arc<watch::Sender<usize>>);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// The user the gateway named in a call's metadata, or empty.
fn actor_of<T>(request: &GrpcRequest<T>) -> String {
    request
        .metadata()
        .get(cap_gateway::auth::ACTOR_METADATA)
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tonic::async_trait]
impl TaskService for FakeTasks {
    async fn submit_task(
        &self,
        request: GrpcRequest<SubmitTaskRequest>,
    ) -> Result<GrpcResponse<SubmitTaskResponse>, Status> {
        self.take_failure()?;
        let actor = actor_of(&request);
        self.actors.lock().unwrap().push(actor.clone());
        let request = request.into_inner();
        self.submitted.lock().unwrap().push(request.clone());
        let task = Task {
            task_id: uuid::Uuid::new_v4().to_string(),
            repository_id: request.repository_id,
            prompt: request.prompt,
            status: "queued".to_owned(),
            priority: request.priority,
            created_at_ms: CREATED_MS,
            updated_at_ms: CREATED_MS,
            requested_by: actor,
            ..Task::default()
        };
        self.add_task(task.clone(), Vec::new());
        let task = (!self.submit_without_task.load(Ordering::SeqCst)).then_some(task);
        Ok(GrpcResponse::new(SubmitTaskResponse {
            task,
            estimated_duration_minutes: 15,
        }))
    }

    async fn get_task(
        &self,
        request: GrpcRequest<GetTaskRequest>,
    ) -> Result<GrpcResponse<Task>, Status> {
        self.take_failure()?;
        let id = request.into_inner().task_id;
        let tasks = self.tasks.lock().unwrap();
        match tasks.get(&id) {
            Some(entry) => Ok(GrpcResponse::new(entry.task.clone())),
            None => Err(Status::not_found(format!("no task {id}"))),
        }
    }

    async fn list_tasks(
        &self,
        request: GrpcRequest<ListTasksRequest>,
    ) -> Result<GrpcResponse<ListTasksResponse>, Status> {
        self.take_failure()?;
        let limit = match request.into_inner().limit {
            0 => 50,
            n => n as usize,
        };
        let tasks = self.tasks.lock().unwrap();
        let mut list: Vec<Task> = tasks.values().map(|entry| entry.task.clone()).collect();
        list.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        list.truncate(limit);
        Ok(GrpcResponse::new(ListTasksResponse { tasks: list }))
    }

    async fn interrupt_task(
        &self,
        request: GrpcRequest<InterruptTaskRequest>,
    ) -> Result<GrpcResponse<Task>, Status> {
        self.take_failure()?;
        self.set_status(&request.into_inner().task_id, "running", "paused")
    }

    async fn resume_task(
        &self,
        request: GrpcRequest<ResumeTaskRequest>,
    ) -> Result<GrpcResponse<Task>, Status> {
        self.take_failure()?;
        self.set_status(&request.into_inner().task_id, "paused", "queued")
    }

    async fn add_constraint(
        &self,
        request: GrpcRequest<AddConstraintRequest>,
    ) -> Result<GrpcResponse<Task>, Status> {
        self.take_failure()?;
        let AddConstraintRequest { task_id, text } = request.into_inner();
        let mut tasks = self.tasks.lock().unwrap();
        let entry = tasks
            .get_mut(&task_id)
            .ok_or_else(|| Status::not_found(format!("task {task_id} not found")))?;
        entry.constraints.push(text);
        Ok(GrpcResponse::new(entry.task.clone()))
    }

    async fn abort_task(
        &self,
        request: GrpcRequest<AbortTaskRequest>,
    ) -> Result<GrpcResponse<Task>, Status> {
        self.take_failure()?;
        let AbortTaskRequest { task_id, reason } = request.into_inner();
        let mut tasks = self.tasks.lock().unwrap();
        let entry = tasks
            .get_mut(&task_id)
            .ok_or_else(|| Status::not_found(format!("task {task_id} not found")))?;
        if matches!(entry.task.status.as_str(), "completed" | "failed") {
            return Err(Status::failed_precondition(format!(
                "task {task_id} is {} and cannot be aborted",
                entry.task.status
            )));
        }
        entry.task.status = "failed".into();
        entry.task.error_message = format!("aborted by a human: {reason}");
        Ok(GrpcResponse::new(entry.task.clone()))
    }

    async fn decide_task(
        &self,
        request: GrpcRequest<DecideTaskRequest>,
    ) -> Result<GrpcResponse<Task>, Status> {
        self.take_failure()?;
        let request = request.into_inner();
        let to = if request.approve { "queued" } else { "failed" };
        self.set_status(&request.task_id, "paused", to)
    }

    /// Failed tasks whose error says they are quarantined.
    async fn list_quarantined(
        &self,
        _request: GrpcRequest<ListQuarantinedRequest>,
    ) -> Result<GrpcResponse<ListQuarantinedResponse>, Status> {
        self.take_failure()?;
        let tasks = self.tasks.lock().unwrap();
        let tasks = tasks
            .values()
            .filter(|entry| entry.task.error_message.contains("quarantined"))
            .map(|entry| QuarantinedTask {
                task: Some(entry.task.clone()),
                session_id: "session-1".to_owned(),
                files: vec!["app.py".to_owned()],
            })
            .collect();
        Ok(GrpcResponse::new(ListQuarantinedResponse { tasks }))
    }

    /// The actor and path, so tests see what reached the supervisor.
    async fn read_quarantined_file(
        &self,
        request: GrpcRequest<ReadQuarantinedFileRequest>,
    ) -> Result<GrpcResponse<ReadQuarantinedFileResponse>, Status> {
        self.take_failure()?;
        let actor = actor_of(&request);
        let request = request.into_inner();
        Ok(GrpcResponse::new(ReadQuarantinedFileResponse {
            content: format!("{actor} read {}", request.path),
        }))
    }

    /// One record per known task.
    async fn list_audit(
        &self,
        request: GrpcRequest<ListAuditRequest>,
    ) -> Result<GrpcResponse<ListAuditResponse>, Status> {
        self.take_failure()?;
        let wanted = request.into_inner().task_id;
        let tasks = self.tasks.lock().unwrap();
        let records = tasks
            .values()
            .filter(|entry| wanted.is_empty() || entry.task.task_id == wanted)
            .enumerate()
            .map(|(index, entry)| AuditRecord {
                seq: index as i64 + 1,
                created_at_ms: CREATED_MS,
                actor: entry.task.requested_by.clone(),
                action: "task.submitted".to_owned(),
                task_id: entry.task.task_id.clone(),
                details_json: "{\"prompt\":\"p\"}".to_owned(),
                hash: "0".repeat(64),
            })
            .collect();
        Ok(GrpcResponse::new(ListAuditResponse { records }))
    }

    type WatchTaskStream = ReceiverStream<Result<TaskEventRecord, Status>>;

    /// One checkpoint per stored event, `<task_id>:<seq>`.
    async fn list_checkpoints(
        &self,
        request: GrpcRequest<ListCheckpointsRequest>,
    ) -> Result<GrpcResponse<ListCheckpointsResponse>, Status> {
        self.take_failure()?;
        let task_id = request.into_inner().task_id;
        let tasks = self.tasks.lock().unwrap();
        let entry = tasks
            .get(&task_id)
            .ok_or_else(|| Status::not_found(format!("task {task_id} not found")))?;
        let checkpoints = entry
            .records
            .iter()
            .map(|record| TaskCheckpoint {
                checkpoint_id: format!("{task_id}:{}", record.seq),
                seq: record.seq,
                node: "execute".to_owned(),
                kind: "event".to_owned(),
                event_seq: record.seq,
                created_at_ms: CREATED_MS + record.seq,
            })
            .collect();
        Ok(GrpcResponse::new(ListCheckpointsResponse { checkpoints }))
    }

    /// A new queued task naming its parent, under the supervisor's rules: the parent paused,
    /// failed or completed, the checkpoint one of its own.
    async fn rollback_task(
        &self,
        request: GrpcRequest<RollbackTaskRequest>,
    ) -> Result<GrpcResponse<RollbackTaskResponse>, Status> {
        self.take_failure()?;
        let actor = actor_of(&request);
        self.actors.lock().unwrap().push(actor.clone());
        let RollbackTaskRequest {
            task_id,
            checkpoint_id,
        } = request.into_inner();
        let fork = {
            let tasks = self.tasks.lock().unwrap();
            let entry = tasks
                .get(&task_id)
                .ok_or_else(|| Status::not_found(format!("task {task_id} not found")))?;
            if matches!(entry.task.status.as_str(), "queued" | "running") {
                return Err(Status::failed_precondition(format!(
                    "task {task_id} is {}; only a paused, failed or completed task can be \
                     rolled back (interrupt it first)",
                    entry.task.status
                )));
            }
            let known = entry
                .records
                .iter()
                .any(|record| format!("{task_id}:{}", record.seq) == checkpoint_id);
            if !known {
                return Err(Status::not_found(format!(
                    "checkpoint {checkpoint_id:?} not found among task {task_id}'s checkpoints"
                )));
            }
            Task {
                task_id: uuid::Uuid::new_v4().to_string(),
                status: "queued".to_owned(),
                requested_by: actor,
                parent_task_id: task_id,
                forked_from_checkpoint: checkpoint_id,
                pull_request_id: String::new(),
                branch: String::new(),
                error_message: String::new(),
                ..entry.task.clone()
            }
        };
        self.add_task(fork.clone(), Vec::new());
        Ok(GrpcResponse::new(RollbackTaskResponse { task: Some(fork) }))
    }

    async fn watch_task(
        &self,
        request: GrpcRequest<WatchTaskRequest>,
    ) -> Result<GrpcResponse<Self::WatchTaskStream>, Status> {
        self.take_failure()?;
        let WatchTaskRequest { task_id, after_seq } = request.into_inner();
        // Snapshot and subscribe under one lock, so no event falls between them.
        let (stored, live) = {
            let tasks = self.tasks.lock().unwrap();
            let entry = tasks
                .get(&task_id)
                .ok_or_else(|| Status::not_found(format!("no task {task_id}")))?;
            let stored: Vec<TaskEventRecord> = entry
                .records
                .iter()
                .filter(|r| r.seq > after_seq)
                .cloned()
                .collect();
            (
                stored,
                entry.live.as_ref().map(broadcast::Sender::subscribe),
            )
        };
        let (tx, rx) = mpsc::channel(16);
        self.watchers.send_modify(|n| *n += 1);
        let guard = WatcherGuard(self.watchers.clone());
        tokio::spawn(async move {
            let _guard = guard;
            for record in stored {
                if tx.send(Ok(record)).await.is_err() {
                    return;
                }
            }
            let Some(mut live) = live else { return };
            loop {
                tokio::select! {
                    message = live.recv() => match message {
                        Ok(Live::Record(record)) => {
                            if record.seq > after_seq && tx.send(Ok(record)).await.is_err() {
                                return;
                            }
                        }
                        Ok(Live::Fail(code, message)) => {
                            let _ = tx.send(Err(Status::new(code, message))).await;
                            return;
                        }
                        Err(_) => return,
                    },
                    () = tx.closed() => return,
                }
            }
        });
        Ok(GrpcResponse::new(ReceiverStream::new(rx)))
    }
}

/// The github service, in memory.
#[derive(Debug, Clone, Default)]
pub struct FakeGitHub {
    prs: Arc<Mutex<HashMap<String, PullRequest>>>,
    fail_next: Arc<Mutex<Option<Status>>>,
    pub list_requests: Arc<Mutex<Vec<String>>>,
}

impl FakeGitHub {
    pub fn add(&self, pr: PullRequest) {
        self.prs
            .lock()
            .unwrap()
            .insert(pr.pull_request_id.clone(), pr);
    }

    pub fn fail_next(&self, status: Status) {
        *self.fail_next.lock().unwrap() = Some(status);
    }

    fn take_failure(&self) -> Result<(), Status> {
        match self.fail_next.lock().unwrap().take() {
            Some(status) => Err(status),
            None => Ok(()),
        }
    }

    fn get(&self, id: &str) -> Result<PullRequest, Status> {
        self.prs
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no pull request {id}")))
    }
}

fn unimplemented<T>() -> Result<GrpcResponse<T>, Status> {
    Err(Status::unimplemented("not in this stand-in"))
}

#[tonic::async_trait]
impl GitHub for FakeGitHub {
    async fn get_repository(
        &self,
        _: GrpcRequest<GetRepositoryRequest>,
    ) -> Result<GrpcResponse<Repository>, Status> {
        unimplemented()
    }

    async fn import_repository(
        &self,
        _: GrpcRequest<ImportRepositoryRequest>,
    ) -> Result<GrpcResponse<ImportRepositoryResponse>, Status> {
        unimplemented()
    }

    async fn create_branch(
        &self,
        _: GrpcRequest<CreateBranchRequest>,
    ) -> Result<GrpcResponse<CreateBranchResponse>, Status> {
        unimplemented()
    }

    async fn commit_changes(
        &self,
        _: GrpcRequest<CommitChangesRequest>,
    ) -> Result<GrpcResponse<CommitChangesResponse>, Status> {
        unimplemented()
    }

    async fn open_pull_request(
        &self,
        _: GrpcRequest<OpenPullRequestRequest>,
    ) -> Result<GrpcResponse<PullRequest>, Status> {
        unimplemented()
    }

    async fn get_pull_request(
        &self,
        request: GrpcRequest<GetPullRequestRequest>,
    ) -> Result<GrpcResponse<PullRequest>, Status> {
        self.take_failure()?;
        self.get(&request.into_inner().pull_request_id)
            .map(GrpcResponse::new)
    }

    async fn list_pull_requests(
        &self,
        request: GrpcRequest<ListPullRequestsRequest>,
    ) -> Result<GrpcResponse<ListPullRequestsResponse>, Status> {
        self.take_failure()?;
        let repository_id = request.into_inner().repository_id;
        self.list_requests
            .lock()
            .unwrap()
            .push(repository_id.clone());
        let prs = self.prs.lock().unwrap();
        let mut pull_requests: Vec<PullRequest> = prs
            .values()
            .filter(|pr| repository_id.is_empty() || pr.repository_id == repository_id)
            .cloned()
            .collect();
        pull_requests.sort_by_key(|pr| pr.number);
        Ok(GrpcResponse::new(ListPullRequestsResponse {
            pull_requests,
        }))
    }

    async fn review_pull_request(
        &self,
        request: GrpcRequest<ReviewPullRequestRequest>,
    ) -> Result<GrpcResponse<PullRequest>, Status> {
        self.take_failure()?;
        let request = request.into_inner();
        let mut prs = self.prs.lock().unwrap();
        let pr = prs
            .get_mut(&request.pull_request_id)
            .ok_or_else(|| Status::not_found("no such pull request"))?;
        if pr.state == "merged" || pr.state == "rejected" {
            return Err(Status::failed_precondition(format!(
                "pull request is {}",
                pr.state
            )));
        }
        let action = ReviewAction::try_from(request.action)
            .map_err(|_| Status::invalid_argument("unknown review action"))?;
        pr.state = match action {
            ReviewAction::Approve => "approved",
            ReviewAction::RequestChanges => "changes_requested",
            ReviewAction::Reject => "rejected",
            ReviewAction::Unspecified => {
                return Err(Status::invalid_argument("review action is required"));
            }
        }
        .to_owned();
        pr.reviews.push(Review {
            review_id: format!("review-{}", pr.reviews.len() + 1),
            action: request.action,
            reviewer: request.reviewer,
            comments: request.comments,
            created_at_ms: UPDATED_MS,
        });
        pr.updated_at_ms = UPDATED_MS;
        Ok(GrpcResponse::new(pr.clone()))
    }

    async fn merge_pull_request(
        &self,
        request: GrpcRequest<MergePullRequestRequest>,
    ) -> Result<GrpcResponse<PullRequest>, Status> {
        self.take_failure()?;
        let id = request.into_inner().pull_request_id;
        let mut prs = self.prs.lock().unwrap();
        let pr = prs
            .get_mut(&id)
            .ok_or_else(|| Status::not_found(format!("no pull request {id}")))?;
        if pr.state != "approved" {
            return Err(Status::failed_precondition(
                "the pull request is not approved",
            ));
        }
        pr.state = "merged".to_owned();
        Ok(GrpcResponse::new(pr.clone()))
    }

    async fn get_required_checks(
        &self,
        _: GrpcRequest<cap_proto::github::v1::GetRequiredChecksRequest>,
    ) -> Result<GrpcResponse<cap_proto::github::v1::GetRequiredChecksResponse>, Status> {
        unimplemented()
    }
}

/// The stand-in services, and gateway state connected to them over mTLS.
pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    pub tasks: FakeTasks,
    pub github: FakeGitHub,
    pub supervisor_url: String,
    pub github_url: String,
}

impl Fleet {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::ensure_dev(dir.path().join("pki")).unwrap();
        let tasks = FakeTasks::default();
        let github = FakeGitHub::default();

        let tls = pki.service("supervisor").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let supervisor_url = cap_runtime::https_url(listener.local_addr().unwrap());
        let router = cap_runtime::grpc_server(&tls)
            .unwrap()
            .add_service(TaskServiceServer::new(tasks.clone()));
        tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));

        let tls = pki.service("github").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let github_url = cap_runtime::https_url(listener.local_addr().unwrap());
        let router = cap_runtime::grpc_server(&tls)
            .unwrap()
            .add_service(GitHubServer::new(github.clone()));
        tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));

        Self {
            dir,
            pki,
            tasks,
            github,
            supervisor_url,
            github_url,
        }
    }

    /// Gateway state with the gateway's own certificate, over one identity store per fleet
    /// (so tokens minted for it stay valid across states).
    pub async fn state(&self) -> AppState {
        let tls = self.pki.service("gateway").unwrap();
        let auth = authenticator(&self.dir.path().join("identity")).await;
        AppState::connect(&tls, &self.supervisor_url, &self.github_url, auth)
            .unwrap()
            .with_audit(self.audit().await)
    }

    /// The gateway's audit log, in its identity store.
    pub async fn audit(&self) -> cap_audit::AuditLog {
        let url = cap_storage::sqlite_url(&self.dir.path().join("identity").join("gateway.db"));
        cap_audit::AuditLog::open(&url, None, cap_audit::AuditConfig::default())
            .await
            .unwrap()
    }

    /// A bearer token of the test Admin, for clients other than [`send`].
    pub async fn token(&self) -> String {
        admin_token(&self.state().await).await
    }

    /// Serves the gateway on a loopback port; returns its address.
    pub async fn serve(&self, state: AppState) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app(state)).await });
        addr
    }
}

/// State whose upstream addresses have nothing listening (nothing is dialled before a
/// request gets past validation).
pub async fn offline_state() -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().unwrap();
    let auth = authenticator(&dir.path().join("identity")).await;
    let tls = Pki::ensure_dev(dir.path())
        .unwrap()
        .service("gateway")
        .unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("https://127.0.0.1:{port}");
    (dir, AppState::connect(&tls, &url, &url, auth).unwrap())
}

/// The test Admin's name.
pub const TESTER: &str = "tester";

/// An authenticator over a SQLite store in `dir`, with the test Admin and an allow-list open
/// to every repository.
pub async fn authenticator(dir: &std::path::Path) -> cap_identity::Authenticator {
    std::fs::create_dir_all(dir).unwrap();
    let store =
        cap_identity::IdentityStore::open(&cap_storage::sqlite_url(&dir.join("gateway.db")))
            .await
            .unwrap();
    store.ensure_user(TESTER, Role::Admin).await.unwrap();
    store
        .allow_repository(&cap_identity::AllowedRepository {
            organisation: cap_identity::DEFAULT_ORGANISATION.into(),
            pattern: "*".into(),
            allow_self_approval: false,
        })
        .await
        .unwrap();
    cap_identity::Authenticator::new(store, dir).unwrap()
}

/// A fresh API token of `user` (made with `role` if new) in the state's store.
pub async fn token_of(state: &AppState, user: &str, role: Role) -> String {
    let store = state.authenticator().store();
    store.ensure_user(user, role).await.unwrap();
    store
        .create_token(user, role, "test", cap_identity::Lifetime::days(1))
        .await
        .unwrap()
        .secret
}

/// `request` with `token` as its bearer credential.
pub fn bearer(mut request: Request<Body>, token: &str) -> Request<Body> {
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// A fresh API token of the test Admin.
pub async fn admin_token(state: &AppState) -> String {
    token_of(state, TESTER, Role::Admin).await
}

/// A response: status and JSON body (`Null` when the body is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub json: serde_json::Value,
    pub text: String,
}

impl Answer {
    /// Asserts the error envelope and returns its code and field.
    #[track_caller]
    pub fn error(&self, status: StatusCode) -> (String, Option<String>) {
        assert_eq!(self.status, status, "{}", self.text);
        let error = &self.json["error"];
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.text
        );
        (
            error["code"].as_str().expect("error.code").to_owned(),
            error["field"].as_str().map(str::to_owned),
        )
    }
}

/// Sends `request` to the app, as the test Admin unless it carries credentials of its own.
pub async fn send(state: &AppState, mut request: Request<Body>) -> Answer {
    let has_credentials =
        request.headers().contains_key("authorization") || request.headers().contains_key("cookie");
    if !has_credentials {
        let token = admin_token(state).await;
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    send_as_is(state, request).await
}

/// Sends `request` exactly as built (no credentials added).
pub async fn send_as_is(state: &AppState, request: Request<Body>) -> Answer {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        content_type,
        json,
        text,
    }
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header("host", "gateway.test:8080")
        .body(Body::empty())
        .unwrap()
}

pub fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("host", "gateway.test:8080")
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

pub fn post_raw(uri: &str, content_type: Option<&str>, body: &str) -> Request<Body> {
    let mut builder = Request::post(uri).header("host", "gateway.test:8080");
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    builder.body(Body::from(body.to_owned())).unwrap()
}
