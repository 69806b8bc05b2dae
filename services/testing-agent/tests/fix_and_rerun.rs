//! The loop the supervisor drives, on real parts: the testing agent finds a failing test in
//! a fixture repository, the coding agent (driven by the scripted model over HTTP) fixes the
//! code in the same sandbox session, and the testing agent's re-run passes. For Python
//! (pytest, with its coverage threshold checked) and TypeScript (Vitest).

// Setup helpers outside `#[test]` functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use cap_agent::{AgentConfig, CodingAgent, Finish};
use cap_llm::{ModelConfig, RetryPolicy};
use cap_mtls::Pki;
use cap_proto::agent::v1::agent_orchestrator_client::AgentOrchestratorClient;
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::agent::v1::{Checkpoint, RepositoryContext, TaskRequest};
use cap_proto::sandbox::v1::CreateSessionRequest;
use cap_proto::sandbox::v1::sandbox_client::SandboxClient;
use cap_testkit::git::BareRepo;
use cap_testkit::{ScriptStep, ScriptedModel};
use cap_testrun::{Outcome, TestRun};
use clap::Parser;
use pretty_assertions::assert_eq;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Where `scripts/deps.d/20-testing.sh` installs Vitest.
const NODE_CACHE: &str = "/var/cache/cap-testing/node/node_modules";

struct Fleet {
    _dir: tempfile::TempDir,
    testing: AgentOrchestratorClient<Channel>,
    /// The coding agent's own client of the sandbox.
    sandbox: SandboxClient<Channel>,
    session_id: String,
}

impl Fleet {
    /// The sandbox and the testing agent served over mTLS, and a session on the fixture.
    async fn start(fixture: &str, with_node_modules: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures/testing")
                .join(fixture),
            &work,
        );
        if with_node_modules {
            assert!(
                Path::new(NODE_CACHE).join("vitest/package.json").is_file(),
                "vitest is not installed in {NODE_CACHE}; run scripts/deps.d/20-testing.sh"
            );
            copy_dir(Path::new(NODE_CACHE), &work.join("node_modules"));
        }
        let repo = BareRepo::of_tree(dir.path(), &work);
        let (repo_url, commit_sha) = (repo.url(), repo.commit);

        let pki_dir = dir.path().join("pki");
        let pki = Pki::ensure_dev(&pki_dir).unwrap();
        let (sandbox_url, _sandbox_server) =
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
            "300",
        ])
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let agent_url = cap_runtime::https_url(listener.local_addr().unwrap());
        tokio::spawn(cap_testing_agent::serve(config, listener));

        let supervisor = pki.service("supervisor").unwrap();
        let coding = pki.service("coding-agent").unwrap();
        let mut sandbox = SandboxClient::new(coding.channel(&sandbox_url).unwrap());
        let session_id = sandbox
            .create_session(CreateSessionRequest {
                image: String::new(),
                repo_url,
                commit_sha,
            })
            .await
            .unwrap()
            .into_inner()
            .session_id;
        Self {
            _dir: dir,
            testing: AgentOrchestratorClient::new(supervisor.channel(&agent_url).unwrap()),
            sandbox,
            session_id,
        }
    }

    fn request(&self, task_id: &str, objective: &str) -> TaskRequest {
        TaskRequest {
            task_id: task_id.to_owned(),
            repo: Some(RepositoryContext {
                repository_id: "acme/calculator".to_owned(),
                sandbox_session_id: self.session_id.clone(),
                ..RepositoryContext::default()
            }),
            objective: objective.to_owned(),
            tools: Vec::new(),
            context: None,
        }
    }

    /// The testing agent's final checkpoint and run.
    async fn test(&mut self, task_id: &str) -> (Checkpoint, TestRun) {
        let mut stream = self
            .testing
            .execute_task(self.request(task_id, "Run the repository's tests"))
            .await
            .unwrap()
            .into_inner();
        let mut last = None;
        while let Some(event) = stream.message().await.unwrap() {
            last = event.payload;
        }
        let Some(Payload::Checkpoint(checkpoint)) = last else {
            panic!("the stream ends with a checkpoint: {last:#?}");
        };
        let run = serde_json::from_str(&checkpoint.state_json).unwrap();
        (checkpoint, run)
    }

    /// The coding agent, driven by `script`, works on `objective` in the same session.
    async fn code(&self, script: Vec<ScriptStep>, objective: &str) -> cap_agent::Outcome {
        let model = ScriptedModel::start(script).await.unwrap();
        let mut config = AgentConfig::new(
            ModelConfig {
                base_url: model.base_url(),
                api_key: None,
                model: "qwen2.5-coder".to_owned(),
                timeout: Duration::from_secs(30),
                ..ModelConfig::default()
            },
            10,
        );
        config.retry = RetryPolicy {
            max_attempts: 1,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        };
        config.test_timeout = Duration::from_secs(300);
        let agent = CodingAgent::new(
            config,
            std::sync::Arc::new(cap_sandbox_client::GrpcSandbox::from(self.sandbox.clone())),
        )
        .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(256);
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let outcome = agent
            .run(
                self.request("task-fix", objective),
                tx,
                CancellationToken::new(),
                cap_agent_server::Steering::none(),
            )
            .await
            .unwrap();
        drain.await.unwrap();
        assert_eq!(model.remaining(), 0, "the script is played to its end");
        outcome
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), target).unwrap();
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The scripted model's fix: read the file, replace the buggy `sub`, run the tests, answer.
fn fix_script(path: &str, old: &str, new: &str) -> Vec<ScriptStep> {
    vec![
        ScriptStep::tool_call("read_file", json!({ "path": path }).to_string()),
        ScriptStep::tool_call(
            "edit_file",
            json!({ "path": path, "old_string": old, "new_string": new }).to_string(),
        ),
        ScriptStep::tool_call("run_tests", "{}"),
        ScriptStep::text("sub() added instead of subtracting; fixed. The tests pass."),
    ]
}

#[tokio::test]
async fn python_failing_test_fixed_by_the_coding_agent_then_passes() {
    let mut fleet = Fleet::start("python-calculator", false).await;
    let (checkpoint, run) = fleet.test("task-test-1").await;
    assert_eq!(
        (checkpoint.kind().name(), run.outcome, run.failed),
        ("tests_failed", Outcome::Failed, 1)
    );
    let failing: Vec<&str> = run
        .cases
        .iter()
        .filter(|c| c.outcome == "failed")
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(failing, ["tests.test_calc.test_sub"]);

    let outcome = fleet
        .code(
            fix_script(
                "calc.py",
                "def sub(a, b):\n    return a + b",
                "def sub(a, b):\n    return a - b",
            ),
            &format!("Fix the failing test.\n{}", checkpoint.description),
        )
        .await;
    assert_eq!(outcome.finish, Finish::Finished);
    assert_eq!(outcome.files_changed.len(), 1);

    let (checkpoint, run) = fleet.test("task-test-2").await;
    assert_eq!(
        (
            checkpoint.kind().name(),
            run.outcome,
            run.passed,
            run.failed
        ),
        ("tests_passed", Outcome::Passed, 3, 0),
        "{}",
        checkpoint.description
    );
    // The repository sets `fail_under = 80`: coverage was measured and met.
    assert!(
        checkpoint
            .description
            .contains("coverage 100.00% -> 100.00% (+0.00 points), threshold 80.00% met"),
        "{}",
        checkpoint.description
    );
}

#[tokio::test]
async fn typescript_failing_test_fixed_by_the_coding_agent_then_passes() {
    let mut fleet = Fleet::start("ts-calculator", true).await;
    let (checkpoint, run) = fleet.test("task-test-1").await;
    assert_eq!(
        (checkpoint.kind().name(), run.outcome, run.failed),
        ("tests_failed", Outcome::Failed, 1),
        "{}",
        run.output_tail
    );
    let failing: Vec<(&str, &str)> = run
        .cases
        .iter()
        .filter(|c| c.outcome == "failed")
        .map(|c| (c.name.as_str(), c.file.as_str()))
        .collect();
    assert_eq!(failing, [("calc subtracts", "src/calc.test.ts")]);

    let outcome = fleet
        .code(
            fix_script(
                "src/calc.ts",
                "export function sub(a: number, b: number): number {\n  return a + b;",
                "export function sub(a: number, b: number): number {\n  return a - b;",
            ),
            &format!("Fix the failing test.\n{}", checkpoint.description),
        )
        .await;
    assert_eq!(outcome.finish, Finish::Finished);

    let (checkpoint, run) = fleet.test("task-test-2").await;
    assert_eq!(
        (
            checkpoint.kind().name(),
            run.outcome,
            run.passed,
            run.failed
        ),
        ("tests_passed", Outcome::Passed, 2, 0),
        "{}",
        checkpoint.description
    );
}
