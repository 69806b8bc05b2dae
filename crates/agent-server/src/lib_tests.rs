use std::time::Duration;

use cap_proto::agent::v1::CheckpointKind;
use pretty_assertions::assert_eq;
use tokio_stream::StreamExt;

use super::*;

/// A role whose job is a script: `fail:<code>` fails, `report` fails after its own report,
/// `wait` waits for the interrupt, anything else finishes.
struct Toy;

#[derive(Debug, thiserror::Error)]
enum ToyError {
    #[error("bad request")]
    Bad,
    #[error("the toy failed")]
    Failed(#[source] Status),
    #[error("the toy reported")]
    Reported,
}

impl RoleError for ToyError {
    fn code(&self) -> Code {
        match self {
            ToyError::Bad => Code::InvalidArgument,
            ToyError::Failed(_) | ToyError::Reported => Code::Unavailable,
        }
    }

    fn reported(&self) -> Reported {
        match self {
            ToyError::Reported => Reported::ByRole,
            ToyError::Bad | ToyError::Failed(_) => Reported::ByAdapter { recoverable: true },
        }
    }
}

impl Role for Toy {
    const AGENT: &'static str = "toy";
    type Job = String;
    type Error = ToyError;

    fn accept(&self, request: TaskRequest) -> Result<String, ToyError> {
        if request.objective.is_empty() {
            return Err(ToyError::Bad);
        }
        Ok(request.objective)
    }

    async fn run(
        &self,
        job: String,
        events: mpsc::Sender<TaskEvent>,
        cancel: CancellationToken,
        mut steering: Steering,
    ) -> Result<(), ToyError> {
        let events = Events::new(Self::AGENT, events);
        let closed = |_| ToyError::Reported;
        match job.as_str() {
            "fail" => Err(ToyError::Failed(Status::unavailable("down"))),
            "report" => {
                events
                    .error("error", "own".into(), false)
                    .await
                    .map_err(closed)?;
                Err(ToyError::Reported)
            }
            "steer" => {
                steering.changed().await;
                let added = steering.take_new().join("; ");
                events
                    .thought(&format!("following: {added}"))
                    .await
                    .map_err(closed)
            }
            "wait" => {
                cancel.cancelled().await;
                events
                    .checkpoint(CheckpointKind::Interrupted, "stopped".into(), "{}".into())
                    .await
                    .map_err(closed)
            }
            _ => events.thought("done").await.map_err(closed),
        }
    }
}

fn task(task_id: &str, objective: &str) -> Request<TaskRequest> {
    Request::new(TaskRequest {
        task_id: task_id.to_owned(),
        objective: objective.to_owned(),
        ..Default::default()
    })
}

async fn events_of(server: &AgentServer<Toy>, objective: &str) -> Vec<Result<TaskEvent, Status>> {
    let stream = server.execute_task(task("t", objective)).await.unwrap();
    stream.into_inner().collect().await
}

#[tokio::test]
async fn a_failure_streams_a_report_then_the_status() {
    let server = AgentServer::new(Toy);
    let events = events_of(&server, "fail").await;
    let [Ok(report), Err(status)] = &events[..] else {
        panic!("report and status expected: {events:?}")
    };
    assert_eq!(report.agent, "toy");
    assert!(report.created_at_ms > 0);
    assert_eq!(
        report.payload,
        Some(Payload::Error(ErrorReport {
            severity: "error".into(),
            message: "the toy failed: down".into(),
            recoverable: true,
        }))
    );
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unavailable, "the toy failed: down")
    );
    // A role that reported itself gets no second report.
    let events = events_of(&server, "report").await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(&events[1], Err(s) if s.message() == "the toy reported"));
    assert_eq!(server.tasks().finished(), 2);
}

#[tokio::test]
async fn refusals_have_their_codes() {
    let server = AgentServer::new(Toy);
    let err = server.execute_task(task("t", "")).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "bad request")
    );
    let (_token, _guard) = server.tasks().register("t").unwrap();
    let err = server.execute_task(task("t", "x")).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::AlreadyExists,
            "task t is already running on the toy agent"
        )
    );
    let err = server
        .get_agent_status(Request::new(AgentId {
            agent: "coding".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::NotFound,
            "agent \"coding\" is not served here; this is the toy agent"
        )
    );
    let err = server
        .interrupt_task(Request::new(TaskId::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn interrupts_reach_the_role_and_the_status_follows() {
    let server = AgentServer::new(Toy);
    let mut stream = server
        .execute_task(task("t", "wait"))
        .await
        .unwrap()
        .into_inner();
    let status = server
        .get_agent_status(Request::new(AgentId {
            agent: "toy".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (status.state.as_str(), status.running_task_ids),
        ("busy", vec!["t".to_owned()])
    );
    let ack = server
        .interrupt_task(Request::new(TaskId {
            task_id: "t".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ack,
        Ack {
            accepted: true,
            message: "interrupting task t".into()
        }
    );
    let event = stream.next().await.unwrap().unwrap();
    assert!(matches!(
        event.payload,
        Some(Payload::Checkpoint(ref checkpoint)) if checkpoint.kind() == CheckpointKind::Interrupted
    ));
    assert!(stream.next().await.is_none());
    let status = server
        .get_agent_status(Request::new(AgentId::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.state.as_str(), status.tasks_completed), ("idle", 1));
    let ack = server
        .interrupt_task(Request::new(TaskId {
            task_id: "nope".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.message, "task nope is not running on the toy agent");
}

#[tokio::test]
async fn a_caller_going_away_interrupts_its_task() {
    let server = AgentServer::new(Toy);
    let stream = server.execute_task(task("t", "wait")).await.unwrap();
    drop(stream);
    tokio::time::timeout(Duration::from_secs(10), async {
        while server.tasks().finished() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    assert!(server.tasks().ids().is_empty());
}

#[test]
fn chains_show_a_status_by_its_message() {
    let error = ToyError::Failed(Status::unavailable("connection refused"));
    assert_eq!(error_chain(&error), "the toy failed: connection refused");
}

#[tokio::test]
async fn constraints_reach_the_running_role() {
    let server = AgentServer::new(Toy);
    let constraint = |task_id: &str, text: &str| {
        Request::new(Constraint {
            task_id: task_id.into(),
            text: text.into(),
        })
    };
    let mut stream = server
        .execute_task(task("t", "steer"))
        .await
        .unwrap()
        .into_inner();
    let ack = server
        .add_constraint(constraint("t", "  keep the public API  "))
        .await
        .unwrap()
        .into_inner();
    assert!(ack.accepted, "{ack:?}");
    let event = stream.next().await.unwrap().unwrap();
    assert!(
        matches!(&event.payload, Some(Payload::Thought(t)) if t.reasoning == "following: keep the public API"),
        "{event:?}"
    );
    assert!(stream.next().await.is_none());

    let ack = server
        .add_constraint(constraint("t", "too late"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (ack.accepted, ack.message.as_str()),
        (false, "task t is not running on the toy agent")
    );
    let refused = server
        .add_constraint(constraint("t", " "))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(refused.message(), "text: the constraint is empty");
}
