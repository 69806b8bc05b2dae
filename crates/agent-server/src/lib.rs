//! The `AgentOrchestrator` server every agent service runs (PRD 13.2), written once.
//!
//! A role (the coding, testing or context agent) supplies only its work: a [`Role`] names the
//! agent, turns a `TaskRequest` into its job (refusing a bad one before anything runs) and
//! runs the job, sending its events and watching its cancellation token. [`AgentServer`] does
//! the rest alike for every role:
//! - `ExecuteTask` validates, registers the task ([`RunningTasks`]; a second run of a running
//!   id is `ALREADY_EXISTS`), streams the role's events as they come and, when the role
//!   fails, an `ErrorReport` (unless the role streamed its own, see [`Reported`]) and then the
//!   error status. A caller that stops listening interrupts its task. The task is
//!   unregistered before its stream ends, so a caller that saw the end sees it done.
//! - `GetAgentStatus` answers `idle` or `busy`, the running task ids and the finished count;
//!   another agent's name is `NOT_FOUND`.
//! - `InterruptTask` cancels the task's token; how fast the work stops, and the `interrupted`
//!   Checkpoint it ends with, are the role's.
//!
//! Errors become statuses in one place, [`to_status`]: the role's error says its code
//! ([`RoleError::code`]), the message is the error chain ([`error_chain`]), the whole chain
//! is logged.

use std::future::Future;
use std::sync::Arc;

use cap_proto::agent::v1::agent_orchestrator_server::{AgentOrchestrator, AgentOrchestratorServer};
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::agent::v1::{
    Ack, AgentId, AgentStatus, Constraint, ErrorReport, TaskEvent, TaskId, TaskRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};

mod events;
mod tasks;

pub use events::{Events, EventsClosed, now_ms};
pub use tasks::{RunningGuard, RunningTasks, Steering};

/// Events buffered between a role and its caller (each way).
pub const EVENT_BUFFER: usize = 64;

/// What one agent does with a task; [`AgentServer`] serves it as `AgentOrchestrator`.
pub trait Role: Send + Sync + 'static {
    /// The name the agent signs its events with and answers to in `GetAgentStatus`.
    const AGENT: &'static str;
    /// A validated task.
    type Job: Send + 'static;
    /// What can go wrong; it says its status code.
    type Error: RoleError;

    /// Checks `request` and makes it a job; an error here refuses `ExecuteTask` at once.
    fn accept(&self, request: TaskRequest) -> Result<Self::Job, Self::Error>;

    /// Runs `job`, sending its events to `events` (sign them with [`Events::new`] and
    /// [`Role::AGENT`]) until it ends or `cancel` fires (`InterruptTask`, or the caller went
    /// away). Ending on an interrupt is `Ok` after an `interrupted` Checkpoint; `Err` when
    /// the agent could not do its job. `steering` brings the constraints humans add while it
    /// runs (`AddConstraint`); a role that cannot change course mid-run ignores it.
    fn run(
        &self,
        job: Self::Job,
        events: mpsc::Sender<TaskEvent>,
        cancel: CancellationToken,
        steering: Steering,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// A role's error: what the caller's status says.
pub trait RoleError: std::error::Error + Send + Sync + 'static {
    /// The gRPC code of the status the caller gets.
    fn code(&self) -> Code;
    /// Who streams the `ErrorReport` that comes before the status.
    fn reported(&self) -> Reported;
}

/// Who tells a failed task's caller what went wrong, in the stream, before the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// The role streamed its own `ErrorReport`s.
    ByRole,
    /// The adapter streams one `ErrorReport` (severity `error`, the error chain as message).
    ByAdapter {
        /// Whether running the task again might succeed.
        recoverable: bool,
    },
}

/// The adapter's own refusals.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A task with this id is already running here.
    #[error("task {task_id} is already running on the {agent} agent")]
    AlreadyRunning {
        /// The task.
        task_id: String,
        /// This agent.
        agent: &'static str,
    },
    /// `GetAgentStatus` asked for another agent.
    #[error("agent {asked:?} is not served here; this is the {agent} agent")]
    UnknownAgent {
        /// The agent asked for.
        asked: String,
        /// This agent.
        agent: &'static str,
    },
    /// `InterruptTask` or `AddConstraint` without a task id.
    #[error("task_id is empty")]
    EmptyTaskId,
    /// `AddConstraint` without text.
    #[error("text: the constraint is empty")]
    EmptyConstraint,
}

impl RoleError for Error {
    fn code(&self) -> Code {
        match self {
            Error::AlreadyRunning { .. } => Code::AlreadyExists,
            Error::UnknownAgent { .. } => Code::NotFound,
            Error::EmptyTaskId | Error::EmptyConstraint => Code::InvalidArgument,
        }
    }

    fn reported(&self) -> Reported {
        Reported::ByAdapter { recoverable: false }
    }
}

/// The one place errors become statuses: the error's code, its chain as the message (the
/// client learns what went wrong), the chain logged.
pub fn to_status(error: &dyn RoleError) -> Status {
    let message = error_chain(error);
    tracing::warn!(error = %message, "request failed");
    Status::new(error.code(), message)
}

/// `error: cause: cause`, with a gRPC status among the causes reduced to its message (a
/// status's `Display` is its debug form; its message is what the peer said).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    cap_errors::chain_with(error, |cause| {
        cause
            .downcast_ref::<Status>()
            .map(|status| status.message().to_owned())
    })
}

/// `AgentOrchestrator` for the role `R`. Cheap to clone.
pub struct AgentServer<R> {
    inner: Arc<Inner<R>>,
}

struct Inner<R> {
    role: R,
    /// Running tasks and the token that interrupts each.
    tasks: RunningTasks,
}

impl<R> Clone for AgentServer<R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<R: Role> AgentServer<R> {
    /// A server running tasks with `role`.
    pub fn new(role: R) -> Self {
        Self {
            inner: Arc::new(Inner {
                role,
                tasks: RunningTasks::new(R::AGENT),
            }),
        }
    }

    /// The role.
    pub fn role(&self) -> &R {
        &self.inner.role
    }

    /// The running tasks.
    pub fn tasks(&self) -> &RunningTasks {
        &self.inner.tasks
    }

    /// The tonic service for a router.
    pub fn into_service(self) -> AgentOrchestratorServer<Self> {
        AgentOrchestratorServer::new(self)
    }
}

impl<R: Role> Inner<R> {
    /// Runs one job, forwarding its events to `out`; a caller that goes away interrupts it.
    async fn execute(
        &self,
        task_id: &str,
        job: R::Job,
        cancel: CancellationToken,
        steering: Steering,
        out: &mpsc::Sender<Result<TaskEvent, Status>>,
    ) {
        let (events, mut received) = mpsc::channel::<TaskEvent>(EVENT_BUFFER);
        let run = self.role.run(job, events, cancel.clone(), steering);
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
            gone
        };
        let (result, gone) = tokio::join!(run, forward);
        let Err(error) = result else {
            return;
        };
        if gone {
            tracing::info!(%task_id, error = %error_chain(&error), "task ended after its caller went away");
            return;
        }
        if let Reported::ByAdapter { recoverable } = error.reported() {
            let event = TaskEvent {
                payload: Some(Payload::Error(ErrorReport {
                    severity: "error".to_owned(),
                    message: error_chain(&error),
                    recoverable,
                })),
                agent: R::AGENT.to_owned(),
                created_at_ms: now_ms(),
            };
            if out.send(Ok(event)).await.is_err() {
                return;
            }
        }
        let _ = out.send(Err(to_status(&error))).await;
    }
}

#[tonic::async_trait]
impl<R: Role> AgentOrchestrator for AgentServer<R> {
    type ExecuteTaskStream = ReceiverStream<Result<TaskEvent, Status>>;

    async fn execute_task(
        &self,
        request: Request<TaskRequest>,
    ) -> Result<Response<Self::ExecuteTaskStream>, Status> {
        let request = request.into_inner();
        let task_id = request.task_id.clone();
        let session_id = request
            .repo
            .as_ref()
            .map(|repo| repo.sandbox_session_id.clone())
            .unwrap_or_default();
        let job = self.inner.role.accept(request).map_err(|e| to_status(&e))?;
        let (cancel, guard) = self
            .inner
            .tasks
            .register(&task_id)
            .map_err(|e| to_status(&e))?;
        tracing::info!(agent = R::AGENT, %task_id, %session_id, "task accepted");
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let inner = self.inner.clone();
        let steering = guard.steering();
        tokio::spawn(async move {
            inner.execute(&task_id, job, cancel, steering, &tx).await;
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
    ) -> Result<Response<AgentStatus>, Status> {
        let asked = request.into_inner().agent;
        if !asked.is_empty() && asked != R::AGENT {
            return Err(to_status(&Error::UnknownAgent {
                asked,
                agent: R::AGENT,
            }));
        }
        Ok(Response::new(self.inner.tasks.status()))
    }

    async fn interrupt_task(&self, request: Request<TaskId>) -> Result<Response<Ack>, Status> {
        let task_id = request.into_inner().task_id;
        if task_id.trim().is_empty() {
            return Err(to_status(&Error::EmptyTaskId));
        }
        Ok(Response::new(self.inner.tasks.interrupt_ack(&task_id)))
    }

    async fn add_constraint(&self, request: Request<Constraint>) -> Result<Response<Ack>, Status> {
        let Constraint { task_id, text } = request.into_inner();
        if task_id.trim().is_empty() {
            return Err(to_status(&Error::EmptyTaskId));
        }
        if text.trim().is_empty() {
            return Err(to_status(&Error::EmptyConstraint));
        }
        Ok(Response::new(
            self.inner.tasks.add_constraint(&task_id, text.trim()),
        ))
    }
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
