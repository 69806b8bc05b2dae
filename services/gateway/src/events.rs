//! The WebSocket event protocol (PRD 13.1): one place that turns the supervisor's
//! [`TaskEventRecord`]s into `{"event", "seq", "task_id", "data"}` objects.
//!
//! | payload | event | data |
//! |---|---|---|
//! | thought | `agent_thought` | `{agent, reasoning, timestamp}` |
//! | action | `agent_action` | `{agent, tool, arguments, call_id}` |
//! | observation + file_modified | `file_modified` | `{path, diff_stat: {change, additions, deletions}}` |
//! | observation + command_executed | `command_executed` | `{command, exit_code, stdout_snippet}` |
//! | observation without detail | `agent_observation` | `{agent, tool, call_id, is_error, content}` |
//! | checkpoint | `checkpoint_reached` | `{type, description}` |
//! | error | `error` | `{severity, message, recoverable}` |
//! | status | `task_status` | `{status, current_agent, progress_percentage}` |

use cap_proto::agent::v1::observation::Detail;
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::supervisor::v1::TaskEventRecord;
use serde::Serialize;
use serde_json::{Value, json};

/// One WebSocket text frame (and one element of `GET .../events`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WsEvent {
    /// The event name, e.g. `agent_thought`.
    pub event: &'static str,
    /// The record's per-task sequence number.
    pub seq: i64,
    /// The task the event belongs to.
    pub task_id: String,
    /// The event's fields.
    pub data: Value,
}

/// Maps a stored record to its WebSocket event; `None` for a record without a payload
/// (nothing to show, e.g. a payload kind newer than this gateway).
pub fn ws_event(record: &TaskEventRecord) -> Option<WsEvent> {
    let event = record.event.as_ref()?;
    let agent = event.agent.as_str();
    let (name, data) = match event.payload.as_ref()? {
        Payload::Thought(thought) => (
            "agent_thought",
            json!({
                "agent": agent,
                "reasoning": thought.reasoning,
                "timestamp": rfc3339_ms(event.created_at_ms),
            }),
        ),
        Payload::Action(action) => (
            "agent_action",
            json!({
                "agent": agent,
                "tool": action.tool,
                "arguments": arguments(&action.arguments_json),
                "call_id": action.call_id,
            }),
        ),
        Payload::Observation(observation) => match &observation.detail {
            Some(Detail::FileModified(file)) => (
                "file_modified",
                json!({
                    "path": file.path,
                    "diff_stat": {
                        "change": file.change,
                        "additions": file.additions,
                        "deletions": file.deletions,
                    },
                }),
            ),
            Some(Detail::CommandExecuted(command)) => (
                "command_executed",
                json!({
                    "command": command.command,
                    "exit_code": command.exit_code,
                    "stdout_snippet": command.stdout_snippet,
                }),
            ),
            None => (
                "agent_observation",
                json!({
                    "agent": agent,
                    "tool": observation.tool,
                    "call_id": observation.call_id,
                    "is_error": observation.is_error,
                    "content": observation.content,
                }),
            ),
        },
        Payload::Checkpoint(checkpoint) => (
            "checkpoint_reached",
            json!({ "type": checkpoint.kind().name(), "description": checkpoint.description }),
        ),
        Payload::Error(error) => (
            "error",
            json!({
                "severity": error.severity,
                "message": error.message,
                "recoverable": error.recoverable,
            }),
        ),
        Payload::Status(status) => (
            "task_status",
            json!({
                "status": status.status,
                "current_agent": status.current_agent,
                "progress_percentage": status.progress_percentage,
            }),
        ),
    };
    Some(WsEvent {
        event: name,
        seq: record.seq,
        task_id: record.task_id.clone(),
        data,
    })
}

/// The model's arguments as JSON when they parse, else the raw text (the model may send
/// invalid JSON, and the dashboard still shows what it sent).
fn arguments(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

/// Milliseconds since the Unix epoch as RFC 3339 (UTC); `None` for 0 (unset in proto3) and
/// for values outside the calendar `time` supports.
pub fn rfc3339_ms(ms: i64) -> Option<String> {
    if ms == 0 {
        return None;
    }
    let nanos = i128::from(ms) * 1_000_000;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    at.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
