//! Chaos: every service killed with SIGKILL mid-task (the supervisor at each node, before it
//! recorded its commit and before it recorded its pull request), PostgreSQL stopped mid-task, and two supervisor replicas
//! with one killed. Each task must end completed, with its events numbered 1..=n (no gap, no
//! duplicate, every event seen before the crash still there), exactly one branch in the forge
//! and exactly one pull request.
//!
//! The moment to strike is found through the task's events on the gateway. The repository's
//! test suite sleeps a while (its `conftest.py`), so a kill at the `run_tests` action lands
//! while the tests run, not after.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cap_proto::agent::v1::agent_orchestrator_client::AgentOrchestratorClient;
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::supervisor::v1::SubmitTaskRequest;
use cap_proto::supervisor::v1::task_service_client::TaskServiceClient;
use cap_testkit::ScriptStep;
use futures::StreamExt;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use sqlx::Connection;

use super::support::*;

/// Upper bound of one chaos task, recoveries included.
const CHAOS_DEADLINE: Duration = Duration::from_secs(50);

/// How long the repository's test suite takes: the window a kill at `run_tests` lands in.
const SUITE_SECONDS: f64 = 1.5;

const PROMPT: &str = "Fix the bug that makes test_add fail.";

/// The calculator fix, then spare final answers. An agent run again after a crash plays on
/// from wherever the script stood; the tests only strike once the edit is in the workspace
/// (at `run_tests` or later), so whichever answer the new run gets ends it with the fix made.
fn chaos_script() -> Vec<ScriptStep> {
    let mut script = load_script("python-calculator.script.json");
    script.extend((0..4).map(|_| ScriptStep::text("Fixed add() in calc.py; the tests pass.")));
    script
}

/// A fleet with the calculator repository (its suite slowed down) in its forge.
struct Chaos {
    fleet: TestFleet,
    repository_id: String,
    bare: PathBuf,
}

impl Chaos {
    async fn start(name: &str, configure: impl FnOnce(&mut cap_fleet::FleetConfig)) -> Self {
        Self::start_scripted(name, chaos_script(), configure).await
    }

    async fn start_scripted(
        name: &str,
        script: Vec<ScriptStep>,
        configure: impl FnOnce(&mut cap_fleet::FleetConfig),
    ) -> Self {
        let fleet = TestFleet::start_with(script, configure).await;
        let repository_id = format!("e2e/chaos-{name}-{}", uuid::Uuid::new_v4().simple());
        let source = tempfile::tempdir().unwrap();
        copy_tree(&fixtures().join("python-calculator"), source.path());
        std::fs::write(
            source.path().join("conftest.py"),
            format!(
                "import time\n\n\ndef pytest_sessionstart(session):\n    time.sleep({SUITE_SECONDS})\n"
            ),
        )
        .unwrap();
        let bare = fleet.create_repository(&repository_id, source.path());
        Self {
            fleet,
            repository_id,
            bare,
        }
    }

    async fn submit(&self) -> String {
        self.fleet.submit(&self.repository_id, PROMPT).await
    }

    /// Waits on the task's WebSocket stream for the first event `matches` accepts.
    async fn wait_for(&self, task_id: &str, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let mut socket = self.fleet.open_stream(task_id).await.unwrap();
        let mut seen = Vec::new();
        let found = tokio::time::timeout(CHAOS_DEADLINE, async {
            while let Some(message) = socket.next().await {
                if let tokio_tungstenite::tungstenite::Message::Text(text) = message.unwrap() {
                    let event: Value = serde_json::from_str(text.as_str()).unwrap();
                    if matches(&event) {
                        return Some(event);
                    }
                    seen.push(event);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(event)) => event,
            Ok(None) => panic!(
                "the task's stream ended before {what}; events: {seen:#?}\n{}",
                self.fleet.logs()
            ),
            Err(_) => panic!(
                "no {what} within {CHAOS_DEADLINE:?}; events: {seen:#?}\n{}",
                self.fleet.logs()
            ),
        }
    }

    /// Asserts that the restarted supervisor resumed the task at `node` (`Plan`, `Execute`,
    /// `Review`): the crash landed where the test meant it to.
    fn assert_resumed_at(&self, node: &str) {
        let path = self.fleet.fleet.config().log_dir().join("supervisor.log");
        let log = strip_ansi(&std::fs::read_to_string(path).unwrap());
        let resumed: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("resuming task"))
            .collect();
        assert!(
            resumed.len() == 1 && resumed[0].contains(&format!("node=Some({node})")),
            "expected one resume at {node}: {resumed:#?}"
        );
    }

    /// Waits until a sandbox workspace's `calc.py` holds the fix.
    async fn wait_for_fix_in_workspace(&self) {
        let sessions = self.fleet.fleet.config().data_dir.join("sandbox");
        for _ in 0..500 {
            let fixed = std::fs::read_dir(&sessions)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| {
                    std::fs::read_to_string(entry.path().join("workspace/calc.py")).ok()
                })
                .any(|calc| calc.contains("return a + b"));
            if fixed {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "the fix never reached a workspace under {}\n{}",
            sessions.display(),
            self.fleet.logs()
        );
    }

    async fn stop(self) {
        self.fleet.stop().await;
    }

    async fn kill_and_restart(&mut self, service: &str) {
        self.fleet.fleet.kill(service).await.unwrap();
        self.fleet.fleet.restart(service).await.unwrap();
    }

    /// Waits for the task to end and checks that it completed with nothing lost or doubled:
    /// events 1..=n, each of `seen` still there as it was, one branch, one pull request
    /// holding the fix. Returns the events.
    async fn assert_completed(&self, task_id: &str, seen: &[Value]) -> Vec<Value> {
        let task = tokio::time::timeout(CHAOS_DEADLINE, self.fleet.wait_for_end(task_id))
            .await
            .unwrap_or_else(|_| panic!("the task did not end\n{}", self.fleet.logs()))
            .unwrap();
        assert_eq!(
            task["status"],
            "completed",
            "task: {task}\n{}",
            self.fleet.logs()
        );
        let events = self.fleet.stream_events(task_id).await.unwrap();
        let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
        for event in seen {
            let seq = event["seq"].as_i64().unwrap();
            assert_eq!(&events[seq as usize - 1], event, "event {seq} changed");
        }
        let last = events.last().unwrap();
        assert_eq!(
            (last["event"].as_str(), last["data"]["status"].as_str()),
            (Some("task_status"), Some("completed"))
        );

        let branch = task["branch"].as_str().unwrap().to_owned();
        assert_eq!(task_branches(&self.bare), vec![branch.clone()]);
        let (status, list) = self
            .fleet
            .get(&format!(
                "/api/v1/pull-requests?repository_id={}",
                self.repository_id
            ))
            .await;
        assert_eq!(status, 200, "{list}");
        let pulls = list["pull_requests"].as_array().unwrap();
        assert_eq!(pulls.len(), 1, "{list}");
        assert_eq!(pulls[0]["pull_request_id"], task["pull_request_id"]);
        assert_eq!(pulls[0]["head_branch"], branch.as_str());
        assert_eq!(pulls[0]["task_id"], task_id);
        let (_, pr) = self
            .fleet
            .get(&format!(
                "/api/v1/pull-requests/{}",
                task["pull_request_id"].as_str().unwrap()
            ))
            .await;
        let diff = pr["diff"].as_str().unwrap();
        assert!(
            diff.contains("-    return a - b\n+    return a + b"),
            "{diff}"
        );
        events
    }
}

/// The task's branches in the bare repository (all but `main`).
fn task_branches(bare: &Path) -> Vec<String> {
    git(
        bare,
        &["for-each-ref", "--format=%(refname:short)", "refs/heads"],
    )
    .lines()
    .filter(|name| *name != "main")
    .map(str::to_owned)
    .collect()
}

/// The task's one branch.
fn branches_of(bare: &Path) -> String {
    task_branches(bare).join(" ")
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The log without its colour codes.
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // `ESC [ ... m`
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Asserts that after the event seen at the crash, a node failed over `service` and waited to
/// run again (the crash was noticed and retried, not fatal).
fn assert_retried(events: &[Value], seen: &Value, service: &str) {
    let from = seen["seq"].as_i64().unwrap() as usize;
    find_event(events, from, "error", |d| {
        d["recoverable"] == true
            && d["message"].as_str().unwrap_or("").contains(service)
            && d["message"].as_str().unwrap_or("").contains("retry 1")
    })
    .unwrap();
}

fn is_status(event: &Value, status: &str) -> bool {
    event["event"] == "task_status" && event["data"]["status"] == status
}

/// The `run_tests` action of `agent` (`coding` or `testing`): its tests run now.
fn runs_tests(event: &Value, agent: &str) -> bool {
    event["event"] == "agent_action"
        && event["data"]["agent"] == agent
        && event["data"]["tool"] == "run_tests"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_killed_at_plan() {
    let mut chaos = Chaos::start("supervisor-plan", |_| {}).await;
    let task_id = chaos.submit().await;
    let seen = chaos
        .wait_for(&task_id, "the plan node's start", |e| {
            is_status(e, "running")
        })
        .await;
    chaos.kill_and_restart("supervisor").await;
    chaos.assert_completed(&task_id, &[seen]).await;
    chaos.assert_resumed_at("Plan");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_killed_at_execute() {
    let mut chaos = Chaos::start("supervisor-execute", |_| {}).await;
    let task_id = chaos.submit().await;
    let seen = chaos
        .wait_for(&task_id, "the coding agent's test run", |e| {
            runs_tests(e, "coding")
        })
        .await;
    chaos.kill_and_restart("supervisor").await;
    chaos.assert_completed(&task_id, &[seen]).await;
    chaos.assert_resumed_at("Execute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_killed_at_review() {
    let mut chaos = Chaos::start("supervisor-review", |_| {}).await;
    let task_id = chaos.submit().await;
    let seen = chaos
        .wait_for(&task_id, "the testing agent's test run", |e| {
            runs_tests(e, "testing")
        })
        .await;
    chaos.kill_and_restart("supervisor").await;
    let events = chaos.assert_completed(&task_id, &[seen]).await;
    chaos.assert_resumed_at("Review");
    // The coding agent's work was kept: the resumed run started at review.
    let finished = events
        .iter()
        .filter(|e| e["event"] == "checkpoint_reached" && e["data"]["type"] == "agent_finished")
        .count();
    assert_eq!(finished, 1);
}

/// The supervisor dies after the forge committed the change, while it asks for the pull
/// request, and the forge opens it after the supervisor is gone: the resumed run must take
/// that pull request as its own instead of failing or opening a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_killed_between_commit_and_pull_request() {
    let mut chaos = Chaos::start("supervisor-commit", |_| {}).await;
    // The forge's store (SQLite) held locked: the pull request's insert waits on it, while
    // branch and commit (git only) go through.
    let forge_db = chaos.fleet.fleet.config().data_dir.join("github.db");
    let mut lock = sqlx::SqliteConnection::connect(&format!("sqlite://{}", forge_db.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .unwrap();

    let task_id = chaos.submit().await;
    let main = git(&chaos.bare, &["rev-parse", "main"]);
    let committed = async {
        loop {
            let branches = task_branches(&chaos.bare);
            if let [branch] = branches.as_slice()
                && git(&chaos.bare, &["rev-parse", branch]) != main
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(CHAOS_DEADLINE, committed)
        .await
        .unwrap_or_else(|_| panic!("the change was never committed\n{}", chaos.fleet.logs()));
    // Long enough for the supervisor to record the commit and ask for the pull request.
    tokio::time::sleep(Duration::from_millis(500)).await;
    chaos.fleet.fleet.kill("supervisor").await.unwrap();
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    lock.close().await.unwrap();

    // The forge opened the pull request for a supervisor that is gone.
    let opened = async {
        loop {
            let (_, list) = chaos
                .fleet
                .get(&format!(
                    "/api/v1/pull-requests?repository_id={}",
                    chaos.repository_id
                ))
                .await;
            if !list["pull_requests"].as_array().unwrap().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), opened)
        .await
        .unwrap_or_else(|_| panic!("the forge opened no pull request\n{}", chaos.fleet.logs()));

    chaos.fleet.fleet.restart("supervisor").await.unwrap();
    chaos.assert_completed(&task_id, &[]).await;
    chaos.assert_resumed_at("Review");
}

/// The supervisor dies after the forge committed the change, before it recorded the commit:
/// the resumed run asks for the same commit again and must be given it, not refused for
/// having nothing left to commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_killed_before_recording_its_commit() {
    let mut chaos = Chaos::start("supervisor-record-commit", |_| {}).await;
    let store = chaos.fleet.fleet.config().data_dir.join("supervisor.db");
    let store_url = format!("sqlite://{}", store.display());
    let mut lock = sqlx::SqliteConnection::connect(&store_url).await.unwrap();
    let task_id = chaos.submit().await;

    // The branch is created from main just before the commit: from then on the supervisor's
    // store is held, so the commit is made but cannot be recorded.
    let main = git(&chaos.bare, &["rev-parse", "main"]);
    let created = async {
        while task_branches(&chaos.bare).is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(CHAOS_DEADLINE, created)
        .await
        .unwrap_or_else(|_| panic!("no branch was created\n{}", chaos.fleet.logs()));
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .unwrap();
    let committed = async {
        loop {
            let branches = task_branches(&chaos.bare);
            if git(&chaos.bare, &["rev-parse", &branches[0]]) != main {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), committed)
        .await
        .unwrap_or_else(|_| panic!("the change was never committed\n{}", chaos.fleet.logs()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    chaos.fleet.fleet.kill("supervisor").await.unwrap();
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();

    // The window was hit: the last checkpoint names the branch but knows no commit.
    let state: String = sqlx::query_scalar(
        "SELECT state_json FROM checkpoints WHERE task_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(&task_id)
    .fetch_one(&mut lock)
    .await
    .unwrap();
    lock.close().await.unwrap();
    let state: Value = serde_json::from_str(&state).unwrap();
    assert_eq!(
        (state["branch"].as_str(), state["head_sha"].as_str()),
        (Some(branches_of(&chaos.bare).as_str()), Some("")),
        "the supervisor recorded its commit before it was killed: {state}"
    );

    chaos.fleet.fleet.restart("supervisor").await.unwrap();
    chaos.assert_completed(&task_id, &[]).await;
    chaos.assert_resumed_at("Review");
    // One commit on the branch: the resumed run made none of its own.
    let branch = &task_branches(&chaos.bare)[0];
    let commits = git(
        &chaos.bare,
        &["rev-list", "--count", &format!("main..{branch}")],
    );
    assert_eq!(commits.trim(), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coding_agent_killed_mid_task() {
    let mut chaos = Chaos::start("coding-agent", |_| {}).await;
    let task_id = chaos.submit().await;
    let seen = chaos
        .wait_for(&task_id, "the coding agent's test run", |e| {
            runs_tests(e, "coding")
        })
        .await;
    chaos.kill_and_restart("coding-agent").await;
    let events = chaos
        .assert_completed(&task_id, std::slice::from_ref(&seen))
        .await;
    assert_retried(&events, &seen, "coding agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testing_agent_killed_mid_task() {
    let mut chaos = Chaos::start("testing-agent", |_| {}).await;
    let task_id = chaos.submit().await;
    let seen = chaos
        .wait_for(&task_id, "the testing agent's test run", |e| {
            runs_tests(e, "testing")
        })
        .await;
    chaos.kill_and_restart("testing-agent").await;
    let events = chaos
        .assert_completed(&task_id, std::slice::from_ref(&seen))
        .await;
    assert_retried(&events, &seen, "testing agent");
}

/// The testing agent stays down past review's retries: the task fails naming it, and once the
/// agent is back a resume through the API runs the task to completion (from the plan, on a
/// fresh workspace: a failed task's is released), still with one branch and one pull request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_failed_on_an_agent_kept_down_resumes_to_completion() {
    // The resumed run starts from scratch, so the model fixes the bug twice.
    let mut script = load_script("python-calculator.script.json");
    script.extend(chaos_script());
    let mut chaos = Chaos::start_scripted("agent-down", script, |_| {}).await;
    let task_id = chaos.submit().await;
    chaos
        .wait_for(&task_id, "the coding agent's test run", |e| {
            runs_tests(e, "coding")
        })
        .await;
    chaos.fleet.fleet.kill("testing-agent").await.unwrap();
    let task = tokio::time::timeout(CHAOS_DEADLINE, chaos.fleet.wait_for_end(&task_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(task["status"], "failed", "{task}");
    let message = task["error_message"].as_str().unwrap();
    assert!(message.starts_with("testing agent service:"), "{message}");

    chaos.fleet.fleet.restart("testing-agent").await.unwrap();
    let (status, resumed) = chaos
        .fleet
        .post(&format!("/api/v1/tasks/{task_id}/resume"), json!({}))
        .await;
    assert_eq!(status, 202, "{resumed}");
    let events = chaos.assert_completed(&task_id, &[]).await;
    let failed = find_event(&events, 0, "task_status", |d| d["status"] == "failed").unwrap();
    find_event(&events, failed, "task_status", |d| {
        d["status"] == "completed"
    })
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_agent_killed_mid_task() {
    let mut chaos = Chaos::start("context-agent", |_| {}).await;
    let task_id = chaos.submit().await;
    let seen = chaos
        .wait_for(&task_id, "the context agent's first event", |e| {
            e["data"]["agent"] == "context"
        })
        .await;
    chaos.kill_and_restart("context-agent").await;
    let events = chaos
        .assert_completed(&task_id, std::slice::from_ref(&seen))
        .await;
    // The analysis broke off; the plan went on without it, as it does when the agent is down.
    let from = seen["seq"].as_i64().unwrap() as usize;
    find_event(&events, from, "error", |d| {
        d["recoverable"] == true
            && d["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("planning without repository analysis")
    })
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_killed_mid_task() {
    let mut chaos = Chaos::start("sandbox", |_| {}).await;
    let task_id = chaos.submit().await;
    // The suite runs in the sandbox now.
    let seen = chaos
        .wait_for(&task_id, "the testing agent's test run", |e| {
            runs_tests(e, "testing")
        })
        .await;
    chaos.kill_and_restart("sandbox").await;
    let events = chaos
        .assert_completed(&task_id, std::slice::from_ref(&seen))
        .await;
    // The testing agent's run broke on the sandbox; review ran again on the same workspace.
    assert_retried(&events, &seen, "testing agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_killed_mid_task() {
    let mut chaos = Chaos::start("github", |_| {}).await;
    let task_id = chaos.submit().await;
    let running = chaos
        .wait_for(&task_id, "the testing agent's test run", |e| {
            runs_tests(e, "testing")
        })
        .await;
    chaos.fleet.fleet.kill("github").await.unwrap();
    // Review cannot open the pull request and waits to retry; then the forge comes back.
    let failed = chaos
        .wait_for(&task_id, "review failing on the forge", |e| {
            e["event"] == "error"
                && e["data"]["recoverable"] == true
                && e["data"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("github")
        })
        .await;
    chaos.fleet.fleet.restart("github").await.unwrap();
    chaos.assert_completed(&task_id, &[running, failed]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_killed_mid_task() {
    let mut chaos = Chaos::start("gateway", |_| {}).await;
    let task_id = chaos.submit().await;
    let seen = chaos
        .wait_for(&task_id, "the coding agent's test run", |e| {
            runs_tests(e, "coding")
        })
        .await;
    // The gateway holds nothing: the task runs on, and the restarted one (same port) serves it.
    chaos.kill_and_restart("gateway").await;
    chaos.assert_completed(&task_id, &[seen]).await;
}

/// The whole machine loses power mid-task: every process killed at once, then the fleet
/// started again in order on the same data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_killed_at_once() {
    let mut chaos = Chaos::start("everything", |_| {}).await;
    let task_id = chaos.submit().await;
    let seen = chaos
        .wait_for(&task_id, "the coding agent's test run", |e| {
            runs_tests(e, "coding")
        })
        .await;
    // The agent writes its staged edit after announcing the test run: the sandbox goes down
    // with the rest only once the fix is in the workspace (else, under load, the edit is lost
    // with the killed write and the scripted model, playing on, never makes it again).
    chaos.wait_for_fix_in_workspace().await;
    for service in chaos.fleet.fleet.process_names() {
        chaos.fleet.fleet.kill(&service).await.unwrap();
    }
    for service in chaos.fleet.fleet.process_names() {
        chaos.fleet.fleet.restart(&service).await.unwrap();
    }
    chaos.assert_completed(&task_id, &[seen]).await;
    chaos.assert_resumed_at("Execute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_task() {
    let Some(postgres) = PrivatePostgres::start() else {
        eprintln!(
            "skipped: no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin"
        );
        return;
    };
    let url = postgres.url();
    let chaos = Chaos::start("postgres", |config| config.database_url = Some(url)).await;
    let task_id = chaos.submit().await;
    let seen = chaos
        .wait_for(&task_id, "the coding agent's test run", |e| {
            runs_tests(e, "coding")
        })
        .await;
    postgres.stop();
    // Down past the end of the agent's test run and past the pools' 10 s wait for a
    // connection: the supervisor's writes fail, not just wait.
    tokio::time::sleep(Duration::from_secs(20)).await;
    postgres.start_again();
    chaos.assert_completed(&task_id, &[seen]).await;
}

/// Two replicas share one PostgreSQL; the one running the task dies and the other takes the
/// task over once its lease has expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_takes_over_from_a_killed_one() {
    // A database of its own: no other test's supervisor may claim this one's task.
    let database = format!("chaos_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(POSTGRES_URL).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = format!("postgres://postgres@127.0.0.1:5432/{database}");
    let mut chaos = Chaos::start("replicas", |config| {
        config.database_url = Some(url);
        config.supervisor_replicas = 2;
        config.supervisor_lease_seconds = Some(3);
    })
    .await;

    // Submitted to the replica the gateway does not talk to, so that one runs it.
    let tls = chaos.fleet.fleet.pki().service("launcher").unwrap();
    let replica_url = format!(
        "https://{}",
        chaos.fleet.fleet.grpc_addr("supervisor-2").unwrap()
    );
    let channel = tls.channel(&replica_url).unwrap();
    let task = TaskServiceClient::new(channel.clone())
        .submit_task(SubmitTaskRequest {
            repository_id: chaos.repository_id.clone(),
            prompt: PROMPT.to_owned(),
            ..SubmitTaskRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let task_id = task.task_id;
    // Watched on the replica itself: the gateway's replica sees its events only at its polls.
    let mut events = TaskServiceClient::new(channel.clone())
        .watch_task(cap_proto::supervisor::v1::WatchTaskRequest {
            task_id: task_id.clone(),
            after_seq: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let testing = async {
        while let Some(record) = events.message().await.unwrap() {
            let event = record.event.unwrap_or_default();
            if let Some(Payload::Action(action)) = event.payload
                && event.agent == "coding"
                && action.tool == "run_tests"
            {
                return;
            }
        }
        panic!("the task ended before the coding agent ran the tests");
    };
    tokio::time::timeout(CHAOS_DEADLINE, testing)
        .await
        .unwrap_or_else(|_| panic!("no coding agent test run\n{}", chaos.fleet.logs()));
    let status = AgentOrchestratorClient::new(channel)
        .get_agent_status(cap_proto::agent::v1::AgentId::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.running_task_ids, vec![task_id.clone()]);

    chaos.fleet.fleet.kill("supervisor-2").await.unwrap();
    let log_dir = chaos.fleet.fleet.config().log_dir();
    let log_of = |name: &str| {
        let path = log_dir.join(format!("{name}.log"));
        strip_ansi(&std::fs::read_to_string(path).unwrap_or_default())
    };
    let taken_over = async {
        while !log_of("supervisor").contains("took over tasks whose lease expired") {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(CHAOS_DEADLINE, taken_over)
        .await
        .unwrap_or_else(|_| panic!("no takeover\n{}", chaos.fleet.logs()));
    // The killed replica comes back under its name while the other runs the task: it must
    // leave the task alone, the lease being the other's now.
    chaos.fleet.fleet.restart("supervisor-2").await.unwrap();
    chaos.assert_completed(&task_id, &[]).await;
    assert!(
        !log_of("supervisor-2").contains("resuming task"),
        "{}",
        log_of("supervisor-2")
    );

    chaos.stop().await;
    let _ = sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
}

/// A PostgreSQL server of the test's own, in a temporary directory on a free port, so it can
/// be stopped without touching the shared one. Stopped on drop.
struct PrivatePostgres {
    bin: PathBuf,
    root: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    /// Initialises and starts the server; `None` when the server binaries are not installed.
    fn start() -> Option<Self> {
        let bin = postgres_bin()?;
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if running_as_root() {
            // PostgreSQL refuses to run as root: the `postgres` user runs it and owns its files.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            run(Command::new("chown").args(["postgres:postgres"]).arg(&data));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let postgres = Self { bin, root, port };
        run(postgres.command("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]));
        postgres.start_again();
        Some(postgres)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// Starts the server and waits until it accepts connections.
    fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data().display()
        );
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.data().join("server.log"))
            .args(["-w", "-t", "30", "-o", &options, "start"]));
    }

    /// Stops the server at once, as a crash would: clients are cut off mid-query.
    fn stop(&self) {
        run(self.command("pg_ctl").arg("-D").arg(self.data()).args([
            "-m",
            "immediate",
            "-w",
            "stop",
        ]));
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb` and `pg_ctl`.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    let output = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
