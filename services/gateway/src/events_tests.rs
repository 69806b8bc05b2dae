use cap_proto::agent::v1::{
    Action, Checkpoint, CommandExecuted, ErrorReport, FileModified, Observation, StatusChange,
    TaskEvent, Thought, observation, task_event::Payload,
};
use cap_proto::supervisor::v1::TaskEventRecord;
use pretty_assertions::assert_eq;
use serde_json::json;

use super::*;

const TASK: &str = "7d3c2a4e-8f61-4c1e-9a55-0b1f2e3d4c5b";
// 2023-11-14T22:13:20.5Z
const AT_MS: i64 = 1_700_000_000_500;

fn record(seq: i64, payload: Payload) -> TaskEventRecord {
    TaskEventRecord {
        task_id: TASK.to_owned(),
        seq,
        event: Some(TaskEvent {
            payload: Some(payload),
            agent: "coding".to_owned(),
            created_at_ms: AT_MS,
        }),
    }
}

fn mapped(record: &TaskEventRecord) -> serde_json::Value {
    serde_json::to_value(ws_event(record).expect("an event")).expect("serializes")
}

fn observation(detail: Option<observation::Detail>) -> Payload {
    Payload::Observation(Observation {
        call_id: "call-1".to_owned(),
        tool: "run_command".to_owned(),
        is_error: false,
        content: "ok".to_owned(),
        detail,
    })
}

#[test]
fn thought_is_agent_thought_with_rfc3339_timestamp() {
    let event = record(
        1,
        Payload::Thought(Thought {
            reasoning: "look at auth.js".to_owned(),
        }),
    );
    assert_eq!(
        mapped(&event),
        json!({
            "event": "agent_thought",
            "seq": 1,
            "task_id": TASK,
            "data": {
                "agent": "coding",
                "reasoning": "look at auth.js",
                "timestamp": "2023-11-14T22:13:20.5Z",
            },
        })
    );
}

#[test]
fn action_arguments_are_json_when_valid_and_text_when_not() {
    let valid = record(
        2,
        Payload::Action(Action {
            call_id: "call-1".to_owned(),
            tool: "read_file".to_owned(),
            arguments_json: r#"{"path":"src/lib.rs"}"#.to_owned(),
        }),
    );
    assert_eq!(
        mapped(&valid)["data"],
        json!({
            "agent": "coding",
            "tool": "read_file",
            "arguments": {"path": "src/lib.rs"},
            "call_id": "call-1",
        })
    );
    assert_eq!(mapped(&valid)["event"], "agent_action");

    let invalid = record(
        3,
        Payload::Action(Action {
            call_id: "call-2".to_owned(),
            tool: "read_file".to_owned(),
            arguments_json: r#"{"path": "#.to_owned(),
        }),
    );
    assert_eq!(mapped(&invalid)["data"]["arguments"], json!(r#"{"path": "#));
}

#[test]
fn observation_with_file_modified_is_file_modified() {
    let event = record(
        4,
        observation(Some(observation::Detail::FileModified(FileModified {
            path: "src/auth.rs".to_owned(),
            change: "modified".to_owned(),
            additions: 12,
            deletions: 3,
        }))),
    );
    assert_eq!(
        mapped(&event),
        json!({
            "event": "file_modified",
            "seq": 4,
            "task_id": TASK,
            "data": {
                "path": "src/auth.rs",
                "diff_stat": {"change": "modified", "additions": 12, "deletions": 3},
            },
        })
    );
}

#[test]
fn observation_with_command_is_command_executed() {
    let event = record(
        5,
        observation(Some(observation::Detail::CommandExecuted(
            CommandExecuted {
                command: "cargo test".to_owned(),
                exit_code: 101,
                stdout_snippet: "test result: FAILED".to_owned(),
                timed_out: false,
                duration_ms: 1200,
            },
        ))),
    );
    assert_eq!(
        mapped(&event),
        json!({
            "event": "command_executed",
            "seq": 5,
            "task_id": TASK,
            "data": {"command": "cargo test", "exit_code": 101, "stdout_snippet": "test result: FAILED"},
        })
    );
}

#[test]
fn observation_without_detail_is_agent_observation() {
    let event = record(6, observation(None));
    assert_eq!(
        mapped(&event)["data"],
        json!({
            "agent": "coding",
            "tool": "run_command",
            "call_id": "call-1",
            "is_error": false,
            "content": "ok",
        })
    );
    assert_eq!(mapped(&event)["event"], "agent_observation");
}

#[test]
fn checkpoint_error_and_status() {
    let checkpoint = record(
        7,
        Payload::Checkpoint(Checkpoint {
            kind: cap_proto::agent::v1::CheckpointKind::HumanApprovalRequired.into(),
            description: "review the plan".to_owned(),
            state_json: "{\"secret\":1}".to_owned(),
        }),
    );
    assert_eq!(mapped(&checkpoint)["event"], "checkpoint_reached");
    // The saved state stays inside the fleet.
    assert_eq!(
        mapped(&checkpoint)["data"],
        json!({"type": "human_approval_required", "description": "review the plan"})
    );

    let error = record(
        8,
        Payload::Error(ErrorReport {
            severity: "error".to_owned(),
            message: "tests failed".to_owned(),
            recoverable: true,
        }),
    );
    assert_eq!(mapped(&error)["event"], "error");
    assert_eq!(
        mapped(&error)["data"],
        json!({"severity": "error", "message": "tests failed", "recoverable": true})
    );

    let status = record(
        9,
        Payload::Status(StatusChange {
            status: "running".to_owned(),
            current_agent: "testing".to_owned(),
            progress_percentage: 45,
        }),
    );
    assert_eq!(mapped(&status)["event"], "task_status");
    assert_eq!(
        mapped(&status)["data"],
        json!({"status": "running", "current_agent": "testing", "progress_percentage": 45})
    );
}

#[test]
fn records_without_event_or_payload_map_to_nothing() {
    let empty = TaskEventRecord {
        task_id: TASK.to_owned(),
        seq: 10,
        event: None,
    };
    assert_eq!(ws_event(&empty), None);
    let no_payload = TaskEventRecord {
        task_id: TASK.to_owned(),
        seq: 11,
        event: Some(TaskEvent {
            payload: None,
            agent: "coding".to_owned(),
            created_at_ms: 1,
        }),
    };
    assert_eq!(ws_event(&no_payload), None);
}

#[test]
fn timestamps() {
    assert_eq!(rfc3339_ms(0), None);
    assert_eq!(
        rfc3339_ms(1_700_000_000_000).as_deref(),
        Some("2023-11-14T22:13:20Z")
    );
    assert_eq!(rfc3339_ms(-1_000).as_deref(), Some("1969-12-31T23:59:59Z"));
    assert_eq!(rfc3339_ms(i64::MAX), None);
    assert_eq!(rfc3339_ms(i64::MIN), None);

    let no_time = TaskEventRecord {
        task_id: TASK.to_owned(),
        seq: 1,
        event: Some(TaskEvent {
            payload: Some(Payload::Thought(Thought {
                reasoning: String::new(),
            })),
            agent: String::new(),
            created_at_ms: 0,
        }),
    };
    assert_eq!(
        mapped(&no_time)["data"]["timestamp"],
        serde_json::Value::Null
    );
}
