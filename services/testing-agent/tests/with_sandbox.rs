//! The testing agent and the real sandbox service (bubblewrap), both served in-process over
//! mutual TLS on port 0, running a real pytest suite from a real git repository.

// Setup helpers outside `#[test]` functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cap_mtls::Pki;
use cap_proto::agent::v1::agent_orchestrator_client::AgentOrchestratorClient;
use cap_proto::agent::v1::observation::Detail;
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::agent::v1::{
    AgentId, Checkpoint, RepositoryContext, TaskEvent, TaskId, TaskRequest,
};
use cap_proto::sandbox::v1::CreateSessionRequest;
use cap_proto::sandbox::v1::sandbox_client::SandboxClient;
use cap_testkit::git::BareRepo;
use cap_testrun::{Outcome, TestRun};
use clap::Parser;
use pretty_assertions::assert_eq;
use tonic::Streaming;
use tonic::transport::Channel;

const CALC: &str = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a + b\n";

const CALC_TESTS: &str = "from calc import add, sub\n\n\n\
                          def test_add():\n    assert add(2, 3) == 5\n\n\n\
                          def test_sub():\n    assert sub(3, 1) == 2\n";

struct Fleet {
    dir: tempfile::TempDir,
    agent: AgentOrchestratorClient<Channel>,
    sandbox: SandboxClient<Channel>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
    }
}

impl Fleet {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki_dir = dir.path().join("pki");
        let pki = Pki::ensure_dev(&pki_dir).unwrap();

        let (sandbox_url, sandbox_server) =
            cap_sandbox_server::spawn_local(dir.path().join("sessions"), &pki)
                .await
                .unwrap();

        let config = cap_testing_agent::Config::try_parse_from([
            "cap-testing-agent",
            "--pki-dir",
            pki_dir.to_str().unwrap(),
            "--sandbox-url",
            &sandbox_url,
            "--test-timeout-seconds",
            "120",
        ])
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let agent_url = cap_runtime::https_url(listener.local_addr().unwrap());
        let agent_server = tokio::spawn(async move {
            cap_testing_agent::serve(config, listener).await.unwrap();
        });

        let supervisor = pki.service("supervisor").unwrap();
        Self {
            dir,
            agent: AgentOrchestratorClient::new(supervisor.channel(&agent_url).unwrap()),
            sandbox: SandboxClient::new(supervisor.channel(&sandbox_url).unwrap()),
            servers: vec![sandbox_server, agent_server],
        }
    }

    /// A sandbox session on a one-commit repository holding `files`.
    async fn session(&mut self, files: &[(&str, &str)]) -> String {
        let repo = BareRepo::new(
            &self.dir.path().join(format!("repo-{}", unique_name())),
            files,
        );
        let (repo_url, commit_sha) = (repo.url(), repo.commit);
        self.sandbox
            .create_session(CreateSessionRequest {
                image: String::new(),
                repo_url,
                commit_sha,
            })
            .await
            .unwrap()
            .into_inner()
            .session_id
    }

    async fn execute(&mut self, request: TaskRequest) -> Streaming<TaskEvent> {
        self.agent.execute_task(request).await.unwrap().into_inner()
    }
}

fn task(task_id: &str, session_id: &str, test_command: &str) -> TaskRequest {
    TaskRequest {
        task_id: task_id.into(),
        repo: Some(RepositoryContext {
            repository_id: "acme/calc".into(),
            sandbox_session_id: session_id.into(),
            test_command: test_command.into(),
            ..Default::default()
        }),
        objective: "Run the repository's tests".into(),
        tools: Vec::new(),
        context: None,
    }
}

/// Every event of a stream that ends OK.
async fn all_events(mut stream: Streaming<TaskEvent>) -> Vec<Payload> {
    let mut events = Vec::new();
    while let Some(event) = stream.message().await.unwrap() {
        assert_eq!(event.agent, "testing");
        assert!(event.created_at_ms > 0);
        events.push(event.payload.unwrap());
    }
    events
}

fn final_checkpoint(events: &[Payload]) -> (&Checkpoint, TestRun) {
    let Some(Payload::Checkpoint(checkpoint)) = events.last() else {
        panic!("a checkpoint ends the stream: {events:#?}");
    };
    (
        checkpoint,
        serde_json::from_str(&checkpoint.state_json).unwrap(),
    )
}

/// The checkpoint state's `problem` and `framework` fields.
fn problem_and_framework(checkpoint: &Checkpoint) -> (serde_json::Value, serde_json::Value) {
    let state: serde_json::Value = serde_json::from_str(&checkpoint.state_json).unwrap();
    (state["problem"].clone(), state["framework"].clone())
}

/// A name no other repository of the test has.
fn unique_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

#[tokio::test]
async fn failing_tests_are_a_result_not_an_error() {
    let mut fleet = Fleet::start().await;
    let session = fleet
        .session(&[("calc.py", CALC), ("tests/test_calc.py", CALC_TESTS)])
        .await;
    let events = all_events(fleet.execute(task("task-1", &session, "")).await).await;
    assert_eq!(events.len(), 4, "{events:#?}");

    let Payload::Thought(thought) = &events[0] else {
        panic!("thought first: {events:#?}")
    };
    assert_eq!(
        thought.reasoning,
        "I will run `python3 -m pytest` because it is the pytest runner detected from the \
         repository's files."
    );
    let Payload::Action(action) = &events[1] else {
        panic!("action second: {events:#?}")
    };
    assert_eq!(
        (
            action.call_id.as_str(),
            action.tool.as_str(),
            action.arguments_json.as_str()
        ),
        ("task-1:run_tests", "run_tests", r#"{"test_pattern":null}"#)
    );
    let Payload::Observation(observation) = &events[2] else {
        panic!("observation: {events:#?}")
    };
    assert_eq!(
        (observation.call_id.as_str(), observation.is_error),
        ("task-1:run_tests", false)
    );
    let Some(Detail::CommandExecuted(executed)) = &observation.detail else {
        panic!("command detail expected: {observation:#?}");
    };
    assert_eq!(
        (executed.command.as_str(), executed.exit_code),
        ("python3 -m pytest", 1)
    );
    assert!(
        executed.stdout_snippet.contains("1 failed, 1 passed"),
        "{}",
        executed.stdout_snippet
    );
    assert!(
        observation
            .content
            .contains("failing: tests.test_calc.test_sub"),
        "{}",
        observation.content
    );

    let (checkpoint, run) = final_checkpoint(&events);
    assert_eq!(checkpoint.kind().name(), "tests_failed");
    assert_eq!(
        (run.outcome, run.passed, run.failed),
        (Outcome::Failed, 1, 1)
    );
    let names: Vec<&str> = run.cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["tests.test_calc.test_add", "tests.test_calc.test_sub"]
    );

    let status = fleet
        .agent
        .get_agent_status(AgentId::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.state.as_str(), status.tasks_completed), ("idle", 1));
}

#[tokio::test]
async fn patterns_and_configured_commands() {
    let mut fleet = Fleet::start().await;
    let session = fleet
        .session(&[("calc.py", CALC), ("tests/test_calc.py", CALC_TESTS)])
        .await;

    let mut request = task("task-2", &session, "");
    request.context.get_or_insert_default().test_pattern = "test_add".into();
    let events = all_events(fleet.execute(request).await).await;
    let Payload::Action(action) = &events[1] else {
        panic!("action: {events:#?}")
    };
    assert_eq!(action.arguments_json, r#"{"test_pattern":"test_add"}"#);
    let (checkpoint, run) = final_checkpoint(&events);
    assert_eq!(
        (checkpoint.kind().name(), run.command.as_str()),
        ("tests_passed", "python3 -m pytest -k test_add")
    );

    let configured = task(
        "task-3",
        &session,
        "python3 -m pytest -q tests/test_calc.py::test_add",
    );
    let events = all_events(fleet.execute(configured).await).await;
    let Payload::Thought(thought) = &events[0] else {
        panic!("thought: {events:#?}")
    };
    assert!(
        thought.reasoning.contains("configured for the repository"),
        "{}",
        thought.reasoning
    );
    let (checkpoint, run) = final_checkpoint(&events);
    assert_eq!(
        (checkpoint.kind().name(), run.outcome),
        ("tests_passed", Outcome::Passed)
    );
}

#[tokio::test]
async fn a_repository_without_tests_has_no_tests() {
    let mut fleet = Fleet::start().await;
    let session = fleet.session(&[("README.md", "# docs only\n")]).await;
    let events = all_events(fleet.execute(task("task-4", &session, "")).await).await;
    assert_eq!(events.len(), 2, "{events:#?}");
    let (checkpoint, run) = final_checkpoint(&events);
    assert_eq!(
        (checkpoint.kind().name(), run.outcome),
        ("no_tests", Outcome::NoTests)
    );
    assert_eq!(
        problem_and_framework(checkpoint),
        (serde_json::json!("no_tests"), serde_json::Value::Null)
    );
}

#[tokio::test]
async fn a_missing_runner_fails_the_tests_with_a_clear_message() {
    let mut fleet = Fleet::start().await;
    let session = fleet.session(&[("README.md", "x\n")]).await;
    let events = all_events(
        fleet
            .execute(task("task-5", &session, "no-such-runner"))
            .await,
    )
    .await;
    let Payload::Observation(observation) = &events[2] else {
        panic!("observation: {events:#?}")
    };
    assert!(observation.is_error);
    let (checkpoint, run) = final_checkpoint(&events);
    assert_eq!(
        (checkpoint.kind().name(), run.outcome, run.exit_code),
        ("tests_failed", Outcome::Error, 127)
    );
    assert_eq!(
        problem_and_framework(checkpoint),
        (
            serde_json::json!("runner_missing"),
            serde_json::json!("custom")
        )
    );
    assert!(
        run.output_tail.contains("not found in the sandbox"),
        "{}",
        run.output_tail
    );
}

#[tokio::test]
async fn an_unknown_session_ends_the_stream_with_an_error() {
    let mut fleet = Fleet::start().await;
    let mut stream = fleet
        .execute(task("task-6", "00000000-0000-0000-0000-000000000000", ""))
        .await;
    let event = stream.message().await.unwrap().unwrap();
    let Some(Payload::Error(report)) = event.payload else {
        panic!("error report: {event:#?}")
    };
    assert!(!report.recoverable);
    let status = stream.message().await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert!(
        status.message().contains("sandbox ListDirectory failed"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn interrupting_a_running_task_stops_its_command() {
    let mut fleet = Fleet::start().await;
    let session = fleet.session(&[("README.md", "x\n")]).await;
    let mut stream = fleet.execute(task("task-7", &session, "sleep 600")).await;
    // The Action comes right before the command starts.
    for expected in ["thought", "action"] {
        let event = stream.message().await.unwrap().unwrap();
        let kind = match event.payload {
            Some(Payload::Thought(_)) => "thought",
            Some(Payload::Action(_)) => "action",
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(kind, expected);
    }
    let status = fleet
        .agent
        .get_agent_status(AgentId::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (status.state.as_str(), status.running_task_ids),
        ("busy", vec!["task-7".to_owned()])
    );

    let ack = fleet
        .agent
        .interrupt_task(TaskId {
            task_id: "task-7".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ack.accepted, "{ack:?}");
    let event = stream.message().await.unwrap().unwrap();
    let Some(Payload::Checkpoint(checkpoint)) = event.payload else {
        panic!("checkpoint: {event:#?}")
    };
    assert_eq!(checkpoint.kind().name(), "interrupted");
    assert!(stream.message().await.unwrap().is_none());

    let status = fleet
        .agent
        .get_agent_status(AgentId::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.state.as_str(), status.tasks_completed), ("idle", 1));
    // The sandbox is free again: the killed command does not hold the session.
    let events = all_events(fleet.execute(task("task-8", &session, "true")).await).await;
    assert_eq!(checkpoint_kind(&events), "tests_passed");
}

fn checkpoint_kind(events: &[Payload]) -> &str {
    match events.last() {
        Some(Payload::Checkpoint(checkpoint)) => checkpoint.kind().name(),
        other => panic!("checkpoint expected: {other:?}"),
    }
}

const FIXED_CALC: &str = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n";

const PYPROJECT: &str = "[tool.pytest.ini_options]\npythonpath = [\".\"]\n\n\
                         [tool.coverage.run]\nomit = [\"tests/*\"]\n\n\
                         [tool.coverage.report]\nfail_under = 80\n";

impl Fleet {
    async fn write(&mut self, session_id: &str, path: &str, content: &str) {
        use cap_proto::common::v1::FileChange;
        use cap_proto::common::v1::file_change::Change;
        self.sandbox
            .write_files(cap_proto::sandbox::v1::WriteFilesRequest {
                session_id: session_id.to_owned(),
                changes: vec![FileChange {
                    path: path.to_owned(),
                    change: Some(Change::Content(content.as_bytes().to_vec())),
                }],
            })
            .await
            .unwrap();
    }
}

/// FR-006: passing tests are not enough when the change takes coverage below the
/// repository's `fail_under`; the checkpoint carries the numbers.
#[tokio::test]
async fn a_change_dropping_coverage_below_the_threshold_fails_with_the_numbers() {
    let mut fleet = Fleet::start().await;
    let files = [
        ("calc.py", FIXED_CALC),
        ("tests/test_calc.py", CALC_TESTS),
        ("pyproject.toml", PYPROJECT),
    ];
    let session = fleet.session(&files).await;
    let untested = format!(
        "{FIXED_CALC}\n\ndef div(a, b):\n    if b == 0:\n        raise ZeroDivisionError(\"b\")\n    \
         q = a / b\n    r = a % b\n    return q, r\n"
    );
    fleet.write(&session, "calc.py", &untested).await;
    let events = all_events(fleet.execute(task("task-cov", &session, "")).await).await;
    let tools: Vec<(&str, bool)> = events
        .iter()
        .filter_map(|e| match e {
            Payload::Action(a) => Some((a.tool.as_str(), false)),
            Payload::Observation(o) => Some((o.tool.as_str(), o.is_error)),
            _ => None,
        })
        .collect();
    assert_eq!(
        tools,
        [
            ("run_tests", false),
            ("run_tests", false),
            ("measure_coverage", false),
            ("measure_coverage", true)
        ],
        "{events:#?}"
    );
    let (checkpoint, run) = final_checkpoint(&events);
    assert_eq!(
        (checkpoint.kind().name(), run.outcome),
        ("tests_failed", Outcome::Passed)
    );
    assert!(
        checkpoint.description.contains(
            "coverage 100.00% -> 50.00% (-50.00 points), below the repository's threshold \
             of 80.00%\n  calc.py: 100.00% -> 50.00% (-50.00)"
        ),
        "{}",
        checkpoint.description
    );
    let state: serde_json::Value = serde_json::from_str(&checkpoint.state_json).unwrap();
    assert_eq!(state["coverage"]["below_threshold"], true);
    assert_eq!(state["coverage"]["threshold"], 80.0);
    assert_eq!(state["coverage"]["after"], 50.0);

    // Without the change the same suite keeps its coverage and passes; asking for no
    // coverage skips the measurement.
    let session = fleet.session(&files).await;
    let events = all_events(fleet.execute(task("task-cov-2", &session, "")).await).await;
    let (checkpoint, _) = final_checkpoint(&events);
    assert_eq!(checkpoint.kind().name(), "tests_passed", "{events:#?}");
    let state: serde_json::Value = serde_json::from_str(&checkpoint.state_json).unwrap();
    assert_eq!(state["coverage"]["delta"], 0.0);
    let mut request = task("task-cov-3", &session, "");
    request.context.get_or_insert_default().coverage = Some(false);
    let events = all_events(fleet.execute(request).await).await;
    assert_eq!(events.len(), 4, "{events:#?}");
}

/// FR-005: the repository's formatter is applied to the changed files and its linters'
/// violations fail the task with the findings, so they go back to the coding agent.
#[tokio::test]
async fn formatters_apply_and_lint_violations_go_back() {
    let mut fleet = Fleet::start().await;
    let pyproject = "[tool.pytest.ini_options]\npythonpath = [\".\"]\n\n[tool.black]\n\n\
                     [tool.pylint.\"messages control\"]\n\
                     disable = [\"missing-module-docstring\", \"missing-function-docstring\", \
                     \"invalid-name\"]\n";
    let files = [
        ("calc.py", FIXED_CALC),
        ("tests/test_calc.py", CALC_TESTS),
        ("pyproject.toml", pyproject),
    ];
    let session = fleet.session(&files).await;
    fleet
        .write(
            &session,
            "calc.py",
            "import os\ndef add(a,b):\n    return a+b\n\n\ndef sub(a, b):\n    return a - b\n",
        )
        .await;
    let events = all_events(fleet.execute(task("task-lint", &session, "")).await).await;
    let Some(Payload::Observation(linted)) = events.iter().rev().nth(1) else {
        panic!("the linters' observation before the checkpoint: {events:#?}");
    };
    assert_eq!(
        (linted.tool.as_str(), linted.is_error),
        ("run_linter", true)
    );
    let (checkpoint, run) = final_checkpoint(&events);
    assert_eq!(
        (checkpoint.kind().name(), run.outcome),
        ("tests_failed", Outcome::Passed)
    );
    assert!(
        checkpoint
            .description
            .contains("lint: 1 violations\n  pylint: calc.py:1:1 unused-import Unused import os"),
        "{}",
        checkpoint.description
    );
    // black reformatted the file in the workspace.
    let formatted = fleet
        .sandbox
        .read_file(cap_proto::sandbox::v1::ReadFileRequest {
            session_id: session.clone(),
            path: "calc.py".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .content;
    assert_eq!(
        String::from_utf8(formatted).unwrap(),
        "import os\n\n\ndef add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
    );
    let state: serde_json::Value = serde_json::from_str(&checkpoint.state_json).unwrap();
    assert_eq!(state["lint"]["formatted"][0]["tool"], "black");
    assert_eq!(
        state["lint"]["runs"][0]["violations"],
        serde_json::json!([])
    );
}

/// UC-03: with `regression_test_files` in the context the agent proves the regression test
/// fails on the base checkout and passes with the fix; a test that never failed is no proof.
#[tokio::test]
async fn regression_tests_are_proven_before_and_after_the_fix() {
    let mut fleet = Fleet::start().await;
    // The base has the bug (sub adds); the workspace gets the fix and the regression test.
    let session = fleet
        .session(&[
            ("calc.py", CALC),
            (
                "tests/test_add.py",
                "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
            ),
            ("pytest.ini", "[pytest]\npythonpath = .\n"),
        ])
        .await;
    fleet.write(&session, "calc.py", FIXED_CALC).await;
    fleet
        .write(
            &session,
            "tests/test_regression.py",
            "from calc import sub\n\n\ndef test_sub():\n    assert sub(3, 1) == 2\n",
        )
        .await;
    let mut request = task("task-reg", &session, "");
    request
        .context
        .get_or_insert_default()
        .regression_test_files = vec!["tests/test_regression.py".into()];
    let events = all_events(fleet.execute(request).await).await;
    let (checkpoint, _) = final_checkpoint(&events);
    assert_eq!(
        checkpoint.kind().name(),
        "tests_passed",
        "{}",
        checkpoint.description
    );
    assert!(
        checkpoint
            .description
            .contains("regression test proven: it fails before the fix and passes after it"),
        "{}",
        checkpoint.description
    );
    let state: serde_json::Value = serde_json::from_str(&checkpoint.state_json).unwrap();
    assert_eq!(state["regression"]["proven"], true);
    assert_eq!(state["regression"]["before"]["outcome"], "failed");

    // A "regression test" that passes on the buggy base proves nothing: the task fails.
    let mut request = task("task-reg-2", &session, "");
    let context = request.context.get_or_insert_default();
    context.regression_test_files = vec!["tests/test_add.py".into()];
    context.regression_test_pattern = "tests/test_add.py".into();
    let events = all_events(fleet.execute(request).await).await;
    let (checkpoint, run) = final_checkpoint(&events);
    assert_eq!(
        (checkpoint.kind().name(), run.outcome),
        ("tests_failed", Outcome::Passed)
    );
    assert!(
        checkpoint
            .description
            .contains("regression test NOT proven"),
        "{}",
        checkpoint.description
    );
}
