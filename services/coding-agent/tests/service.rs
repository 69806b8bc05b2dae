//! The coding agent service over mutual TLS on port 0, with the real sandbox service and the
//! scripted model server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::net::SocketAddr;

use cap_coding_agent::Config;
use cap_mtls::Pki;
use cap_proto::agent::v1::agent_orchestrator_client::AgentOrchestratorClient;
use cap_proto::agent::v1::{
    AgentId, RepositoryContext, TaskEvent, TaskId, TaskRequest, task_event,
};
use cap_proto::sandbox::v1::CreateSessionRequest;
use cap_sandbox_client::{GrpcSandbox, MAX_MESSAGE_BYTES, SandboxApi as _};
use cap_testkit::git::BareRepo;
use cap_testkit::{ScriptStep, ScriptedModel};
use clap::Parser;
use pretty_assertions::assert_eq;
use tonic::Code;
use tonic::transport::Channel;

struct Fleet {
    _dir: tempfile::TempDir,
    pki: Pki,
    sandbox_url: String,
    bare: String,
    commit: String,
}

impl Fleet {
    /// A repository and the sandbox service.
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = BareRepo::new(dir.path(), &[("hello.py", "print('hello')\n")]);

        let pki = Pki::ensure_dev(dir.path().join("pki")).unwrap();
        let (sandbox_url, _sandbox_server) =
            cap_sandbox_server::spawn_local(dir.path().join("sessions"), &pki)
                .await
                .unwrap();
        Self {
            pki,
            sandbox_url,
            bare: repo.url(),
            commit: repo.commit,
            _dir: dir,
        }
    }

    async fn session(&self) -> String {
        let tls = self.pki.service("supervisor").unwrap();
        let client = GrpcSandbox::new(tls.channel(&self.sandbox_url).unwrap(), MAX_MESSAGE_BYTES);
        client
            .create_session(CreateSessionRequest {
                image: String::new(),
                repo_url: self.bare.clone(),
                commit_sha: self.commit.clone(),
            })
            .await
            .unwrap()
            .session_id
    }

    /// Starts the coding agent talking to `model_base_url`; returns a supervisor's client.
    async fn coding_agent(&self, model_base_url: &str) -> AgentOrchestratorClient<Channel> {
        self.coding_agent_at(model_base_url).await.0
    }

    /// [`Fleet::coding_agent`], with the address it listens on.
    async fn coding_agent_at(
        &self,
        model_base_url: &str,
    ) -> (AgentOrchestratorClient<Channel>, SocketAddr) {
        let pki_dir = self.pki.dir().display().to_string();
        let sandbox_url = self.sandbox_url.clone();
        let config = Config::try_parse_from([
            "cap-coding-agent",
            "--pki-dir",
            &pki_dir,
            "--sandbox-url",
            &sandbox_url,
            "--model-base-url",
            model_base_url,
            "--max-steps",
            "5",
        ])
        .unwrap();
        let listener = cap_runtime::bind("127.0.0.1:0".parse().unwrap(), None)
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(cap_coding_agent::serve(config, listener));
        let tls = self.pki.service("supervisor").unwrap();
        (
            AgentOrchestratorClient::new(tls.channel(&cap_runtime::https_url(addr)).unwrap()),
            addr,
        )
    }
}

fn request(task_id: &str, session_id: &str) -> TaskRequest {
    TaskRequest {
        task_id: task_id.to_owned(),
        repo: Some(RepositoryContext {
            repository_id: "local/hello".to_owned(),
            sandbox_session_id: session_id.to_owned(),
            ..RepositoryContext::default()
        }),
        objective: "Greet the world.".to_owned(),
        tools: vec![],
        context: None,
    }
}

fn kind(event: &TaskEvent) -> String {
    assert_eq!(event.agent, "coding");
    match event.payload.as_ref().unwrap() {
        task_event::Payload::Thought(_) => "thought".to_owned(),
        task_event::Payload::Action(a) => format!("action {}", a.tool),
        task_event::Payload::Observation(o) => {
            format!("observation {} error={}", o.tool, o.is_error)
        }
        task_event::Payload::Checkpoint(c) => format!("checkpoint {}", c.kind().name()),
        task_event::Payload::Error(e) => format!("error {}", e.severity),
        task_event::Payload::Status(s) => format!("status {}", s.status),
    }
}

/// Reads the stream to its end: the events, then how it ended.
async fn drain(
    mut stream: tonic::Streaming<TaskEvent>,
) -> (Vec<String>, Result<(), tonic::Status>) {
    let mut kinds = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(event)) => kinds.push(kind(&event)),
            Ok(None) => return (kinds, Ok(())),
            Err(status) => return (kinds, Err(status)),
        }
    }
}

#[tokio::test]
async fn executes_a_task_and_reports_status() {
    let fleet = Fleet::start().await;
    let session = fleet.session().await;
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_call(
            "edit_file",
            r#"{"path": "hello.py", "old_string": "hello", "new_string": "hello, world"}"#,
        ),
        ScriptStep::tool_call("run_command", r#"{"cmd": "python3 hello.py"}"#),
        ScriptStep::text("It greets the world."),
    ])
    .await
    .unwrap();
    let mut client = fleet.coding_agent(&model.base_url()).await;

    let status = client
        .get_agent_status(AgentId {
            agent: "coding".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.state.as_str(), status.tasks_completed), ("idle", 0));

    let stream = client
        .execute_task(request("t-1", &session))
        .await
        .unwrap()
        .into_inner();
    let (kinds, end) = drain(stream).await;
    assert_eq!(
        kinds,
        vec![
            "action edit_file",
            "observation edit_file error=false",
            "action run_command",
            "observation run_command error=false",
            "thought",
            "checkpoint agent_finished",
        ]
    );
    assert!(end.is_ok(), "{end:?}");
    // The command saw the edit.
    let second = &model.requests()[2]["messages"];
    let tool_result = second.as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(tool_result.contains("hello, world"), "{tool_result}");

    let status = client
        .get_agent_status(AgentId::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.agent, "coding");
    assert_eq!(status.state, "idle");
    assert!(status.running_task_ids.is_empty());
    assert_eq!(status.tasks_completed, 1);
    let err = client
        .get_agent_status(AgentId {
            agent: "testing".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn refuses_invalid_requests() {
    let fleet = Fleet::start().await;
    let model = ScriptedModel::start(vec![]).await.unwrap();
    let mut client = fleet.coding_agent(&model.base_url()).await;
    let cases = [
        (
            TaskRequest {
                objective: " ".into(),
                ..request("t", "s")
            },
            "invalid task request: objective is empty",
        ),
        (
            request("t", ""),
            "invalid task request: repo.sandbox_session_id is empty",
        ),
        (
            TaskRequest {
                repo: None,
                ..request("t", "s")
            },
            "invalid task request: repo.sandbox_session_id is empty",
        ),
    ];
    for (request, message) in cases {
        let err = client.execute_task(request).await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::InvalidArgument, message)
        );
    }
    let err = client.interrupt_task(TaskId::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let ack = client
        .interrupt_task(TaskId {
            task_id: "nope".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!ack.accepted);
    assert_eq!(ack.message, "task nope is not running on the coding agent");
    assert!(model.requests().is_empty());
}

#[tokio::test]
async fn failures_end_the_stream_with_a_status() {
    let fleet = Fleet::start().await;
    let session = fleet.session().await;
    let model = ScriptedModel::start(vec![ScriptStep::HttpError {
        status: 400,
        message: Some("bad model".into()),
    }])
    .await
    .unwrap();
    let mut client = fleet.coding_agent(&model.base_url()).await;
    let stream = client
        .execute_task(request("t-model", &session))
        .await
        .unwrap()
        .into_inner();
    let (kinds, end) = drain(stream).await;
    assert_eq!(kinds, vec!["error error"]);
    let status = end.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.message(),
        "the model endpoint failed: model endpoint answered HTTP 400: bad model"
    );

    // A session the sandbox does not know.
    let stream = client
        .execute_task(request("t-session", "00000000-0000-4000-8000-000000000000"))
        .await
        .unwrap()
        .into_inner();
    let (kinds, end) = drain(stream).await;
    assert_eq!(kinds, vec!["error error"]);
    assert_eq!(end.unwrap_err().code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn interrupts_a_running_task() {
    let fleet = Fleet::start().await;
    let session = fleet.session().await;
    // A model endpoint that accepts connections and never answers: the task waits on it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let mut client = fleet
        .coding_agent(&format!("http://{silent_addr}/v1"))
        .await;

    let stream = client
        .execute_task(request("t-long", &session))
        .await
        .unwrap()
        .into_inner();
    // Registered before ExecuteTask answered.
    let status = client
        .get_agent_status(AgentId::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.state, "busy");
    assert_eq!(status.running_task_ids, vec!["t-long"]);
    let err = client
        .execute_task(request("t-long", &session))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);

    let ack = client
        .interrupt_task(TaskId {
            task_id: "t-long".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ack.accepted, "{}", ack.message);
    let (kinds, end) = drain(stream).await;
    assert_eq!(kinds, vec!["checkpoint interrupted"]);
    assert!(end.is_ok(), "{end:?}");

    let status = client
        .get_agent_status(AgentId::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.state, "idle");
    assert_eq!(status.tasks_completed, 1);
    let ack = client
        .interrupt_task(TaskId {
            task_id: "t-long".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!ack.accepted);
}

#[tokio::test]
async fn serves_health_over_mtls() {
    let fleet = Fleet::start().await;
    let model = ScriptedModel::start(vec![]).await.unwrap();
    let (_, addr) = fleet.coding_agent_at(&model.base_url()).await;
    let tls = fleet.pki.service("supervisor").unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        tls.channel(&cap_runtime::https_url(addr)).unwrap(),
    );
    let response = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "cap.agent.v1.AgentOrchestrator".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        response.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
}
