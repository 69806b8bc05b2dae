//! Runs tasks: queueing, one runner per task, checkpoints, interrupts, resume, watching.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cap_proto::agent::v1::agent_orchestrator_client::AgentOrchestratorClient;
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::agent::v1::{Checkpoint, CheckpointKind, ErrorReport, StatusChange, TaskEvent};
use cap_proto::github::v1::git_hub_client::GitHubClient;
use cap_proto::sandbox::v1::DestroySessionRequest;
use cap_sandbox_client::Sandbox;
use tokio::sync::{broadcast, mpsc, watch};

use crate::live::{Delivery, Live};
use cap_circuit::Breaker;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::coordination::{Coordination, woken_remotely};
use crate::nodes::{Node, WorkflowState};
use crate::queue::{Slots, rank};
use crate::store::{CheckpointOf, EventRecord, Store, TaskRecord, TaskSpec, TaskStatus};
use crate::{Error, Result};

/// gRPC clients of the services the workflow drives.
#[derive(Debug, Clone)]
pub struct Clients {
    /// The GitHub service (local forge by default).
    pub github: GitHubClient<Channel>,
    /// The sandbox service.
    pub sandbox: Sandbox,
    /// The coding agent.
    pub coding: AgentOrchestratorClient<Channel>,
    /// The testing agent.
    pub testing: AgentOrchestratorClient<Channel>,
    /// The context agent, when the fleet has one.
    pub context: Option<AgentOrchestratorClient<Channel>>,
}

/// Tunables of the workflow.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How many times in a row the execute node runs while the tests fail before a human is
    /// asked (PRD 14: code errors go back to the agent at most 3 times); a resume gives
    /// another round.
    pub max_fix_attempts: u32,
    /// Tasks running at once; the rest wait in the queue, `high` before `normal` before
    /// `low`, first come first served within each.
    pub max_concurrent_tasks: usize,
    /// How many times a node that failed for a transient reason runs again.
    pub node_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_backoff: Duration,
    /// This supervisor replica's name, unique among the replicas sharing a store and the same
    /// across its restarts (the pod or host name): a task is run by the replica holding its
    /// lease, and a replica restarted under its name takes its own tasks back at once.
    pub replica_id: String,
    /// How long a task's lease lasts unrenewed; it is renewed every third of it. Another
    /// replica takes the task over once it has expired.
    pub lease: Duration,
    /// GitHub service calls failing in a row (unreachable, timed out) that open its circuit:
    /// calls then fail at once, for `circuit_open_for`, before one trial goes through (0:
    /// never open).
    pub circuit_failures: u32,
    /// How long an open circuit refuses calls.
    pub circuit_open_for: Duration,
    /// The operator's advisory and licence snapshots (`cap advisories import`); `None` or
    /// an empty directory: dependencies are not checked for advisories, and a warning says so.
    pub advisories_dir: Option<std::path::PathBuf>,
    /// The operator's licence policy file (`licences.toml`); `None` or absent: no policy.
    pub licence_policy: Option<std::path::PathBuf>,
    /// How long one run of a task may take, from when it gets its run slot (a resume gets a
    /// budget of its own); `None`: no limit. A run out of time ends the task failed, its
    /// partial change (if the gates pass it) opened as a draft pull request with hand-off
    /// notes (`handoff.rs`).
    pub task_time_budget: Option<Duration>,
    /// The pause between two reads of an opened pull request's required checks.
    pub checks_poll_interval: Duration,
    /// The longest wait for required checks to finish; then the task fails naming the
    /// pending ones.
    pub checks_timeout: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_fix_attempts: 3,
            max_concurrent_tasks: 4,
            node_retries: 3,
            retry_backoff: Duration::from_secs(1),
            replica_id: "local".to_owned(),
            lease: Duration::from_secs(30),
            circuit_failures: 5,
            circuit_open_for: Duration::from_secs(30),
            advisories_dir: None,
            licence_policy: None,
            task_time_budget: None,
            checks_poll_interval: crate::checks::DEFAULT_POLL_INTERVAL,
            checks_timeout: crate::checks::DEFAULT_TIMEOUT,
        }
    }
}

/// The workflow engine. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) clients: Clients,
    pub(crate) config: EngineConfig,
    /// Where the replicas meet: leases, wake-ups and interrupts across replicas.
    pub(crate) coordination: Coordination,
    /// Stored events handed to their task's watchers in this process.
    live: Live,
    /// The GitHub service's circuit.
    github_circuit: Breaker,
    /// Interrupt switches of the running tasks.
    running: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// Told when a human added a constraint to a task running here.
    pub(crate) steering: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
    /// Told each time a runner has ended here.
    stopped: tokio::sync::Notify,
    /// The runner tasks, to stop them all at once ([`Engine::abort`]).
    runners: Mutex<Vec<tokio::task::AbortHandle>>,
    slots: Arc<Slots>,
    /// Runs that ended (completed, failed or paused) since start.
    finished_runs: AtomicU64,
}

impl Inner {
    /// Runs a call of the GitHub service through its circuit breaker: an open circuit fails
    /// the call at once as `UNAVAILABLE`, which the node's retry takes like any other.
    pub(crate) async fn github_call<T>(
        &self,
        call: impl std::future::Future<Output = std::result::Result<T, tonic::Status>>,
    ) -> std::result::Result<T, tonic::Status> {
        let service_failed = |status: &tonic::Status| {
            matches!(
                status.code(),
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Unknown
                    | tonic::Code::ResourceExhausted
            )
        };
        self.github_circuit
            .guard(call, service_failed, tonic::Status::unavailable)
            .await
    }
}

/// The stream `Engine::watch` returns.
pub type WatchStream = ReceiverStream<Result<EventRecord>>;

/// How long a resume waits for a run that has ended to let go of its task.
const STOPPING_WAIT: Duration = Duration::from_secs(5);

/// Events read from the store per query while watching.
const WATCH_BATCH: u32 = 500;

impl Engine {
    /// An engine over `store`, driving the services behind `clients`, coordinating with other
    /// replicas through the store alone.
    pub fn new(store: Store, clients: Clients, config: EngineConfig) -> Self {
        Self::with_coordination(store, clients, config, Coordination::Sql)
    }

    /// An engine coordinating with other replicas through `coordination`, which is its own
    /// (a Redis coordination tells its publications from the others' by connection). With
    /// Redis, call it within a Tokio runtime: it starts following the other replicas' messages.
    pub fn with_coordination(
        store: Store,
        clients: Clients,
        config: EngineConfig,
        coordination: Coordination,
    ) -> Self {
        let slots = Slots::new(config.max_concurrent_tasks);
        let github_circuit =
            Breaker::new("github", config.circuit_failures, config.circuit_open_for);
        let engine = Self {
            inner: Arc::new(Inner {
                store,
                clients,
                config,
                coordination,
                live: Live::default(),
                github_circuit,
                running: Mutex::new(HashMap::new()),
                steering: Mutex::default(),
                stopped: tokio::sync::Notify::new(),
                runners: Mutex::default(),
                slots,
                finished_runs: AtomicU64::new(0),
            }),
        };
        engine.start_coordination();
        engine
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Validates and queues a task; it runs in the background.
    pub async fn submit(&self, mut spec: TaskSpec) -> Result<TaskRecord> {
        validate(&mut spec)?;
        let task = Store::new_task(spec);
        // The request as stored with the task (`request_json`).
        let request = serde_json::to_value(&task.spec)?;
        self.inner
            .audit(
                &task.spec.requested_by,
                "task.submitted",
                &task.task_id,
                request,
            )
            .await?;
        self.inner.store.insert_task(&task).await?;
        tracing::info!(task_id = %task.task_id, repository = %task.spec.repository_id, "task queued");
        self.spawn(task.clone(), WorkflowState::new());
        Ok(task)
    }

    /// The task.
    pub async fn get(&self, task_id: &str) -> Result<TaskRecord> {
        self.inner.store.get_task(task_id).await
    }

    /// The newest tasks.
    pub async fn list(&self, limit: u32) -> Result<Vec<TaskRecord>> {
        self.inner.store.list_tasks(limit).await
    }

    /// Picks up the queued or running tasks this replica may claim, each from its last
    /// checkpoint: its own (a restart under the same name), those nobody holds, and those
    /// whose lease expired (a replica that died). Returns how many it started.
    pub async fn resume_unfinished(&self) -> Result<usize> {
        let tasks = self
            .inner
            .store
            .claimable_tasks(&self.inner.config.replica_id)
            .await?;
        let running = self.running_tasks();
        let tasks: Vec<TaskRecord> = tasks
            .into_iter()
            .filter(|task| !running.contains(&task.task_id))
            .collect();
        let tasks = self.unclaimed(tasks).await?;
        let mut count = 0;
        for task in tasks {
            // Claimed here, not only in the runner, so that a task another replica took
            // first is neither counted nor announced as resumed (the runner's own claim of a
            // task this replica holds succeeds again).
            if !self.claim_lease(&task.task_id).await? {
                continue;
            }
            count += 1;
            let state = self
                .resume_state(&task.task_id)
                .await?
                .unwrap_or_else(WorkflowState::new);
            tracing::info!(task_id = %task.task_id, node = ?state.next_node, "resuming task");
            self.spawn(task, state);
        }
        Ok(count)
    }

    /// Asks a queued or running task to stop at its next step; it ends `paused`. Returns
    /// whether the task was running here.
    pub async fn interrupt(&self, task_id: &str, actor: &str) -> Result<bool> {
        let task = self.inner.store.get_task(task_id).await?;
        match task.status {
            TaskStatus::Queued | TaskStatus::Running => {}
            TaskStatus::Paused | TaskStatus::Completed | TaskStatus::Failed => {
                return Err(Error::Conflict(format!(
                    "task {task_id} is {} and cannot be interrupted",
                    task.status.as_str()
                )));
            }
        }
        let sent_here = self
            .lock_running()
            .get(task_id)
            .map(|switch| switch.send(true).is_ok());
        let here = match sent_here {
            Some(sent) => sent,
            // Run by another replica (or about to be): it hears it through Redis at once, or
            // reads it in the task's row at its next lease renewal, within a third of the
            // lease.
            None => self.interrupt_elsewhere(task_id).await?,
        };
        self.inner
            .audit(actor, "task.interrupted", task_id, serde_json::json!({}))
            .await?;
        Ok(here)
    }

    /// Flips the interrupt switch of `task_id` if it runs here; whether it does.
    pub(crate) fn interrupt_here(&self, task_id: &str) -> bool {
        match self.lock_running().get(task_id) {
            Some(switch) => {
                switch.send_if_modified(|asked| !std::mem::replace(asked, true));
                true
            }
            None => false,
        }
    }

    /// Runs a paused or failed task again from its last checkpoint. A failed task's workspace
    /// is gone, so it starts again from the plan with a fresh one.
    pub async fn resume(&self, task_id: &str, actor: &str) -> Result<TaskRecord> {
        let task = self.restart(task_id).await?;
        self.inner
            .audit(actor, "task.resumed", task_id, serde_json::json!({}))
            .await?;
        Ok(task)
    }

    /// [`Engine::resume`] without its audit record (a decision records its own).
    pub(crate) async fn restart(&self, task_id: &str) -> Result<TaskRecord> {
        let mut task = self.inner.store.get_task(task_id).await?;
        match task.status {
            TaskStatus::Paused | TaskStatus::Failed => {}
            TaskStatus::Queued | TaskStatus::Running | TaskStatus::Completed => {
                return Err(Error::Conflict(format!(
                    "task {task_id} is {}; only paused or failed tasks can be resumed",
                    task.status.as_str()
                )));
            }
        }
        self.wait_until_stopped(task_id).await?;
        if self.inner.store.abort_requested(task_id).await?.is_some() {
            return Err(Error::Conflict(format!(
                "task {task_id} was aborted; submit it again to start over"
            )));
        }
        let mut state = self
            .resume_state(task_id)
            .await?
            .unwrap_or_else(WorkflowState::new);
        if state.quarantined {
            return Err(Error::Conflict(format!(
                "task {task_id} is quarantined: its change held secrets, and its workspace is \
                 kept for an Admin; submit it again to start over"
            )));
        }
        if !state.awaiting_approval.is_empty()
            && self.inner.store.approval(task_id).await?.0.is_empty()
        {
            return Err(Error::Conflict(format!(
                "task {task_id} waits for a human to approve or reject {}",
                crate::gates::awaited_decision(&state.awaiting_approval)
            )));
        }
        if state.session_id.is_empty() || state.next_node.is_none() {
            state = WorkflowState::new();
        }
        let from = [TaskStatus::Paused, TaskStatus::Failed];
        if !self
            .inner
            .store
            .transition(task_id, &from, TaskStatus::Queued)
            .await?
        {
            return Err(Error::Conflict(format!(
                "task {task_id} was resumed already"
            )));
        }
        task = self.inner.store.get_task(task_id).await?;
        tracing::info!(%task_id, node = ?state.next_node, "task resumed by request");
        self.spawn(task.clone(), state);
        Ok(task)
    }

    /// Waits for a run of `task_id` here that has stored its end (paused or failed) to let
    /// go of the task (its lease): a resume asked right after the pause is not refused.
    async fn wait_until_stopped(&self, task_id: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + STOPPING_WAIT;
        loop {
            let stopped = self.inner.stopped.notified();
            tokio::pin!(stopped);
            stopped.as_mut().enable();
            if !self.lock_running().contains_key(task_id) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, stopped).await.is_err() {
                return Err(Error::Conflict(format!(
                    "task {task_id} is still stopping; try again"
                )));
            }
        }
    }

    /// Ids of the tasks running in this process.
    pub fn running_tasks(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock_running().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Tasks waiting here for a run slot (the queue's depth).
    pub fn queue_depth(&self) -> usize {
        self.inner.slots.waiting()
    }

    /// How many task runs ended in this process.
    pub fn finished_runs(&self) -> u64 {
        self.inner.finished_runs.load(Ordering::Relaxed)
    }

    /// Streams the task's events after `after_seq`: the stored ones, then new ones as they
    /// are stored, until the task has ended and every event was sent.
    pub async fn watch(&self, task_id: &str, after_seq: i64) -> Result<WatchStream> {
        // Fail fast on unknown tasks, before a stream is returned.
        self.inner.store.get_task(task_id).await?;
        let (tx, rx) = mpsc::channel(64);
        let inner = self.inner.clone();
        let task_id = task_id.to_owned();
        tokio::spawn(async move {
            if let Err(error) = watch_loop(&inner, &task_id, after_seq, &tx).await {
                let _ = tx.send(Err(error)).await;
            }
        });
        Ok(ReceiverStream::new(rx))
    }

    pub(crate) fn lock_running(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<bool>>> {
        crate::lock(&self.inner.running)
    }

    pub(crate) fn spawn(&self, task: TaskRecord, state: WorkflowState) {
        let (switch, interrupt) = watch::channel(false);
        let steered = Arc::new(tokio::sync::Notify::new());
        {
            let mut running = self.lock_running();
            if running.contains_key(&task.task_id) {
                return; // already running here (a takeover scan raced a resume)
            }
            running.insert(task.task_id.clone(), switch);
            crate::lock(&self.inner.steering).insert(task.task_id.clone(), steered.clone());
        }
        let engine = self.clone();
        let runner = tokio::spawn(async move {
            let task_id = task.task_id.clone();
            match engine.claim_lease(&task_id).await {
                Ok(true) => {
                    let run = async {
                        let permit = engine.inner.slots.acquire(rank(&task.spec.priority)).await;
                        let deadline = engine
                            .inner
                            .config
                            .task_time_budget
                            .map(|budget| tokio::time::Instant::now() + budget);
                        let mut run = Run {
                            inner: engine.inner.clone(),
                            task,
                            state,
                            interrupt,
                            steered,
                            checkpointed_state: String::new(),
                            deadline,
                            timed_out: false,
                        };
                        run.drive_to_end().await;
                        drop(permit);
                    };
                    tokio::select! {
                        () = run => {
                            if let Err(error) = engine.release_lease(&task_id).await {
                                // It expires on its own; then the task is claimable again.
                                tracing::warn!(%task_id, error = %cap_errors::chain(&error), "could not release the task's lease");
                            }
                        }
                        () = engine.hold_lease(&task_id) => {
                            tracing::warn!(%task_id, "lost the task's lease to another replica; stopped running it here");
                        }
                    }
                    engine.inner.finished_runs.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => {
                    tracing::debug!(%task_id, "the task is run by another replica");
                }
                Err(error) => {
                    tracing::warn!(%task_id, error = %cap_errors::chain(&error), "could not claim the task; the takeover scan tries again");
                }
            }
            crate::lock(&engine.inner.steering).remove(&task_id);
            engine.lock_running().remove(&task_id);
            engine.inner.stopped.notify_waiters();
        });
        let mut runners = crate::lock(&self.inner.runners);
        runners.retain(|runner| !runner.is_finished());
        runners.push(runner.abort_handle());
    }

    /// Renews the task's lease every third of its length, passing on an interrupt asked
    /// through another replica; returns when the lease is lost: another replica holds it, or
    /// the store could not renew it before it expired.
    async fn hold_lease(&self, task_id: &str) {
        let lease = self.inner.config.lease;
        let mut held_until = tokio::time::Instant::now() + lease;
        loop {
            tokio::time::sleep(lease / 3).await;
            match self.renew_lease(task_id).await {
                Ok(Some(interrupt)) => {
                    held_until = tokio::time::Instant::now() + lease;
                    if interrupt {
                        self.interrupt_here(task_id);
                    }
                }
                Ok(None) => return,
                Err(error) if tokio::time::Instant::now() >= held_until => {
                    tracing::warn!(%task_id, error = %cap_errors::chain(&error), "lease expired unrenewed");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%task_id, error = %cap_errors::chain(&error), "could not renew the lease; trying again")
                }
            }
        }
    }

    /// Stops every runner of this engine at once, where it stands, as if the process died:
    /// nothing more is written, leases are left to expire, workspaces are kept, so another
    /// replica (or this one restarted) resumes each task from its last checkpoint.
    pub fn abort(&self) {
        let runners = std::mem::take(&mut *crate::lock(&self.inner.runners));
        for runner in runners {
            runner.abort();
        }
        self.lock_running().clear();
    }

    /// Every third of the lease, takes over the unfinished tasks whose lease has expired (a
    /// replica that died or lost the store), each from its last checkpoint. Runs for the life
    /// of the process: call it once.
    pub fn spawn_takeover(&self) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            let period = engine.inner.config.lease / 3;
            loop {
                tokio::time::sleep(period).await;
                match engine.resume_unfinished().await {
                    Ok(0) => {}
                    Ok(count) => tracing::info!(count, "took over tasks whose lease expired"),
                    Err(error) => {
                        tracing::warn!(error = %cap_errors::chain(&error), "takeover scan failed")
                    }
                }
            }
        })
    }
}

async fn watch_loop(
    inner: &Inner,
    task_id: &str,
    last_seq: i64,
    tx: &mpsc::Sender<Result<EventRecord>>,
) -> Result<()> {
    // Subscribed before the first read, so nothing stored between a read and the wait is
    // missed: what the read already returned is skipped by its sequence number.
    let mut live = inner.live.subscribe(task_id);
    let watched = watch_from(inner, task_id, last_seq, tx, &mut live).await;
    drop(live);
    inner.live.leave(task_id);
    watched
}

async fn watch_from(
    inner: &Inner,
    task_id: &str,
    mut last_seq: i64,
    tx: &mpsc::Sender<Result<EventRecord>>,
    live: &mut broadcast::Receiver<Delivery>,
) -> Result<()> {
    let mut remote = inner.coordination.remote_wakeups();
    loop {
        let events = inner
            .store
            .events_after(task_id, last_seq, WATCH_BATCH)
            .await?;
        let full_batch = events.len() == WATCH_BATCH as usize;
        for record in events {
            last_seq = record.seq;
            if tx.send(Ok(record)).await.is_err() {
                return Ok(()); // the watcher left
            }
        }
        if full_batch {
            continue;
        }
        // The run stores the event telling the task ended together with the task's status,
        // so once the task has ended, one more read returns whatever is left.
        if inner.store.get_task(task_id).await?.status.is_terminal() {
            let rest = inner
                .store
                .events_after(task_id, last_seq, u32::MAX)
                .await?;
            for record in rest {
                if tx.send(Ok(record)).await.is_err() {
                    return Ok(());
                }
            }
            return Ok(());
        }
        // Then the events as they are stored, handed over without reading the store, until
        // one is missed: the store is read again from the last one sent.
        let poll = tokio::time::sleep(inner.coordination.watch_poll());
        tokio::pin!(poll);
        loop {
            let delivery = tokio::select! {
                delivery = live.recv() => delivery,
                // Events stored by another supervisor replica: published through Redis when
                // configured, the poll then only a safety net.
                () = woken_remotely(&mut remote, task_id) => break,
                () = &mut poll => break,
                () = tx.closed() => return Ok(()),
            };
            let delivery = match delivery {
                Ok(delivery) => delivery,
                Err(broadcast::error::RecvError::Lagged(_)) => break,
                // The engine is gone; the poll ends the wait.
                Err(broadcast::error::RecvError::Closed) => {
                    (&mut poll).await;
                    break;
                }
            };
            let Some(record) = delivery.record else {
                break; // told to read the store
            };
            if record.seq <= last_seq {
                continue; // the read above returned it already
            }
            if record.seq != last_seq + 1 {
                break; // one was missed
            }
            last_seq = record.seq;
            if tx.send(Ok(EventRecord::clone(&record))).await.is_err() {
                return Ok(());
            }
            if delivery.ended {
                return Ok(());
            }
        }
    }
}

fn validate(spec: &mut TaskSpec) -> Result<()> {
    spec.repository_id = spec.repository_id.trim().to_owned();
    if spec.repository_id.is_empty() {
        return Err(Error::InvalidRequest(
            "repository_id: must not be empty".into(),
        ));
    }
    if spec.prompt.trim().is_empty() {
        return Err(Error::InvalidRequest("prompt: must not be empty".into()));
    }
    if spec.priority.is_empty() {
        spec.priority = "normal".into();
    }
    if !matches!(spec.priority.as_str(), "low" | "normal" | "high") {
        return Err(Error::InvalidRequest(format!(
            "priority: must be low, normal or high, not {:?}",
            spec.priority
        )));
    }
    if spec.requested_by.trim().is_empty() {
        spec.requested_by = "anonymous".into();
    }
    Ok(())
}

/// An event from `agent`, created now.
fn new_event(agent: &str, payload: Payload) -> TaskEvent {
    TaskEvent {
        payload: Some(payload),
        agent: agent.to_owned(),
        created_at_ms: cap_storage::now_ms(),
    }
}

/// One task's run through the graph.
pub(crate) struct Run {
    pub(crate) inner: Arc<Inner>,
    pub(crate) task: TaskRecord,
    pub(crate) state: WorkflowState,
    pub(crate) interrupt: watch::Receiver<bool>,
    /// Told when a human added a constraint to the task.
    pub(crate) steered: Arc<tokio::sync::Notify>,
    /// The state as the task's last checkpoint (taken by this run) holds it.
    pub(crate) checkpointed_state: String,
    /// When this run's time budget runs out, if it has one.
    pub(crate) deadline: Option<tokio::time::Instant>,
    /// The running agent was stopped because the time budget ran out.
    pub(crate) timed_out: bool,
}

/// How many times a run whose store failed for a passing reason goes on before the task is
/// failed; the waits double from the engine's retry backoff.
const STORE_RETRIES: u32 = 5;

impl Run {
    /// [`Run::drive`], never ending silently. A store that fails for a passing reason
    /// (contention, a lost connection) is waited out and the run goes on from its state in
    /// memory, which holds every external effect already made (branch, commit, pull request),
    /// so none is repeated. Any other failure, or a store that keeps failing, fails the task
    /// naming the cause; only when even that cannot be written does the task stay unfinished,
    /// its workspace kept, for the next start to resume.
    async fn drive_to_end(&mut self) {
        let task_id = self.task.task_id.clone();
        let mut retries = 0;
        let error = loop {
            match self.drive().await {
                Ok(()) => return,
                Err(Error::LeaseLost(_)) => {
                    tracing::warn!(%task_id, "another replica runs the task now; stopped here");
                    return;
                }
                Err(error) if error.is_transient_store() && retries < STORE_RETRIES => {
                    retries += 1;
                    let wait = self.backoff(retries);
                    tracing::warn!(
                        %task_id,
                        error = %cap_errors::chain(&error),
                        retry = retries,
                        wait_ms = wait.as_millis() as u64,
                        "the store failed; the run goes on once it answers"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(error) => break error,
            }
        };
        let cause = Error::TaskFailed(format!(
            "the supervisor could not record the task's progress: {}",
            cap_errors::chain(&error)
        ));
        if let Err(also) = self.fail(&cause).await {
            tracing::error!(
                %task_id,
                error = %cap_errors::chain(&error),
                also = %cap_errors::chain(&also),
                "task runner stopped and could not record why; the task stays unfinished and \
                 resumes, with its workspace, at the next start"
            );
        }
    }

    /// The wait before retry number `retry` (1-based): the configured backoff, doubled for
    /// each retry before it.
    fn backoff(&self, retry: u32) -> Duration {
        self.inner.config.retry_backoff * 2u32.pow(retry.saturating_sub(1))
    }

    /// Runs nodes until the graph ends, the task fails or a human interrupts it.
    async fn drive(&mut self) -> Result<()> {
        if let Some(reason) = self.inner.store.abort_requested(&self.task.task_id).await? {
            return self.abort(&reason).await;
        }
        if self.state.next_node.is_none() && !self.task.status.is_terminal() {
            self.state.next_node = Some(Node::Plan);
        }
        self.set_status(TaskStatus::Running).await?;
        let mut retries = 0;
        while let Some(node) = self.state.next_node {
            if self.past_deadline() {
                return self.time_out(node).await;
            }
            if *self.interrupt.borrow() {
                return self.pause(node).await;
            }
            // Written with the node's first event (every node starts by reporting progress).
            self.task.current_node = node.name().to_owned();
            match self.run_node(node).await {
                Ok(next) => {
                    retries = 0;
                    self.state.next_node = next;
                    let description = match next {
                        Some(next) => format!("{} finished; next: {}", node.name(), next.name()),
                        None => format!("{} finished; workflow complete", node.name()),
                    };
                    self.emit_with_kind(
                        "supervisor",
                        Payload::Checkpoint(Checkpoint {
                            kind: CheckpointKind::NodeCompleted.into(),
                            description,
                            state_json: self.state_json()?,
                        }),
                        "node_completed",
                    )
                    .await?;
                }
                Err(Error::Interrupted) => return self.pause(node).await,
                Err(Error::NeedsHuman(description)) => {
                    return self.await_human(description).await;
                }
                Err(error) if error.is_retryable() && retries < self.inner.config.node_retries => {
                    retries += 1;
                    let wait = self.backoff(retries);
                    self.emit(
                        "supervisor",
                        Payload::Error(ErrorReport {
                            severity: "warning".into(),
                            message: format!(
                                "{} failed ({}); retry {retries} in {} ms",
                                node.name(),
                                cap_errors::chain(&error),
                                wait.as_millis()
                            ),
                            recoverable: true,
                        }),
                    )
                    .await?;
                    // A human may interrupt while the node waits to retry; the time budget may
                    // run out.
                    let deadline = self.deadline;
                    let interrupted = tokio::select! {
                        _ = tokio::time::sleep(wait) => false,
                        changed = self.interrupt.changed() => changed.is_ok(),
                        () = crate::handoff::until(deadline) => return self.time_out(node).await,
                    };
                    if interrupted && *self.interrupt.borrow() {
                        return self.pause(node).await;
                    }
                }
                Err(error) => return self.fail(&error).await,
            }
        }
        self.task.progress_percentage = 100;
        self.inner
            .audit(
                crate::audit::SUPERVISOR,
                "task.completed",
                &self.task.task_id,
                serde_json::json!({
                    "pull_request_id": self.state.pull_request_id,
                    "branch": self.state.branch,
                }),
            )
            .await?;
        self.set_status(TaskStatus::Completed).await
    }

    /// Stops at `node`, keeping the workspace, so the task can be resumed there; or, when the
    /// interrupt was an abort, ends the task.
    async fn pause(&mut self, node: Node) -> Result<()> {
        if let Some(reason) = self.inner.store.abort_requested(&self.task.task_id).await? {
            return self.abort(&reason).await;
        }
        if self.timed_out || self.past_deadline() {
            return self.time_out(node).await;
        }
        self.emit(
            "supervisor",
            Payload::Checkpoint(Checkpoint {
                kind: CheckpointKind::Paused.into(),
                description: format!("interrupted during {}; resume to continue", node.name()),
                state_json: self.state_json()?,
            }),
        )
        .await?;
        self.set_status(TaskStatus::Paused).await
    }

    pub(crate) async fn fail(&mut self, error: &Error) -> Result<()> {
        let message = match error {
            Error::Sql(_)
            | Error::Write(_)
            | Error::Storage(_)
            | Error::Json(_)
            | Error::Audit(_)
            | Error::Corrupt(_) => {
                // The store itself failing: keep the task unfinished so it is resumed.
                return Err(Error::Corrupt(cap_errors::chain(error)));
            }
            other => cap_errors::chain(other),
        };
        tracing::warn!(task_id = %self.task.task_id, %message, "task failed");
        let quarantine = matches!(error, Error::SecretsFound(_));
        if quarantine {
            self.state.quarantined = true;
        }
        self.emit(
            "supervisor",
            Payload::Error(ErrorReport {
                severity: if quarantine { "critical" } else { "error" }.into(),
                message: message.clone(),
                recoverable: false,
            }),
        )
        .await?;
        self.inner
            .audit(
                crate::audit::SUPERVISOR,
                "task.failed",
                &self.task.task_id,
                serde_json::json!({
                    "error": cap_secrets::redact(&message),
                    "quarantined": quarantine,
                }),
            )
            .await?;
        self.task.error_message = message;
        if !quarantine {
            self.destroy_session().await;
        }
        self.set_status(TaskStatus::Failed).await
    }

    /// Records the status change as an event, with the task's row in the same write: a
    /// watcher that sees the task ended is sure to find every event in the store.
    pub(crate) async fn set_status(&mut self, status: TaskStatus) -> Result<()> {
        self.task.status = status;
        let event = new_event(
            "supervisor",
            Payload::Status(StatusChange {
                status: status.as_str().into(),
                current_agent: self.task.current_agent.clone(),
                progress_percentage: self.task.progress_percentage,
            }),
        );
        self.store_event(event, "event", true).await?;
        Ok(())
    }

    /// Moves the progress bar and the current agent.
    pub(crate) async fn progress(&mut self, percentage: u32, agent: &str) -> Result<()> {
        self.task.progress_percentage = percentage;
        self.task.current_agent = agent.to_owned();
        self.set_status(self.task.status).await
    }

    pub(crate) fn state_json(&self) -> Result<String> {
        Ok(serde_json::to_string(&self.state)?)
    }

    /// Stores an event from `agent` with the checkpoint after it.
    pub(crate) async fn emit(&mut self, agent: &str, payload: Payload) -> Result<i64> {
        self.emit_with_kind(agent, payload, "event").await
    }

    async fn emit_with_kind(&mut self, agent: &str, payload: Payload, kind: &str) -> Result<i64> {
        self.record(new_event(agent, payload), kind).await
    }

    /// Stores an event as received (from an agent), filling in what it left out.
    pub(crate) async fn record(&mut self, event: TaskEvent, kind: &str) -> Result<i64> {
        self.store_event(event, kind, false).await
    }

    /// Stores `event` with the checkpoint after it (and the task's row, `with_task`), then
    /// hands it to the task's watchers here. A plain event that left the state as the last
    /// checkpoint has it takes no new one: resuming from either is the same.
    async fn store_event(
        &mut self,
        mut event: TaskEvent,
        kind: &str,
        with_task: bool,
    ) -> Result<i64> {
        if event.created_at_ms == 0 {
            event.created_at_ms = cap_storage::now_ms();
        }
        crate::gates::redact_event(&mut event);
        let state_json = self.state_json()?;
        let checkpoint =
            (kind != "event" || state_json != self.checkpointed_state).then(|| CheckpointOf {
                node: self.state.next_node.map(Node::name).unwrap_or("done"),
                kind,
                state_json: &state_json,
            });
        let took_checkpoint = checkpoint.is_some();
        let task_id = self.task.task_id.clone();
        let seq = self
            .inner
            .store
            .append_event(
                &task_id,
                &self.inner.config.replica_id,
                &event,
                checkpoint,
                with_task.then_some(&mut self.task),
            )
            .await?;
        if took_checkpoint {
            self.checkpointed_state = state_json;
            self.share_checkpoint(seq);
        }
        self.inner.coordination.publish_wake(&task_id);
        self.inner.live.deliver(
            &task_id,
            Delivery {
                record: Some(Arc::new(EventRecord { seq, event })),
                ended: with_task && self.task.status.is_terminal(),
            },
        );
        Ok(seq)
    }

    pub(crate) async fn destroy_session(&mut self) {
        if self.state.session_id.is_empty() {
            return;
        }
        let request = DestroySessionRequest {
            session_id: self.state.session_id.clone(),
        };
        match self.inner.clients.sandbox.destroy_session(request).await {
            Ok(_) => self.state.session_id.clear(),
            Err(status) => tracing::warn!(
                task_id = %self.task.task_id,
                session = %self.state.session_id,
                error = %status.message(),
                "could not destroy sandbox session"
            ),
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
