//! Building the task's events.

use cap_proto::agent::v1::{
    Action, Checkpoint, ErrorReport, Observation, TaskEvent, Thought, task_event,
};
use tokio::sync::mpsc::Sender;

use crate::tools::ToolOutput;
use crate::{AGENT_NAME, Error, Result};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// Where the loop's events go.
pub(crate) struct Emitter {
    events: Sender<TaskEvent>,
}

impl Emitter {
    pub(crate) fn new(events: Sender<TaskEvent>) -> Self {
        Self { events }
    }

    async fn send(&self, payload: task_event::Payload) -> Result<()> {
        let event = TaskEvent {
            payload: Some(payload),
            agent: AGENT_NAME.to_owned(),
            created_at_ms: now_ms(),
        };
        self.events
            .send(event)
            .await
            .map_err(|_| Error::EventsClosed)
    }

    pub(crate) async fn thought(&self, reasoning: &str) -> Result<()> {
        self.send(task_event::Payload::Thought(Thought {
            reasoning: reasoning.to_owned(),
        }))
        .await
    }

    pub(crate) async fn action(&self, call_id: &str, tool: &str, arguments: &str) -> Result<()> {
        self.send(task_event::Payload::Action(Action {
            call_id: call_id.to_owned(),
            tool: tool.to_owned(),
            arguments_json: arguments.to_owned(),
        }))
        .await
    }

    pub(crate) async fn observation(
        &self,
        call_id: &str,
        tool: &str,
        output: &ToolOutput,
    ) -> Result<()> {
        self.send(task_event::Payload::Observation(Observation {
            call_id: call_id.to_owned(),
            tool: tool.to_owned(),
            is_error: output.is_error,
            content: output.content.clone(),
            detail: output.detail.clone(),
        }))
        .await
    }

    pub(crate) async fn checkpoint(
        &self,
        kind: &str,
        description: String,
        state_json: String,
    ) -> Result<()> {
        self.send(task_event::Payload::Checkpoint(Checkpoint {
            kind: kind.to_owned(),
            description,
            state_json,
        }))
        .await
    }

    pub(crate) async fn error(
        &self,
        severity: &str,
        message: String,
        recoverable: bool,
    ) -> Result<()> {
        self.send(task_event::Payload::Error(ErrorReport {
            severity: severity.to_owned(),
            message,
            recoverable,
        }))
        .await
    }
}
