//! `/api/v1/tasks`: submit, list, get, and read the events of tasks.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use cap_proto::supervisor::v1::{
    AbortTaskRequest, AddConstraintRequest, DecideTaskRequest, GetTaskRequest,
    InterruptTaskRequest, ListCheckpointsRequest, ListTasksRequest, ResumeTaskRequest,
    RollbackTaskRequest, SubmitTaskRequest, Task, WatchTaskRequest,
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use axum::Extension;
use cap_identity::Principal;

use crate::auth::acting;
use crate::error::{Error, Result};
use crate::events::{WsEvent, rfc3339_ms, ws_event};
use crate::input::{self, ApiJson, JsonBody, OptionalJson, PathParam, QueryParams};
use crate::state::AppState;

/// Longest prompt accepted, in characters (PRD: natural-language requests).
pub const MAX_PROMPT_CHARS: usize = 20_000;
/// Longest test command accepted, in characters.
pub const MAX_TEST_COMMAND_CHARS: usize = 4096;
/// Most entries of `constraints.avoid_files`.
pub const MAX_AVOID_FILES: usize = 1000;
/// Largest page of `GET /api/v1/tasks`.
pub const MAX_LIST_LIMIT: i64 = 500;

/// Body of `POST /api/v1/tasks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitTaskBody {
    /// Repository name as the forge knows it.
    pub repository_id: String,
    /// What to do, in natural language.
    pub prompt: String,
    /// Optional limits on the change.
    #[serde(default)]
    pub constraints: Option<Constraints>,
    /// Queue priority; `normal` when absent.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Test command overriding detection.
    #[serde(default)]
    pub test_command: Option<String>,
}

/// `constraints` of a task.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    /// Paths or globs the agents must not touch.
    #[serde(default)]
    pub avoid_files: Option<Vec<String>>,
    /// Most files the change may touch; 0 means no limit.
    #[serde(default)]
    pub max_files_changed: Option<i64>,
}

impl JsonBody for SubmitTaskBody {
    const OBJECTS: &'static [&'static str] = &["", "constraints"];
}

/// Queue priority of a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Background work.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Urgent.
    High,
}

impl Priority {
    fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
        }
    }
}

impl SubmitTaskBody {
    /// Checks every field and builds the supervisor's request.
    pub fn into_request(self) -> Result<SubmitTaskRequest> {
        input::name("repository_id", &self.repository_id)?;
        input::text("prompt", &self.prompt, MAX_PROMPT_CHARS)?;
        let constraints = self.constraints.unwrap_or_default();
        let avoid_files = constraints.avoid_files.unwrap_or_default();
        if avoid_files.len() > MAX_AVOID_FILES {
            return Err(Error::invalid(
                "invalid_value",
                "constraints.avoid_files",
                format!("`constraints.avoid_files` has more than {MAX_AVOID_FILES} entries"),
            ));
        }
        for (index, path) in avoid_files.iter().enumerate() {
            input::relative_path(&format!("constraints.avoid_files[{index}]"), path)?;
        }
        let max_files_changed = match constraints.max_files_changed {
            None => 0,
            Some(value) => u32::try_from(value).map_err(|_| {
                Error::invalid(
                    "invalid_value",
                    "constraints.max_files_changed",
                    format!(
                        "`constraints.max_files_changed` must be between 0 and {}, got {value}",
                        u32::MAX
                    ),
                )
            })?,
        };
        let test_command = self.test_command.unwrap_or_default();
        if !test_command.is_empty() {
            input::text("test_command", &test_command, MAX_TEST_COMMAND_CHARS)?;
        }
        Ok(SubmitTaskRequest {
            repository_id: self.repository_id,
            prompt: self.prompt,
            avoid_files,
            max_files_changed,
            priority: self.priority.unwrap_or_default().as_str().to_owned(),
            test_command,
        })
    }
}

/// Answer of `POST /api/v1/tasks`.
#[derive(Debug, Serialize)]
pub struct SubmitTaskResponse {
    /// The new task.
    pub task_id: String,
    /// Its status, `queued`.
    pub status: String,
    /// The supervisor's estimate.
    pub estimated_duration_minutes: u32,
}

/// A task as the REST API shows it.
#[derive(Debug, Serialize)]
pub struct TaskView {
    /// The task.
    pub task_id: String,
    /// `queued`, `running`, `paused`, `completed` or `failed`.
    pub status: String,
    /// The agent at work, if any.
    pub current_agent: Option<String>,
    /// 0 to 100.
    pub progress_percentage: u32,
    /// The WebSocket URL of the task's event stream.
    pub logs_url: String,
    /// The workflow node the task is at: `plan`, `execute`, `review`.
    pub current_node: Option<String>,
    /// The repository.
    pub repository_id: String,
    /// The request.
    pub prompt: String,
    /// `low`, `normal` or `high`.
    pub priority: String,
    /// Who asked for it (the signed-in user who submitted it).
    pub requested_by: String,
    /// The pull request opened for the task, once there is one.
    pub pull_request_id: Option<String>,
    /// The branch holding the change, once there is one.
    pub branch: Option<String>,
    /// Why the task failed, if it did.
    pub error_message: Option<String>,
    /// RFC 3339.
    pub created_at: Option<String>,
    /// RFC 3339.
    pub updated_at: Option<String>,
    /// The task this one was rolled back from, if it was.
    pub parent_task_id: Option<String>,
    /// The parent's checkpoint this task's run started from, if it was rolled back.
    pub forked_from_checkpoint: Option<String>,
}

impl TaskView {
    /// The view of `task`, with its `logs_url` on the host the client used.
    pub fn new(task: Task, ws_base: &str) -> Self {
        let logs_url = format!("{ws_base}/ws/tasks/{}/stream", task.task_id);
        Self {
            logs_url,
            status: task.status,
            current_agent: non_empty(task.current_agent),
            progress_percentage: task.progress_percentage,
            current_node: non_empty(task.current_node),
            repository_id: task.repository_id,
            prompt: task.prompt,
            priority: task.priority,
            requested_by: task.requested_by,
            pull_request_id: non_empty(task.pull_request_id),
            branch: non_empty(task.branch),
            error_message: non_empty(task.error_message),
            created_at: rfc3339_ms(task.created_at_ms),
            updated_at: rfc3339_ms(task.updated_at_ms),
            parent_task_id: non_empty(task.parent_task_id),
            forked_from_checkpoint: non_empty(task.forked_from_checkpoint),
            task_id: task.task_id,
        }
    }
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// `ws://host` or `wss://host` for the host the client addressed (`Host` header), behind a
/// TLS-terminating proxy when it says `X-Forwarded-Proto: https`.
pub fn ws_base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| is_host(host))
        .unwrap_or("localhost");
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    let scheme = if secure { "wss" } else { "ws" };
    format!("{scheme}://{host}")
}

/// A plausible `host[:port]`: letters, digits, `.-:[]` only.
pub fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c))
}

/// `POST /api/v1/tasks`.
pub async fn submit(
    State(state): State<AppState>,
    Extension(actor): Extension<Principal>,
    ApiJson(body): ApiJson<SubmitTaskBody>,
) -> Result<(StatusCode, Json<SubmitTaskResponse>)> {
    let request = body.into_request()?;
    let now = admit_new_task(&state, &actor, &request.repository_id).await?;
    let response = state
        .call(
            "supervisor",
            "SubmitTask",
            state.tasks().submit_task(acting(&actor, request)),
        )
        .await?;
    let task = response.task.ok_or(Error::UpstreamProtocol {
        service: "supervisor",
        call: "SubmitTask",
        missing: "a task",
    })?;
    // Counted once accepted: a refused submission does not use up the day's allowance.
    state
        .authenticator()
        .store()
        .record_submission(&actor.user, &task.task_id, now)
        .await?;
    let status = if task.status.is_empty() {
        "queued".to_owned()
    } else {
        task.status
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(SubmitTaskResponse {
            task_id: task.task_id,
            status,
            estimated_duration_minutes: response.estimated_duration_minutes,
        }),
    ))
}

/// What admits a new task of `actor` on `repository_id`, submitted or rolled back: the
/// repository on the organisation's allow-list, the user's access to it on GitHub (a GitHub
/// sign-in), and the day's allowance of pull requests. Returns the time to count it at.
async fn admit_new_task(state: &AppState, actor: &Principal, repository_id: &str) -> Result<i64> {
    let store = state.authenticator().store();
    if store
        .repository_entries(&actor.organisation, repository_id)
        .await?
        .is_empty()
    {
        return Err(Error::Forbidden(format!(
            "the repository {repository_id:?} is not on the allow-list of organisation {:?}: \
             an Admin adds it (POST /api/v1/allow-list)",
            actor.organisation
        )));
    }
    crate::oauth::check_repository_access(state, actor, repository_id).await?;
    let now = cap_storage::now_ms();
    if let Some((limit, until_ms)) = store
        .submission_refused_until(&actor.user, &actor.organisation, now)
        .await?
    {
        let wait_s = u64::try_from((until_ms - now).max(0) / 1000 + 1).unwrap_or(1);
        return Err(Error::TooManyRequests {
            message: format!(
                "{} reached the limit of {limit} pull requests a day; the next is allowed at {}",
                actor.user,
                rfc3339_ms(until_ms).unwrap_or_default()
            ),
            retry_after_s: wait_s,
        });
    }
    Ok(now)
}

/// Answer of `GET /api/v1/tasks`.
#[derive(Debug, Serialize)]
pub struct TaskList {
    /// Newest first.
    pub tasks: Vec<TaskView>,
}

/// `GET /api/v1/tasks?limit=N`.
pub async fn list(
    State(state): State<AppState>,
    Extension(actor): Extension<Principal>,
    headers: HeaderMap,
    query: QueryParams,
) -> Result<Json<TaskList>> {
    query.only(&["limit"])?;
    let limit = query.int("limit", 1, MAX_LIST_LIMIT)?.unwrap_or(0);
    let limit = u32::try_from(limit).unwrap_or_default();
    let response = state
        .call(
            "supervisor",
            "ListTasks",
            state
                .tasks()
                .list_tasks(acting(&actor, ListTasksRequest { limit })),
        )
        .await?;
    let base = ws_base(&headers);
    let tasks = response
        .tasks
        .into_iter()
        .map(|task| TaskView::new(task, &base))
        .collect();
    Ok(Json(TaskList { tasks }))
}

/// `GET /api/v1/tasks/{task_id}`.
pub async fn get(
    State(state): State<AppState>,
    Extension(actor): Extension<Principal>,
    PathParam(task_id): PathParam,
    headers: HeaderMap,
    query: QueryParams,
) -> Result<Json<TaskView>> {
    let task_id = input::task_id(&task_id)?;
    query.only(&[])?;
    let task = state
        .call(
            "supervisor",
            "GetTask",
            state
                .tasks()
                .get_task(acting(&actor, GetTaskRequest { task_id })),
        )
        .await?;
    Ok(Json(TaskView::new(task, &ws_base(&headers))))
}

/// `POST /api/v1/tasks/{task_id}/interrupt`: the task stops at its next step and is paused.
pub async fn interrupt(
    State(state): State<AppState>,
    Extension(actor): Extension<Principal>,
    PathParam(task_id): PathParam,
    headers: HeaderMap,
    query: QueryParams,
) -> Result<Accepted> {
    let task_id = input::task_id(&task_id)?;
    query.only(&[])?;
    let task = state
        .call(
            "supervisor",
            "InterruptTask",
            state
                .tasks()
                .interrupt_task(acting(&actor, InterruptTaskRequest { task_id })),
        )
        .await?;
    Ok(accepted(task, &headers))
}

/// `POST /api/v1/tasks/{task_id}/resume`: a paused or failed task runs again from its last
/// checkpoint.
pub async fn resume(
    State(state): State<AppState>,
    Extension(actor): Extension<Principal>,
    PathParam(task_id): PathParam,
    headers: HeaderMap,
    query: QueryParams,
) -> Result<Accepted> {
    let task_id = input::task_id(&task_id)?;
    query.only(&[])?;
    let task = state
        .call(
            "supervisor",
            "ResumeTask",
            state
                .tasks()
                .resume_task(acting(&actor, ResumeTaskRequest { task_id })),
        )
        .await?;
    Ok(accepted(task, &headers))
}

/// Longest constraint added to a running task, in characters (as the supervisor allows).
pub const MAX_CONSTRAINT_CHARS: usize = 2000;
/// Longest abort, approval or rejection reason, in characters.
pub const MAX_ABORT_REASON_CHARS: usize = 2000;

/// Body of `POST /api/v1/tasks/{task_id}/constraints`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstraintBody {
    /// What the task must do or avoid, in the human's words.
    pub text: String,
}

impl JsonBody for ConstraintBody {
    const OBJECTS: &'static [&'static str] = &[""];
}

/// `POST /api/v1/tasks/{task_id}/constraints`: a queued, running or paused task follows the
/// constraint from its next step (the running agent gets it at once).
pub async fn add_constraint(
    State(state): State<AppState>,
    Extension(actor): Extension<Principal>,
    PathParam(task_id): PathParam,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ConstraintBody>,
) -> Result<Accepted> {
    let task_id = input::task_id(&task_id)?;
    input::text("text", &body.text, MAX_CONSTRAINT_CHARS)?;
    let request = AddConstraintRequest {
        task_id,
        text: body.text,
    };
    let task = state
        .call(
            "supervisor",
            "AddConstraint",
            state.tasks().add_constraint(acting(&actor, request)),
        )
        .await?;
    Ok(accepted(task, &headers))
}

/// Body of `POST /api/v1/tasks/{task_id}/abort` (optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortBody {
    /// Why, shown in the task's error message.
    #[serde(default)]
    pub reason: Option<String>,
}

impl JsonBody for AbortBody {
    const OBJECTS: &'static [&'static str] = &[""];
}

/// `POST /api/v1/tasks/{task_id}/abort`: a queued, running or paused task ends for good,
/// failed as aborted, its workspace released.
pub async fn abort(
    State(state): State<AppState>,
    Extension(actor): Extension<Principal>,
    PathParam(task_id): PathParam,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<AbortBody>,
) -> Result<Accepted> {
    let task_id = input::task_id(&task_id)?;
    let reason = body.and_then(|body| body.reason).unwrap_or_default();
    if !reason.is_empty() {
        input::text("reason", &reason, MAX_ABORT_REASON_CHARS)?;
    }
    let request = AbortTaskRequest { task_id, reason };
    let task = state
        .call(
            "supervisor",
            "AbortTask",
            state.tasks().abort_task(acting(&actor, request)),
        )
        .await?;
    Ok(accepted(task, &headers))
}

/// Body of `POST /api/v1/tasks/{task_id}/approve` and `.../reject` (optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Why, recorded with the decision.
    #[serde(default)]
    pub reason: Option<String>,
}

impl JsonBody for DecisionBody {
    const OBJECTS: &'static [&'static str] = &[""];
}

/// `POST /api/v1/tasks/{task_id}/approve`: a task paused at a protected change goes on.
pub async fn approve(
    state: State<AppState>,
    actor: Extension<Principal>,
    task_id: PathParam,
    headers: HeaderMap,
    body: OptionalJson<DecisionBody>,
) -> Result<Accepted> {
    decide(state, actor, task_id, headers, body, true).await
}

/// `POST /api/v1/tasks/{task_id}/reject`: a task paused at a protected change ends, failed.
pub async fn reject(
    state: State<AppState>,
    actor: Extension<Principal>,
    task_id: PathParam,
    headers: HeaderMap,
    body: OptionalJson<DecisionBody>,
) -> Result<Accepted> {
    decide(state, actor, task_id, headers, body, false).await
}

async fn decide(
    State(state): State<AppState>,
    Extension(actor): Extension<Principal>,
    PathParam(task_id): PathParam,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<DecisionBody>,
    approve: bool,
) -> Result<Accepted> {
    let task_id = input::task_id(&task_id)?;
    let reason = body.and_then(|body| body.reason).unwrap_or_default();
    if !reason.is_empty() {
        input::text("reason", &reason, MAX_ABORT_REASON_CHARS)?;
    }
    if approve {
        let task = state
            .call(
                "supervisor",
                "GetTask",
                state.tasks().get_task(acting(
                    &actor,
                    GetTaskRequest {
                        task_id: task_id.clone(),
                    },
                )),
            )
            .await?;
        crate::auth::four_eyes(&state, &actor, &task, "approve").await?;
    }
    let request = DecideTaskRequest {
        task_id,
        approve,
        reason,
    };
    let task = state
        .call(
            "supervisor",
            "DecideTask",
            state.tasks().decide_task(acting(&actor, request)),
        )
        .await?;
    Ok(accepted(task, &headers))
}

/// One checkpoint of a task, as `GET /api/v1/tasks/{task_id}/checkpoints` shows it.
#[derive(Debug, Serialize)]
pub struct CheckpointView {
    /// What `POST .../rollback` takes.
    pub checkpoint_id: String,
    /// 1-based, in the order taken.
    pub seq: i64,
    /// The node the task was at or going to next; `done` once its workflow had ended.
    pub node: String,
    /// What took it: `node_completed`, `event`, `session_created`, ...
    pub kind: String,
    /// The sequence number of the task's last event at that point (0: before its first).
    pub event_seq: i64,
    /// RFC 3339.
    pub created_at: Option<String>,
}

/// Answer of `GET /api/v1/tasks/{task_id}/checkpoints`.
#[derive(Debug, Serialize)]
pub struct CheckpointList {
    /// The task.
    pub task_id: String,
    /// Oldest first.
    pub checkpoints: Vec<CheckpointView>,
}

/// `GET /api/v1/tasks/{task_id}/checkpoints`: the states the task can be rolled back to.
pub async fn checkpoints(
    State(state): State<AppState>,
    Extension(actor): Extension<Principal>,
    PathParam(task_id): PathParam,
    query: QueryParams,
) -> Result<Json<CheckpointList>> {
    let task_id = input::task_id(&task_id)?;
    query.only(&[])?;
    let request = ListCheckpointsRequest {
        task_id: task_id.clone(),
    };
    let response = state
        .call(
            "supervisor",
            "ListCheckpoints",
            state.tasks().list_checkpoints(acting(&actor, request)),
        )
        .await?;
    let checkpoints = response
        .checkpoints
        .into_iter()
        .map(|checkpoint| CheckpointView {
            checkpoint_id: checkpoint.checkpoint_id,
            seq: checkpoint.seq,
            node: checkpoint.node,
            kind: checkpoint.kind,
            event_seq: checkpoint.event_seq,
            created_at: rfc3339_ms(checkpoint.created_at_ms),
        })
        .collect();
    Ok(Json(CheckpointList {
        task_id,
        checkpoints,
    }))
}

/// Longest checkpoint id accepted, in characters (the supervisor's are a UUID and a number).
pub const MAX_CHECKPOINT_ID_CHARS: usize = 128;

/// Body of `POST /api/v1/tasks/{task_id}/rollback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// One of the task's checkpoints, as `GET .../checkpoints` names it.
    pub checkpoint_id: String,
}

impl JsonBody for RollbackBody {
    const OBJECTS: &'static [&'static str] = &[""];
}

/// `POST /api/v1/tasks/{task_id}/rollback`: a fresh run of a paused, failed or completed task
/// from one of its checkpoints, as a new task (202 with it); the task rolled back stays as it
/// is. The new task is admitted like a submission (allow-list, repository access, the day's
/// allowance), since it opens a pull request of its own.
pub async fn rollback(
    State(state): State<AppState>,
    Extension(actor): Extension<Principal>,
    PathParam(task_id): PathParam,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RollbackBody>,
) -> Result<Accepted> {
    let task_id = input::task_id(&task_id)?;
    input::name("checkpoint_id", &body.checkpoint_id)?;
    if body.checkpoint_id.chars().count() > MAX_CHECKPOINT_ID_CHARS {
        return Err(Error::invalid(
            "invalid_value",
            "checkpoint_id",
            format!("`checkpoint_id` has more than {MAX_CHECKPOINT_ID_CHARS} characters"),
        ));
    }
    let parent = state
        .call(
            "supervisor",
            "GetTask",
            state.tasks().get_task(acting(
                &actor,
                GetTaskRequest {
                    task_id: task_id.clone(),
                },
            )),
        )
        .await?;
    let now = admit_new_task(&state, &actor, &parent.repository_id).await?;
    let request = RollbackTaskRequest {
        task_id,
        checkpoint_id: body.checkpoint_id,
    };
    let response = state
        .call(
            "supervisor",
            "RollbackTask",
            state.tasks().rollback_task(acting(&actor, request)),
        )
        .await?;
    let fork = response.task.ok_or(Error::UpstreamProtocol {
        service: "supervisor",
        call: "RollbackTask",
        missing: "a task",
    })?;
    state
        .authenticator()
        .store()
        .record_submission(&actor.user, &fork.task_id, now)
        .await?;
    Ok(accepted(fork, &headers))
}

/// The answer of a request that changes a task: 202 with the task as it is now.
type Accepted = (StatusCode, Json<TaskView>);

fn accepted(task: Task, headers: &HeaderMap) -> Accepted {
    (
        StatusCode::ACCEPTED,
        Json(TaskView::new(task, &ws_base(headers))),
    )
}

/// Answer of `GET /api/v1/tasks/{task_id}/events`.
#[derive(Debug, Serialize)]
pub struct EventPage {
    /// The events, in sequence order.
    pub events: Vec<WsEvent>,
    /// Pass as `after_seq` to read on.
    pub next_after_seq: i64,
    /// The task ended: no event will follow `next_after_seq`.
    pub task_finished: bool,
}

/// `GET /api/v1/tasks/{task_id}/events?after_seq=N&limit=M`: a bounded read of the task's
/// event stream (see [`crate::EventsPolicy`]).
pub async fn events(
    State(state): State<AppState>,
    Extension(actor): Extension<Principal>,
    PathParam(task_id): PathParam,
    query: QueryParams,
) -> Result<Json<EventPage>> {
    let task_id = input::task_id(&task_id)?;
    query.only(&["after_seq", "limit"])?;
    let policy = state.events_policy();
    let max = i64::try_from(policy.max_events).unwrap_or(i64::MAX);
    let after_seq = query.int("after_seq", 0, i64::MAX)?.unwrap_or(0);
    let limit = query.int("limit", 1, max)?.map_or(policy.max_events, |n| {
        usize::try_from(n).unwrap_or(policy.max_events)
    });

    let deadline = Instant::now() + policy.max_wait;
    let request = WatchTaskRequest { task_id, after_seq };
    let mut stream = state
        .call(
            "supervisor",
            "WatchTask",
            state.tasks().watch_task(acting(&actor, request)),
        )
        .await?;
    let mut page = EventPage {
        events: Vec::new(),
        next_after_seq: after_seq,
        task_finished: false,
    };
    let mut read = 0usize;
    while read < limit {
        let wait_until = deadline.min(Instant::now() + policy.idle);
        let next = match tokio::time::timeout_at(wait_until, stream.message()).await {
            Err(_) => break,
            Ok(next) => next,
        };
        match next {
            Ok(Some(record)) => {
                read += 1;
                page.next_after_seq = page.next_after_seq.max(record.seq);
                if let Some(event) = ws_event(&record) {
                    page.events.push(event);
                }
            }
            Ok(None) => {
                page.task_finished = true;
                break;
            }
            Err(status) => return Err(Error::upstream("supervisor", "WatchTask", status)),
        }
    }
    Ok(Json(page))
}
