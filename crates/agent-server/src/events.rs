//! Building and sending a task's events, each signed with the agent's name and stamped with
//! the time.

use cap_proto::agent::v1::observation::Detail;
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::agent::v1::{
    Action, Checkpoint, CheckpointKind, ErrorReport, Observation, TaskEvent, Thought,
};
use tokio::sync::mpsc::Sender;

/// The receiver of a task's events went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the task's event stream was closed by its receiver")]
pub struct EventsClosed;

/// Where a role sends its task's events. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Events {
    agent: &'static str,
    tx: Sender<TaskEvent>,
}

impl Events {
    /// Events of the agent named `agent`, sent to `tx`.
    pub fn new(agent: &'static str, tx: Sender<TaskEvent>) -> Self {
        Self { agent, tx }
    }

    /// Sends one event.
    pub async fn send(&self, payload: Payload) -> Result<(), EventsClosed> {
        let event = TaskEvent {
            payload: Some(payload),
            agent: self.agent.to_owned(),
            created_at_ms: now_ms(),
        };
        self.tx.send(event).await.map_err(|_| EventsClosed)
    }

    /// A `Thought`.
    pub async fn thought(&self, reasoning: &str) -> Result<(), EventsClosed> {
        self.send(Payload::Thought(Thought {
            reasoning: reasoning.to_owned(),
        }))
        .await
    }

    /// An `Action`: the tool called, with its JSON arguments.
    pub async fn action(
        &self,
        call_id: &str,
        tool: &str,
        arguments_json: &str,
    ) -> Result<(), EventsClosed> {
        self.send(Payload::Action(Action {
            call_id: call_id.to_owned(),
            tool: tool.to_owned(),
            arguments_json: arguments_json.to_owned(),
        }))
        .await
    }

    /// An `Observation`: what the call of `tool` returned.
    pub async fn observation(
        &self,
        call_id: &str,
        tool: &str,
        is_error: bool,
        content: String,
        detail: Option<Detail>,
    ) -> Result<(), EventsClosed> {
        self.send(Payload::Observation(Observation {
            call_id: call_id.to_owned(),
            tool: tool.to_owned(),
            is_error,
            content,
            detail,
        }))
        .await
    }

    /// A `Checkpoint` of `kind`.
    pub async fn checkpoint(
        &self,
        kind: CheckpointKind,
        description: String,
        state_json: String,
    ) -> Result<(), EventsClosed> {
        self.send(Payload::Checkpoint(Checkpoint {
            kind: kind.into(),
            description,
            state_json,
        }))
        .await
    }

    /// An `ErrorReport` (`severity` is `error` or `warning`).
    pub async fn error(
        &self,
        severity: &str,
        message: String,
        recoverable: bool,
    ) -> Result<(), EventsClosed> {
        self.send(Payload::Error(ErrorReport {
            severity: severity.to_owned(),
            message,
            recoverable,
        }))
        .await
    }
}

/// Milliseconds since the Unix epoch: the events' `created_at_ms`.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}
