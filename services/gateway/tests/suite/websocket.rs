//! The WebSocket stream against the in-test supervisor, through a real socket.

use std::time::Duration;

use cap_proto::agent::v1::task_event::Payload;
use cap_proto::agent::v1::{
    Action, Checkpoint, CommandExecuted, ErrorReport, FileModified, Observation, StatusChange,
    Thought, observation::Detail,
};
use futures::{SinkExt, StreamExt};
use pretty_assertions::assert_eq;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use tonic::Code;

use super::support::Fleet;
use super::tasks::{TASK, running_task};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Bounds every wait so a broken stream fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(30);

fn all_kinds() -> Vec<Payload> {
    let observation = |detail| Observation {
        call_id: "call-1".to_owned(),
        tool: "run_command".to_owned(),
        is_error: false,
        content: "done".to_owned(),
        detail,
    };
    vec![
        Payload::Status(StatusChange {
            status: "running".to_owned(),
            current_agent: "coding".to_owned(),
            progress_percentage: 5,
        }),
        Payload::Thought(Thought {
            reasoning: "look for the router".to_owned(),
        }),
        Payload::Action(Action {
            call_id: "call-1".to_owned(),
            tool: "read_file".to_owned(),
            arguments_json: r#"{"path":"src/app.js"}"#.to_owned(),
        }),
        Payload::Observation(observation(None)),
        Payload::Observation(observation(Some(Detail::FileModified(FileModified {
            path: "src/auth.js".to_owned(),
            change: "created".to_owned(),
            additions: 30,
            deletions: 0,
        })))),
        Payload::Observation(observation(Some(Detail::CommandExecuted(
            CommandExecuted {
                command: "npm test".to_owned(),
                exit_code: 0,
                stdout_snippet: "ok".to_owned(),
                timed_out: false,
                duration_ms: 900,
            },
        )))),
        Payload::Checkpoint(Checkpoint {
            kind: cap_proto::agent::v1::CheckpointKind::HumanApprovalRequired.into(),
            description: "review the PR".to_owned(),
            state_json: "{}".to_owned(),
        }),
        Payload::Error(ErrorReport {
            severity: "warning".to_owned(),
            message: "lint warning".to_owned(),
            recoverable: true,
        }),
    ]
}

const ALL_NAMES: [&str; 8] = [
    "task_status",
    "agent_thought",
    "agent_action",
    "agent_observation",
    "file_modified",
    "command_executed",
    "checkpoint_reached",
    "error",
];

async fn connect(fleet: &Fleet, addr: std::net::SocketAddr, path: &str) -> Socket {
    let (socket, _) = connect_async(authorized(fleet, &format!("ws://{addr}{path}")).await)
        .await
        .expect("handshake");
    socket
}

/// A WebSocket request to `url` carrying the test Admin's token.
async fn authorized(
    fleet: &Fleet,
    url: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = url.into_client_request().unwrap();
    let token = fleet.token().await;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// The next event (text frame), or the close frame's code.
async fn next(socket: &mut Socket) -> Result<serde_json::Value, Option<CloseCode>> {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("the gateway answers")
            .expect("the stream is open")
            .expect("a frame");
        match message {
            Message::Text(text) => return Ok(serde_json::from_str(&text).unwrap()),
            Message::Close(frame) => return Err(frame.map(|f| f.code)),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

async fn events(socket: &mut Socket, count: usize) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for _ in 0..count {
        out.push(next(socket).await.expect("an event"));
    }
    out
}

fn names(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn replays_stored_events_then_live_ones_then_closes_normally() {
    let fleet = Fleet::start().await;
    fleet.tasks.add_task(running_task(TASK), all_kinds());
    let addr = fleet.serve(fleet.state().await).await;
    let mut socket = connect(&fleet, addr, &format!("/ws/tasks/{TASK}/stream")).await;

    let stored = events(&mut socket, 8).await;
    assert_eq!(names(&stored), ALL_NAMES);
    let seqs: Vec<i64> = stored.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    assert!(stored.iter().all(|e| e["task_id"] == TASK));
    assert_eq!(stored[4]["data"]["diff_stat"]["additions"], 30);
    assert_eq!(stored[2]["data"]["arguments"]["path"], "src/app.js");

    // Live events follow, in order.
    fleet.tasks.push(
        TASK,
        Payload::Thought(Thought {
            reasoning: "tests pass".to_owned(),
        }),
    );
    fleet.tasks.push(
        TASK,
        Payload::Status(StatusChange {
            status: "completed".to_owned(),
            current_agent: String::new(),
            progress_percentage: 100,
        }),
    );
    let live = events(&mut socket, 2).await;
    assert_eq!(names(&live), ["agent_thought", "task_status"]);
    assert_eq!(live[0]["seq"], 9);
    assert_eq!(live[1]["data"]["progress_percentage"], 100);

    // The task ends: the upstream stream ends and the socket closes normally.
    fleet.tasks.finish(TASK);
    assert_eq!(next(&mut socket).await, Err(Some(CloseCode::Normal)));
}

#[tokio::test]
async fn logs_alias_resumes_after_seq() {
    let fleet = Fleet::start().await;
    let mut task = running_task(TASK);
    task.status = "completed".to_owned();
    fleet.tasks.add_task(task, all_kinds());
    let addr = fleet.serve(fleet.state().await).await;
    let mut socket = connect(&fleet, addr, &format!("/ws/tasks/{TASK}/logs?after_seq=5")).await;
    let rest = events(&mut socket, 3).await;
    assert_eq!(names(&rest), ALL_NAMES[5..]);
    assert_eq!(next(&mut socket).await, Err(Some(CloseCode::Normal)));
}

#[tokio::test]
async fn unknown_task_is_refused_before_the_upgrade() {
    let fleet = Fleet::start().await;
    let addr = fleet.serve(fleet.state().await).await;
    let error =
        connect_async(authorized(&fleet, &format!("ws://{addr}/ws/tasks/{TASK}/stream")).await)
            .await
            .unwrap_err();
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 404);
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"]["code"], "not_found");
        }
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn broken_upstream_stream_closes_with_an_error() {
    let fleet = Fleet::start().await;
    fleet
        .tasks
        .add_task(running_task(TASK), all_kinds()[..1].to_vec());
    let addr = fleet.serve(fleet.state().await).await;
    let mut socket = connect(&fleet, addr, &format!("/ws/tasks/{TASK}/stream")).await;
    assert_eq!(names(&events(&mut socket, 1).await), ["task_status"]);
    fleet.tasks.break_streams(TASK, Code::Internal);
    assert_eq!(next(&mut socket).await, Err(Some(CloseCode::Error)));
}

#[tokio::test]
async fn shutdown_closes_open_sockets() {
    let fleet = Fleet::start().await;
    fleet
        .tasks
        .add_task(running_task(TASK), all_kinds()[..1].to_vec());
    let state = fleet.state().await;
    let addr = fleet.serve(state.clone()).await;
    let mut socket = connect(&fleet, addr, &format!("/ws/tasks/{TASK}/stream")).await;
    assert_eq!(names(&events(&mut socket, 1).await), ["task_status"]);
    state.shutdown();
    assert_eq!(next(&mut socket).await, Err(Some(CloseCode::Away)));
}

#[tokio::test]
async fn client_leaving_releases_the_upstream_stream() {
    let fleet = Fleet::start().await;
    fleet
        .tasks
        .add_task(running_task(TASK), all_kinds()[..1].to_vec());
    let addr = fleet.serve(fleet.state().await).await;
    let mut watchers = fleet.tasks.watchers.subscribe();

    let mut socket = connect(&fleet, addr, &format!("/ws/tasks/{TASK}/stream")).await;
    assert_eq!(names(&events(&mut socket, 1).await), ["task_status"]);
    assert_eq!(*watchers.borrow_and_update(), 1);

    // Client messages are ignored; a close is answered and the upstream stream dropped.
    socket.send(Message::text("hello")).await.unwrap();
    socket.close(None).await.unwrap();
    tokio::time::timeout(PATIENCE, watchers.wait_for(|open| *open == 0))
        .await
        .expect("the upstream stream is released")
        .unwrap();
}
