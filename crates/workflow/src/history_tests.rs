use cap_proto::agent::v1::observation::Detail;
use pretty_assertions::assert_eq;

use super::*;

fn every_payload() -> Vec<pb::TaskEvent> {
    let payloads = vec![
        None,
        Some(Payload::Thought(pb::Thought {
            reasoning: "look at calc.py".into(),
        })),
        Some(Payload::Action(pb::Action {
            call_id: "call-1".into(),
            tool: "read_file".into(),
            arguments_json: r#"{"path": "calc.py"}"#.into(),
        })),
        Some(Payload::Observation(pb::Observation {
            call_id: "call-1".into(),
            tool: "edit_file".into(),
            is_error: false,
            content: "edited".into(),
            detail: Some(Detail::FileModified(pb::FileModified {
                path: "calc.py".into(),
                change: "modified".into(),
                additions: 1,
                deletions: 2,
            })),
        })),
        Some(Payload::Observation(pb::Observation {
            call_id: "call-2".into(),
            tool: "run_command".into(),
            is_error: true,
            content: "exit 1".into(),
            detail: Some(Detail::CommandExecuted(pb::CommandExecuted {
                command: "pytest".into(),
                exit_code: 1,
                stdout_snippet: "1 failed".into(),
                timed_out: false,
                duration_ms: 812,
            })),
        })),
        Some(Payload::Checkpoint(pb::Checkpoint {
            kind: pb::CheckpointKind::TestsFailed.into(),
            description: "1 of 2 tests failed".into(),
            state_json: r#"{"passed": 1}"#.into(),
        })),
        Some(Payload::Error(pb::ErrorReport {
            severity: "warning".into(),
            message: "retry 1 in 1000 ms".into(),
            recoverable: true,
        })),
        Some(Payload::Status(pb::StatusChange {
            status: "running".into(),
            current_agent: "TestingAgent".into(),
            progress_percentage: 70,
        })),
    ];
    payloads
        .into_iter()
        .map(|payload| pb::TaskEvent {
            payload,
            agent: "coding".into(),
            created_at_ms: 1_700_000_000_000,
        })
        .collect()
}

#[test]
fn every_payload_survives_the_current_schema() {
    for event in every_payload() {
        let json = encode(&event).unwrap();
        assert!(json.starts_with(r#"{"v":2,"#), "{json}");
        assert_eq!(decode(&json).unwrap(), event);
    }
}

#[test]
fn the_current_schema_is_written_as_documented() {
    let json = encode(&every_payload()[5]).unwrap();
    assert_eq!(
        json,
        r#"{"v":2,"agent":"coding","created_at_ms":1700000000000,"type":"checkpoint","kind":"tests_failed","description":"1 of 2 tests failed","state_json":"{\"passed\": 1}"}"#
    );
}

/// Rows exactly as the supervisor wrote them before the schema was versioned: the serde JSON
/// of the generated types.
#[test]
fn events_written_by_the_previous_schema_still_read() {
    let rows = [
        r#"{"agent":"","created_at_ms":1700000000000,"payload":null}"#,
        r#"{"agent":"coding","created_at_ms":1700000000000,"payload":{"Thought":{"reasoning":"look at calc.py"}}}"#,
        r#"{"agent":"coding","created_at_ms":1700000000000,"payload":{"Action":{"call_id":"call-1","tool":"read_file","arguments_json":"{\"path\": \"calc.py\"}"}}}"#,
        r#"{"agent":"coding","created_at_ms":1700000000000,"payload":{"Observation":{"call_id":"call-1","tool":"edit_file","is_error":false,"content":"edited","detail":{"FileModified":{"path":"calc.py","change":"modified","additions":1,"deletions":2}}}}}"#,
        r#"{"agent":"coding","created_at_ms":1700000000000,"payload":{"Observation":{"call_id":"call-2","tool":"run_command","is_error":true,"content":"exit 1","detail":{"CommandExecuted":{"command":"pytest","exit_code":1,"stdout_snippet":"1 failed","timed_out":false,"duration_ms":812}}}}}"#,
        r#"{"agent":"coding","created_at_ms":1700000000000,"payload":{"Checkpoint":{"kind":"tests_failed","description":"1 of 2 tests failed","state_json":"{\"passed\": 1}"}}}"#,
        r#"{"agent":"coding","created_at_ms":1700000000000,"payload":{"Error":{"severity":"warning","message":"retry 1 in 1000 ms","recoverable":true}}}"#,
        r#"{"agent":"coding","created_at_ms":1700000000000,"payload":{"Status":{"status":"running","current_agent":"TestingAgent","progress_percentage":70}}}"#,
    ];
    let mut expected = every_payload();
    expected[0].agent.clear();
    let decoded: Vec<pb::TaskEvent> = rows.iter().map(|row| decode(row).unwrap()).collect();
    assert_eq!(decoded, expected);
}

#[test]
fn fields_missing_from_an_old_row_default() {
    let event = decode(r#"{"payload":{"Checkpoint":{"kind":"paused"}}}"#).unwrap();
    assert_eq!(
        event.payload,
        Some(Payload::Checkpoint(pb::Checkpoint {
            kind: pb::CheckpointKind::Paused.into(),
            ..Default::default()
        }))
    );
}

#[test]
fn a_kind_this_supervisor_does_not_know_keeps_the_event() {
    let event = decode(
        r#"{"v":2,"agent":"x","created_at_ms":1,"type":"checkpoint","kind":"telepathy","description":"d"}"#,
    )
    .unwrap();
    let Some(Payload::Checkpoint(checkpoint)) = event.payload else {
        panic!("{event:?}");
    };
    assert_eq!(checkpoint.kind(), pb::CheckpointKind::Unspecified);
    assert_eq!(checkpoint.description, "d");
}

#[test]
fn unknown_versions_and_broken_rows_are_errors_naming_why() {
    let newer = decode(r#"{"v":3,"agent":"x","created_at_ms":1,"type":"empty"}"#).unwrap_err();
    assert_eq!(
        newer.to_string(),
        "corrupt store: event schema version 3 is newer than this supervisor reads (up to 2); \
         upgrade the supervisor"
    );
    let odd = decode(r#"{"v":"two"}"#).unwrap_err();
    assert!(odd.to_string().contains("is not a number"), "{odd}");
    assert!(matches!(decode("{not json").unwrap_err(), Error::Json(_)));
    assert!(matches!(
        decode(r#"{"v":2,"agent":"x","created_at_ms":1,"type":"telepathy"}"#).unwrap_err(),
        Error::Json(_)
    ));
}
