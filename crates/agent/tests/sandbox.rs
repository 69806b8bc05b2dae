//! The loop on its product path: the real sandbox service (bubblewrap, git) served
//! in-process over mutual TLS, the scripted model server over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::time::Duration;

use cap_agent::{AgentConfig, Change, ChangedFile, CodingAgent, Error, Finish};
use cap_agent_server::Steering;
use cap_llm::{ModelConfig, RetryPolicy};
use cap_mtls::Pki;
use cap_proto::agent::v1::{RepositoryContext, TaskEvent, TaskRequest, observation, task_event};
use cap_proto::common::v1::file_change;
use cap_proto::sandbox::v1::{CreateSessionRequest, GetChangesRequest};
use cap_sandbox_client::{GrpcSandbox, MAX_MESSAGE_BYTES, SandboxApi as _};
use cap_testkit::git::BareRepo;
use cap_testkit::{ScriptStep, ScriptedModel};
use pretty_assertions::assert_eq;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

struct Fixture {
    _dir: tempfile::TempDir,
    sandbox: GrpcSandbox,
    session_id: String,
}

/// A Python repository with a bug, a test that shows it, a file to delete and a symlink
/// pointing out of the workspace; served by an in-process sandbox with one session on it.
async fn fixture() -> Fixture {
    fixture_with(&[]).await
}

/// [`fixture`] with `extra` files committed too.
async fn fixture_with(extra: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    for (path, content) in extra {
        std::fs::write(work.join(path), content).unwrap();
    }
    std::fs::write(work.join("calc.py"), "def add(a, b):\n    return a - b\n").unwrap();
    std::fs::write(
        work.join("test_calc.py"),
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
    )
    .unwrap();
    std::fs::write(work.join("README.md"), "# calc\n\nAdds numbers.\n").unwrap();
    std::fs::write(work.join("old.txt"), "obsolete\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", work.join("link")).unwrap();
    let repo = BareRepo::of_tree(dir.path(), &work);

    let pki = Pki::ensure_dev(dir.path().join("pki")).unwrap();
    let (sandbox_url, _sandbox_server) =
        cap_sandbox_server::spawn_local(dir.path().join("sessions"), &pki)
            .await
            .unwrap();

    let client_tls = pki.service("coding-agent").unwrap();
    let sandbox = GrpcSandbox::new(client_tls.channel(&sandbox_url).unwrap(), MAX_MESSAGE_BYTES);
    let session_id = sandbox
        .create_session(CreateSessionRequest {
            image: String::new(),
            repo_url: repo.url(),
            commit_sha: repo.commit,
        })
        .await
        .unwrap()
        .session_id;
    Fixture {
        _dir: dir,
        sandbox,
        session_id,
    }
}

fn agent(model: &ScriptedModel, sandbox: GrpcSandbox) -> CodingAgent {
    let mut config = AgentConfig::new(
        ModelConfig {
            base_url: model.base_url(),
            api_key: None,
            model: "qwen2.5-coder".to_owned(),
            timeout: Duration::from_secs(30),
            ..ModelConfig::default()
        },
        20,
    );
    config.retry = RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(1),
    };
    config.test_timeout = Duration::from_secs(120);
    CodingAgent::new(config, std::sync::Arc::new(sandbox)).unwrap()
}

fn request(session_id: &str) -> TaskRequest {
    TaskRequest {
        task_id: "task-sandbox".to_owned(),
        repo: Some(RepositoryContext {
            repository_id: "local/calc".to_owned(),
            sandbox_session_id: session_id.to_owned(),
            ..RepositoryContext::default()
        }),
        objective: "add() subtracts; make it add.".to_owned(),
        tools: vec![],
        context: None,
    }
}

fn observations(events: &[TaskEvent]) -> Vec<cap_proto::agent::v1::Observation> {
    events
        .iter()
        .filter_map(|e| match &e.payload {
            Some(task_event::Payload::Observation(o)) => Some(o.clone()),
            _ => None,
        })
        .collect()
}

fn a(value: serde_json::Value) -> String {
    value.to_string()
}

const README_DIFF: &str = "\
--- a/README.md
+++ b/README.md
@@ -1,3 +1,3 @@
 # calc
 
-Adds numbers.
+Adds two numbers.
";

#[tokio::test]
async fn fixes_a_bug_in_a_real_sandbox() {
    let fx = fixture().await;
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_calls([
            ("list_directory", a(json!({"path": "."}))),
            (
                "search_files",
                a(json!({"pattern": "def add", "glob": "*.py"})),
            ),
            ("read_file", a(json!({"path": "calc.py"}))),
        ]),
        ScriptStep::tool_call("run_tests", "{}"),
        ScriptStep::tool_calls([
            (
                "edit_file",
                a(json!({"path": "calc.py", "old_string": "a - b", "new_string": "a + b"})),
            ),
            (
                "create_file",
                a(json!({"path": "notes/CHANGES.md", "content": "- add() adds\n"})),
            ),
            ("apply_diff", a(json!({"diff_text": README_DIFF}))),
            ("delete_file", a(json!({"path": "old.txt"}))),
            ("read_file", a(json!({"path": "link"}))),
            ("read_file", a(json!({"path": "../outside"}))),
            (
                "search_files",
                a(json!({"pattern": "a \\+ b|add\\(\\) adds"})),
            ),
        ]),
        ScriptStep::tool_call("run_tests", a(json!({"test_pattern": "test_add"}))),
        ScriptStep::tool_call(
            "run_command",
            a(json!({"cmd": "cat calc.py; ls notes; echo oops >&2; exit 3"})),
        ),
        ScriptStep::text("add() now adds; the test passes."),
    ])
    .await
    .unwrap();
    let agent = agent(&model, fx.sandbox.clone());
    let (tx, mut rx) = mpsc::channel(1000);
    let outcome = agent
        .run(
            request(&fx.session_id),
            tx,
            CancellationToken::new(),
            Steering::none(),
        )
        .await
        .unwrap();
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        events.push(event);
    }
    assert_eq!(outcome.finish, Finish::Finished);
    assert_eq!(outcome.steps, 6);
    assert_eq!(
        outcome.files_changed,
        vec![
            ChangedFile {
                path: "README.md".into(),
                change: Change::Modified,
                sha256: digest("# calc\n\nAdds two numbers.\n"),
            },
            ChangedFile {
                path: "calc.py".into(),
                change: Change::Modified,
                sha256: digest("def add(a, b):\n    return a + b\n"),
            },
            ChangedFile {
                path: "notes/CHANGES.md".into(),
                change: Change::Created,
                sha256: digest("- add() adds\n"),
            },
            ChangedFile {
                path: "old.txt".into(),
                change: Change::Deleted,
                sha256: None,
            },
        ]
    );

    let obs = observations(&events);
    let contents: Vec<&str> = obs.iter().map(|o| o.content.as_str()).collect();
    for o in &obs[..3] {
        assert!(!o.is_error, "{}", o.content);
    }
    assert!(contents[0].contains("calc.py ("), "{}", contents[0]);
    assert!(contents[0].contains("README.md ("), "{}", contents[0]);
    assert_eq!(contents[1], "calc.py:1: def add(a, b):\n");
    assert_eq!(
        contents[2],
        "     1\tdef add(a, b):\n     2\t    return a - b\n"
    );

    // The first test run fails, through pytest inside the sandbox.
    let Some(observation::Detail::CommandExecuted(first)) = &obs[3].detail else {
        panic!("{:?}", obs[3])
    };
    assert_ne!(first.exit_code, 0, "{}", obs[3].content);
    assert!(
        obs[3].content.contains("0 passed, 1 failed"),
        "{}",
        obs[3].content
    );

    // Edits, then the refusals: a symlink out of the workspace and a `..` path.
    for o in &obs[4..8] {
        assert!(!o.is_error, "{}", o.content);
        assert!(
            matches!(o.detail, Some(observation::Detail::FileModified(_))),
            "{o:?}"
        );
    }
    assert!(obs[8].is_error, "{}", obs[8].content);
    assert_eq!(
        obs[8].content,
        "Error: invalid path \"link\": resolves (through a symbolic link) outside the workspace"
    );
    assert!(obs[9].is_error);
    assert!(
        obs[9].content.contains("`..` is not allowed"),
        "{}",
        obs[9].content
    );
    // The search sees staged edits before they are written.
    assert_eq!(
        contents[10],
        "calc.py:2:     return a + b\nnotes/CHANGES.md:1: - add() adds\n"
    );

    // After the edits were written, the test passes.
    let Some(observation::Detail::CommandExecuted(second)) = &obs[11].detail else {
        panic!("{:?}", obs[11])
    };
    assert_eq!(second.exit_code, 0, "{}", obs[11].content);
    assert!(
        obs[11].content.contains("1 passed, 0 failed"),
        "{}",
        obs[11].content
    );

    let Some(observation::Detail::CommandExecuted(command)) = &obs[12].detail else {
        panic!("{:?}", obs[12])
    };
    assert_eq!(command.exit_code, 3);
    assert!(
        command.stdout_snippet.contains("return a + b"),
        "{}",
        command.stdout_snippet
    );
    assert!(
        command.stdout_snippet.contains("CHANGES.md"),
        "{}",
        command.stdout_snippet
    );
    assert!(
        command.stdout_snippet.contains("oops"),
        "{}",
        command.stdout_snippet
    );

    let Some(task_event::Payload::Checkpoint(done)) = &events.last().unwrap().payload else {
        panic!()
    };
    assert_eq!(done.kind().name(), "agent_finished");

    // The workspace holds exactly the agent's changes.
    let changes = fx
        .sandbox
        .clone()
        .get_changes(GetChangesRequest {
            session_id: fx.session_id.clone(),
        })
        .await
        .unwrap();
    let summary: Vec<(String, Option<String>)> = changes
        .changes
        .iter()
        .map(|c| {
            let content = match &c.change {
                Some(file_change::Change::Content(bytes)) => {
                    Some(String::from_utf8_lossy(bytes).into_owned())
                }
                _ => None,
            };
            (c.path.clone(), content)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "README.md".to_owned(),
                Some("# calc\n\nAdds two numbers.\n".to_owned())
            ),
            (
                "calc.py".to_owned(),
                Some("def add(a, b):\n    return a + b\n".to_owned())
            ),
            (
                "notes/CHANGES.md".to_owned(),
                Some("- add() adds\n".to_owned())
            ),
            ("old.txt".to_owned(), None),
        ]
    );
}

#[tokio::test]
async fn an_unknown_session_is_refused_before_the_model_is_asked() {
    let fx = fixture().await;
    let model = ScriptedModel::start(vec![ScriptStep::text("never")])
        .await
        .unwrap();
    let agent = agent(&model, fx.sandbox.clone());
    let (tx, mut rx) = mpsc::channel(10);
    let missing = "00000000-0000-4000-8000-000000000000";
    let err = agent
        .run(
            request(missing),
            tx,
            CancellationToken::new(),
            Steering::none(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Session { .. }), "{err:?}");
    assert!(
        err.chain()
            .starts_with(&format!("sandbox session {missing} is not usable")),
        "{}",
        err.chain()
    );
    let Some(task_event::Payload::Error(report)) = rx.recv().await.unwrap().payload else {
        panic!()
    };
    assert_eq!(report.severity, "error");
    assert!(!report.recoverable);
    assert!(model.requests().is_empty());
}

/// FR-005 on the product path: the repository configures black; each file the model writes
/// is formatted by the real black inside the sandbox, the model reads the formatted text
/// (its next edit quotes it), and a file black cannot parse is reported back.
#[tokio::test]
async fn edits_are_formatted_by_the_repositorys_formatter() {
    let fx = fixture_with(&[("pyproject.toml", "[tool.black]\nline-length = 99\n")]).await;
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_call(
            "create_file",
            a(json!({"path": "util.py", "content": "def double(x):\n  return x*2\n"})),
        ),
        ScriptStep::tool_call("read_file", a(json!({"path": "util.py"}))),
        ScriptStep::tool_call(
            "edit_file",
            a(json!({"path": "util.py", "old_string": "return x * 2", "new_string": "return x+x"})),
        ),
        ScriptStep::tool_call(
            "create_file",
            a(json!({"path": "broken.py", "content": "def f(:\n"})),
        ),
        ScriptStep::text("done"),
    ])
    .await
    .unwrap();
    let agent = agent(&model, fx.sandbox.clone());
    let (tx, mut rx) = mpsc::channel(1000);
    let outcome = agent
        .run(
            request(&fx.session_id),
            tx,
            CancellationToken::new(),
            Steering::none(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.finish, Finish::Finished);
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        events.push(event);
    }
    let obs = observations(&events);
    let contents: Vec<&str> = obs.iter().map(|o| o.content.as_str()).collect();
    assert_eq!(
        contents[0],
        "created util.py (2 lines)\nutil.py was reformatted by black (+1 -1 lines); read it \
         again before editing it"
    );
    assert_eq!(
        contents[1],
        "     1\tdef double(x):\n     2\t    return x * 2\n"
    );
    assert_eq!(
        contents[2],
        "edited util.py (+1 -1 lines)\nutil.py was reformatted by black (+1 -1 lines); read it \
         again before editing it"
    );
    assert!(!obs[3].is_error, "{}", contents[3]);
    assert!(
        contents[3].starts_with(
            "created broken.py (1 lines)\nblack could not format broken.py: black exited with \
             code 123\n--- black output (end) ---\n"
        ),
        "{}",
        contents[3]
    );
    assert!(
        contents[3].contains("error: cannot format broken.py: Cannot parse"),
        "{}",
        contents[3]
    );
    let read = |path: &str| {
        let client = fx.sandbox.clone();
        let session_id = fx.session_id.clone();
        let path = path.to_owned();
        async move {
            let content = client
                .read_file(cap_proto::sandbox::v1::ReadFileRequest { session_id, path })
                .await
                .unwrap()
                .content;
            String::from_utf8(content).unwrap()
        }
    };
    assert_eq!(read("util.py").await, "def double(x):\n    return x + x\n");
    assert_eq!(read("broken.py").await, "def f(:\n");
}

/// What the agent reports for a file it left holding `text`.
fn digest(text: &str) -> Option<String> {
    Some(cap_sandbox_client::content_digest(text.as_bytes()))
}
