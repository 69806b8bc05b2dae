use cap_agent_server::{AgentServer, to_status};
use cap_proto::agent::v1::agent_orchestrator_server::AgentOrchestrator;
use cap_proto::agent::v1::{Ack, AgentId, AgentStatus, RepositoryContext, TaskId};
use cap_sandbox_client::{GrpcSandbox, MAX_MESSAGE_BYTES};
use pretty_assertions::assert_eq;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tonic::{Request, Status};

use super::*;

/// A sandbox client for `addr`, connecting on first use (plain HTTP/2: these tests are about
/// what the agent does when the sandbox is not there or does not answer).
fn sandbox_at(addr: std::net::SocketAddr) -> Sandbox {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap();
    GrpcSandbox::shared(endpoint.connect_lazy(), MAX_MESSAGE_BYTES)
}

/// An address nothing listens on.
async fn closed_port() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

fn agent(sandbox: Sandbox) -> AgentServer<TestingAgent> {
    AgentServer::new(TestingAgent::new(sandbox, Duration::from_secs(60)))
}

fn is_recoverable(error: &Error) -> bool {
    matches!(error.reported(), Reported::ByAdapter { recoverable: true })
}

fn task(task_id: &str, session: &str) -> TaskRequest {
    TaskRequest {
        task_id: task_id.to_owned(),
        repo: Some(RepositoryContext {
            sandbox_session_id: session.to_owned(),
            ..Default::default()
        }),
        objective: "Run the repository's tests".to_owned(),
        tools: Vec::new(),
        context: None,
    }
}

#[test]
fn requests_are_validated_with_clear_messages() {
    let err = Job::from_request(task("", "s")).unwrap_err();
    assert_eq!(err.to_string(), "invalid task request: task_id is empty");
    let err = Job::from_request(TaskRequest {
        repo: None,
        ..task("t", "s")
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid task request: repo is missing; the testing agent needs repo.sandbox_session_id"
    );
    let err = Job::from_request(task("t", " ")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid task request: repo.sandbox_session_id is empty"
    );
    assert_eq!(to_status(&err).code(), tonic::Code::InvalidArgument);

    let mut request = task("t", "s");
    request.context.get_or_insert_default().test_pattern = "  test_add ".to_owned();
    request.repo.as_mut().unwrap().test_command = " make test ".to_owned();
    let job = Job::from_request(request).unwrap();
    assert_eq!(job.pattern.as_deref(), Some("test_add"));
    assert_eq!(job.test_command, "make test");
    let mut request = task("t", "s");
    request.context.get_or_insert_default().test_pattern = String::new();
    assert_eq!(Job::from_request(request).unwrap().pattern, None);
}

#[test]
fn errors_map_to_statuses_in_one_place() {
    let sandbox = |code: tonic::Code| {
        Error::Tests(cap_testrun::Error::Sandbox {
            operation: "ListDirectory",
            source: Status::new(code, "unknown session abc"),
        })
    };
    let status = to_status(&sandbox(tonic::Code::NotFound));
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(
        status.message(),
        "the tests could not be run: sandbox ListDirectory failed: unknown session abc"
    );
    assert_eq!(
        to_status(&sandbox(tonic::Code::Unavailable)).code(),
        tonic::Code::Unavailable
    );
    assert_eq!(
        to_status(&sandbox(tonic::Code::Unknown)).code(),
        tonic::Code::Unavailable
    );
    assert_eq!(
        to_status(&sandbox(tonic::Code::InvalidArgument)).code(),
        tonic::Code::FailedPrecondition
    );
    assert!(is_recoverable(&sandbox(tonic::Code::Unavailable)));
    assert!(!is_recoverable(&sandbox(tonic::Code::NotFound)));
    let pattern = Error::Tests(cap_testrun::Error::InvalidPattern {
        pattern: "a\0".into(),
        reason: "it contains a NUL byte",
    });
    assert_eq!(to_status(&pattern).code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn status_is_idle_then_busy_then_idle() {
    let agent = agent(sandbox_at(closed_port().await));
    let status = agent
        .get_agent_status(Request::new(AgentId::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status,
        AgentStatus {
            agent: "testing".into(),
            state: "idle".into(),
            running_task_ids: vec![],
            tasks_completed: 0,
            version: env!("CARGO_PKG_VERSION").into(),
        }
    );
    let (_interrupt, guard) = agent.tasks().register("t2").unwrap();
    let (_interrupt, guard1) = agent.tasks().register("t1").unwrap();
    assert_eq!(
        to_status(&agent.tasks().register("t1").unwrap_err()).code(),
        tonic::Code::AlreadyExists
    );
    let status = agent
        .get_agent_status(Request::new(AgentId {
            agent: "testing".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (status.state.as_str(), status.running_task_ids),
        ("busy", vec!["t1".to_owned(), "t2".to_owned()])
    );
    drop(guard);
    drop(guard1);
    let status = agent
        .get_agent_status(Request::new(AgentId::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.state.as_str(), status.tasks_completed), ("idle", 2));
    let err = agent
        .get_agent_status(Request::new(AgentId {
            agent: "coding".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert_eq!(
        err.message(),
        "agent \"coding\" is not served here; this is the testing agent"
    );
}

#[tokio::test]
async fn interrupting_what_is_not_running_is_refused_politely() {
    let agent = agent(sandbox_at(closed_port().await));
    let ack = agent
        .interrupt_task(Request::new(TaskId {
            task_id: "nope".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ack,
        Ack {
            accepted: false,
            message: "task nope is not running on the testing agent".into()
        }
    );
    let err = agent
        .interrupt_task(Request::new(TaskId::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn unreachable_sandbox_ends_the_stream_with_an_error_report_and_status() {
    let agent = agent(sandbox_at(closed_port().await));
    let mut stream = agent
        .execute_task(Request::new(task("t1", "s1")))
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.agent, "testing");
    assert!(first.created_at_ms > 0);
    let Some(Payload::Error(report)) = first.payload else {
        panic!("error report expected: {first:?}")
    };
    assert_eq!(report.severity, "error");
    assert!(report.recoverable);
    assert!(
        report
            .message
            .starts_with("the tests could not be run: sandbox ListDirectory failed"),
        "{}",
        report.message
    );
    let status = stream.next().await.unwrap().unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(stream.next().await.is_none());
    // The task is over and counted.
    let status = agent
        .get_agent_status(Request::new(AgentId::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.state.as_str(), status.tasks_completed), ("idle", 1));
}

#[tokio::test]
async fn interrupt_stops_a_task_stuck_on_the_sandbox() {
    // A peer that accepts connections and never answers: the agent's first RPC hangs.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent = agent(sandbox_at(listener.local_addr().unwrap()));
    let mut stream = agent
        .execute_task(Request::new(task("t1", "s1")))
        .await
        .unwrap()
        .into_inner();
    let err = agent
        .execute_task(Request::new(task("t1", "s1")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
    let ack = agent
        .interrupt_task(Request::new(TaskId {
            task_id: "t1".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(ack.accepted, "{ack:?}");
    let event = stream.next().await.unwrap().unwrap();
    let Some(Payload::Checkpoint(checkpoint)) = event.payload else {
        panic!("checkpoint expected: {event:?}")
    };
    assert_eq!(checkpoint.kind().name(), "interrupted");
    assert_eq!(checkpoint.state_json, r#"{"task_id":"t1"}"#);
    assert!(
        stream.next().await.is_none(),
        "the stream ends OK after the interruption"
    );
    // Wait for the task to unregister: the stream ended, so the task's future is done.
    let status = agent
        .get_agent_status(Request::new(AgentId::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.tasks_completed, 1);
    assert_eq!(status.running_task_ids, Vec::<String>::new());
    drop(listener);
}

#[test]
fn error_chains_show_the_sandbox_message_only() {
    let error = Error::Tests(cap_testrun::Error::Sandbox {
        operation: "Exec",
        source: Status::unavailable("connection refused"),
    });
    assert_eq!(
        error_chain(&error),
        "the tests could not be run: sandbox Exec failed: connection refused"
    );
}
