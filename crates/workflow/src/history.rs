//! Events as the store keeps them: a schema of the workflow's own, versioned.
//!
//! The contract's generated types (`cap.agent.v1.TaskEvent`) change with the proto: a renamed
//! field or a string turned enum would make their JSON unreadable. So the store never writes
//! them; it writes [`StoredEvent`]s, whose field names and shapes are fixed here, with the
//! schema version in `v`, and reads every version it ever wrote:
//!
//! - version 1 (rows without `v`, written before this module): the serde JSON of the generated
//!   types as they were, `{"agent", "created_at_ms", "payload": {"Checkpoint": {...}}}`;
//! - version 2: `{"v": 2, "agent", "created_at_ms", "type": "checkpoint", ...fields}`.
//!
//! A new shape is a new version: add it to [`decode`], keep the old readers, and add the old
//! rows to this module's tests.

use cap_proto::agent::v1 as pb;
use cap_proto::agent::v1::task_event::Payload;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The version [`encode`] writes.
pub(crate) const SCHEMA_VERSION: u32 = 2;

/// One stored event, version 2.
#[derive(Debug, Serialize, Deserialize)]
struct StoredEvent {
    v: u32,
    agent: String,
    created_at_ms: i64,
    #[serde(flatten)]
    body: Body,
}

/// What happened, tagged by `type`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Body {
    Thought(ThoughtRecord),
    Action(ActionRecord),
    Observation(ObservationRecord),
    Checkpoint(CheckpointRecord),
    Error(ErrorRecord),
    Status(StatusRecord),
    /// An event without a payload (never sent by the fleet; kept so nothing is dropped).
    Empty,
}

/// Version 1: the generated types' serde JSON as it was; its payload externally tagged.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LegacyEvent {
    agent: String,
    created_at_ms: i64,
    payload: Option<LegacyPayload>,
}

#[derive(Debug, Deserialize)]
enum LegacyPayload {
    Thought(ThoughtRecord),
    Action(ActionRecord),
    Observation(ObservationRecord),
    Checkpoint(CheckpointRecord),
    Error(ErrorRecord),
    Status(StatusRecord),
}

// The records below are the field sets both versions share. Every field defaults, as the
// generated types' JSON did, so a row missing one still reads.

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct ThoughtRecord {
    reasoning: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct ActionRecord {
    call_id: String,
    tool: String,
    arguments_json: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct ObservationRecord {
    call_id: String,
    tool: String,
    is_error: bool,
    content: String,
    detail: Option<DetailRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
enum DetailRecord {
    FileModified(FileModifiedRecord),
    CommandExecuted(CommandExecutedRecord),
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct FileModifiedRecord {
    path: String,
    change: String,
    additions: u32,
    deletions: u32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct CommandExecutedRecord {
    command: String,
    exit_code: i32,
    stdout_snippet: String,
    timed_out: bool,
    duration_ms: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct CheckpointRecord {
    kind: String,
    description: String,
    state_json: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct ErrorRecord {
    severity: String,
    message: String,
    recoverable: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct StatusRecord {
    status: String,
    current_agent: String,
    progress_percentage: u32,
}

/// `event` as the store writes it (the current version).
pub(crate) fn encode(event: &pb::TaskEvent) -> Result<String> {
    let body = match event.payload.clone() {
        None => Body::Empty,
        Some(Payload::Thought(t)) => Body::Thought(ThoughtRecord {
            reasoning: t.reasoning,
        }),
        Some(Payload::Action(a)) => Body::Action(ActionRecord {
            call_id: a.call_id,
            tool: a.tool,
            arguments_json: a.arguments_json,
        }),
        Some(Payload::Observation(o)) => Body::Observation(observation_record(o)),
        Some(Payload::Checkpoint(c)) => Body::Checkpoint(CheckpointRecord {
            kind: c.kind().name().to_owned(),
            description: c.description,
            state_json: c.state_json,
        }),
        Some(Payload::Error(e)) => Body::Error(ErrorRecord {
            severity: e.severity,
            message: e.message,
            recoverable: e.recoverable,
        }),
        Some(Payload::Status(s)) => Body::Status(StatusRecord {
            status: s.status,
            current_agent: s.current_agent,
            progress_percentage: s.progress_percentage,
        }),
    };
    Ok(serde_json::to_string(&StoredEvent {
        v: SCHEMA_VERSION,
        agent: event.agent.clone(),
        created_at_ms: event.created_at_ms,
        body,
    })?)
}

/// A stored event of any version this supervisor knows, as the contract's type.
pub(crate) fn decode(json: &str) -> Result<pb::TaskEvent> {
    let value: serde_json::Value = serde_json::from_str(json)?;
    let version = match value.get("v") {
        None => 1,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| Error::Corrupt(format!("event schema version {v} is not a number")))?,
    };
    match version {
        1 => {
            let legacy: LegacyEvent = serde_json::from_value(value)?;
            let payload = legacy.payload.map(|payload| match payload {
                LegacyPayload::Thought(r) => Body::Thought(r),
                LegacyPayload::Action(r) => Body::Action(r),
                LegacyPayload::Observation(r) => Body::Observation(r),
                LegacyPayload::Checkpoint(r) => Body::Checkpoint(r),
                LegacyPayload::Error(r) => Body::Error(r),
                LegacyPayload::Status(r) => Body::Status(r),
            });
            Ok(task_event(
                legacy.agent,
                legacy.created_at_ms,
                payload.unwrap_or(Body::Empty),
            ))
        }
        2 => {
            let stored: StoredEvent = serde_json::from_value(value)?;
            Ok(task_event(stored.agent, stored.created_at_ms, stored.body))
        }
        newer => Err(Error::Corrupt(format!(
            "event schema version {newer} is newer than this supervisor reads \
             (up to {SCHEMA_VERSION}); upgrade the supervisor"
        ))),
    }
}

fn observation_record(o: pb::Observation) -> ObservationRecord {
    use pb::observation::Detail;
    ObservationRecord {
        call_id: o.call_id,
        tool: o.tool,
        is_error: o.is_error,
        content: o.content,
        detail: o.detail.map(|detail| match detail {
            Detail::FileModified(f) => DetailRecord::FileModified(FileModifiedRecord {
                path: f.path,
                change: f.change,
                additions: f.additions,
                deletions: f.deletions,
            }),
            Detail::CommandExecuted(c) => DetailRecord::CommandExecuted(CommandExecutedRecord {
                command: c.command,
                exit_code: c.exit_code,
                stdout_snippet: c.stdout_snippet,
                timed_out: c.timed_out,
                duration_ms: c.duration_ms,
            }),
        }),
    }
}

/// A stored kind's value; a name this supervisor does not know (written by a newer one) reads
/// as unspecified, with a warning, rather than losing the event.
fn checkpoint_kind(name: &str) -> pb::CheckpointKind {
    pb::CheckpointKind::from_name(name).unwrap_or_else(|| {
        tracing::warn!(kind = name, "stored checkpoint of an unknown kind");
        pb::CheckpointKind::Unspecified
    })
}

fn task_event(agent: String, created_at_ms: i64, body: Body) -> pb::TaskEvent {
    use pb::observation::Detail;
    let payload = match body {
        Body::Empty => None,
        Body::Thought(r) => Some(Payload::Thought(pb::Thought {
            reasoning: r.reasoning,
        })),
        Body::Action(r) => Some(Payload::Action(pb::Action {
            call_id: r.call_id,
            tool: r.tool,
            arguments_json: r.arguments_json,
        })),
        Body::Observation(r) => Some(Payload::Observation(pb::Observation {
            call_id: r.call_id,
            tool: r.tool,
            is_error: r.is_error,
            content: r.content,
            detail: r.detail.map(|detail| match detail {
                DetailRecord::FileModified(f) => Detail::FileModified(pb::FileModified {
                    path: f.path,
                    change: f.change,
                    additions: f.additions,
                    deletions: f.deletions,
                }),
                DetailRecord::CommandExecuted(c) => Detail::CommandExecuted(pb::CommandExecuted {
                    command: c.command,
                    exit_code: c.exit_code,
                    stdout_snippet: c.stdout_snippet,
                    timed_out: c.timed_out,
                    duration_ms: c.duration_ms,
                }),
            }),
        })),
        Body::Checkpoint(r) => Some(Payload::Checkpoint(pb::Checkpoint {
            kind: checkpoint_kind(&r.kind).into(),
            description: r.description,
            state_json: r.state_json,
        })),
        Body::Error(r) => Some(Payload::Error(pb::ErrorReport {
            severity: r.severity,
            message: r.message,
            recoverable: r.recoverable,
        })),
        Body::Status(r) => Some(Payload::Status(pb::StatusChange {
            status: r.status,
            current_agent: r.current_agent,
            progress_percentage: r.progress_percentage,
        })),
    };
    pb::TaskEvent {
        payload,
        agent,
        created_at_ms,
    }
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
