use cap_agent_server::to_status;
use pretty_assertions::assert_eq;
use tonic::{Code, Status};

use crate::Error as Agent;

#[test]
fn errors_map_to_statuses() {
    let status = to_status(&Agent::InvalidRequest {
        reason: "objective is empty".into(),
    });
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::InvalidArgument,
            "invalid task request: objective is empty"
        )
    );
    let model = Agent::Model {
        source: cap_llm::Error::Status {
            status: 503,
            message: "busy".into(),
        },
    };
    let status = to_status(&model);
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.message(),
        "the model endpoint failed: model endpoint answered HTTP 503: busy"
    );
    let session = Agent::Session {
        session_id: "s".into(),
        source: Box::new(Agent::Sandbox {
            operation: "ListDirectory",
            source: Status::not_found("session s not found"),
        }),
    };
    let status = to_status(&session);
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        status.message(),
        "sandbox session s is not usable: sandbox ListDirectory failed: session s not found"
    );
    let down = Agent::Sandbox {
        operation: "Exec",
        source: Status::unavailable("connection refused"),
    };
    assert_eq!(to_status(&down).code(), Code::Unavailable);
    assert_eq!(to_status(&Agent::EventsClosed).code(), Code::Cancelled);
}
