//! The loop against the scripted model server and an in-memory workspace.

use std::time::Duration;

use cap_agent_server::Steering;
use cap_llm::{ModelConfig, RetryPolicy};
use cap_proto::agent::v1::{
    RepositoryContext, TaskContext, TaskEvent, TaskRequest, Tool, observation, task_event,
};
use cap_testkit::sandbox::MemorySandbox;
use cap_testkit::{ScriptStep, ScriptedModel};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::memory::MemoryWorkspace;
use crate::{AgentConfig, Change, ChangedFile, CodingAgent, Error, Finish, Outcome};

const HELLO: &str = "def greet():\n    return 'hello'\n\n\ndef shout():\n    return 'HEY'\n";

fn agent(model: &ScriptedModel, max_steps: u32) -> CodingAgent {
    let mut config = AgentConfig::new(
        ModelConfig {
            base_url: model.base_url(),
            api_key: None,
            model: "qwen2.5-coder".to_owned(),
            timeout: Duration::from_secs(10),
            ..ModelConfig::default()
        },
        max_steps,
    );
    config.retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
    };
    // Never dialled: the tests bring their own workspace.
    CodingAgent::new(config, MemorySandbox::new()).unwrap()
}

fn request() -> TaskRequest {
    TaskRequest {
        task_id: "task-1".to_owned(),
        repo: Some(RepositoryContext {
            repository_id: "acme/widgets".to_owned(),
            sandbox_session_id: "session-1".to_owned(),
            commit_sha: "abc123".to_owned(),
            default_branch: "main".to_owned(),
            test_command: String::new(),
        }),
        objective: "Make greet() say hi.".to_owned(),
        tools: vec![],
        context: Some(TaskContext {
            plan: "1. edit greet".to_owned(),
            ..TaskContext::default()
        }),
    }
}

fn workspace() -> MemoryWorkspace {
    MemoryWorkspace::with_files([("app/hello.py", HELLO), ("README.md", "# widgets\n")])
}

async fn run(
    agent: &CodingAgent,
    ws: &MemoryWorkspace,
    request: TaskRequest,
) -> (crate::Result<Outcome>, Vec<TaskEvent>) {
    let (tx, mut rx) = mpsc::channel(1000);
    let result = agent
        .run_in(ws, request, tx, CancellationToken::new(), Steering::none())
        .await;
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        events.push(event);
    }
    (result, events)
}

/// One line per event, for comparing whole sequences.
fn describe(event: &TaskEvent) -> String {
    assert_eq!(event.agent, "coding");
    assert!(event.created_at_ms > 0);
    match event.payload.as_ref().unwrap() {
        task_event::Payload::Thought(t) => format!("thought: {}", t.reasoning),
        task_event::Payload::Action(a) => format!("action {}", a.tool),
        task_event::Payload::Observation(o) => {
            let status = if o.is_error { "error" } else { "ok" };
            let detail = match &o.detail {
                Some(observation::Detail::FileModified(f)) => {
                    format!(
                        " [{} {} +{} -{}]",
                        f.change, f.path, f.additions, f.deletions
                    )
                }
                Some(observation::Detail::CommandExecuted(c)) => {
                    format!(" [command {:?} exit {}]", c.command, c.exit_code)
                }
                None => String::new(),
            };
            format!("observation {} {status}{detail}", o.tool)
        }
        task_event::Payload::Checkpoint(c) => format!("checkpoint {}", c.kind().name()),
        task_event::Payload::Error(e) => {
            format!("error {} recoverable={}", e.severity, e.recoverable)
        }
        task_event::Payload::Status(s) => format!("status {}", s.status),
    }
}

fn describe_all(events: &[TaskEvent]) -> Vec<String> {
    events.iter().map(describe).collect()
}

fn observations(events: &[TaskEvent]) -> Vec<&cap_proto::agent::v1::Observation> {
    events
        .iter()
        .filter_map(|e| match e.payload.as_ref() {
            Some(task_event::Payload::Observation(o)) => Some(o),
            _ => None,
        })
        .collect()
}

fn checkpoint_state(events: &[TaskEvent]) -> Value {
    let Some(task_event::Payload::Checkpoint(c)) = events.last().and_then(|e| e.payload.as_ref())
    else {
        panic!("last event is not a checkpoint: {:?}", events.last());
    };
    serde_json::from_str(&c.state_json).unwrap()
}

/// The tool messages the model received in its `n`th request.
fn tool_messages(model: &ScriptedModel, n: usize) -> Vec<String> {
    model.requests()[n]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

fn args(value: Value) -> String {
    value.to_string()
}

#[tokio::test]
async fn reads_edits_and_finishes() {
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_call("read_file", args(json!({"path": "app/hello.py"})))
            .with_content("Let me read the file."),
        ScriptStep::tool_call(
            "edit_file",
            args(json!({"path": "app/hello.py", "old_string": "return 'hello'", "new_string": "return 'hi'"})),
        ),
        ScriptStep::text("greet() now returns 'hi'."),
    ])
    .await
    .unwrap();
    let ws = workspace();
    let (result, events) = run(&agent(&model, 10), &ws, request()).await;
    let outcome = result.unwrap();
    assert_eq!(
        outcome,
        Outcome {
            finish: Finish::Finished,
            summary: "greet() now returns 'hi'.".to_owned(),
            steps: 3,
            files_changed: vec![ChangedFile {
                path: "app/hello.py".into(),
                change: Change::Modified,
                sha256: digest(&HELLO.replace("'hello'", "'hi'")),
            }],
        }
    );
    assert_eq!(
        describe_all(&events),
        vec![
            "thought: Let me read the file.",
            "action read_file",
            "observation read_file ok",
            "action edit_file",
            "observation edit_file ok [modified app/hello.py +1 -1]",
            "thought: greet() now returns 'hi'.",
            "checkpoint agent_finished",
        ]
    );
    assert_eq!(
        checkpoint_state(&events),
        json!({"summary": "greet() now returns 'hi'.", "steps": 3,
               "files_changed": [{"path": "app/hello.py", "change": "modified",
                                  "sha256": digest(&HELLO.replace("'hello'", "'hi'"))}]})
    );
    // Written once, at the end.
    assert_eq!(
        ws.file("app/hello.py").unwrap(),
        HELLO.replace("'hello'", "'hi'")
    );
    assert_eq!(ws.log(), vec!["write_files app/hello.py"]);

    // The model saw numbered lines, then the edit's result.
    assert_eq!(
        tool_messages(&model, 1),
        vec![
            "     1\tdef greet():\n     2\t    return 'hello'\n     3\t\n     4\t\n     5\tdef shout():\n     6\t    return 'HEY'\n"
        ]
    );
    assert_eq!(
        tool_messages(&model, 2)[1],
        "edited app/hello.py (+1 -1 lines)"
    );
    let first = &model.requests()[0];
    assert_eq!(first["messages"][0]["content"], crate::SYSTEM_PROMPT);
    let user = first["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains("Make greet() say hi."), "{user}");
    assert!(user.contains("## plan\n1. edit greet"), "{user}");
    assert_eq!(first["tools"].as_array().unwrap().len(), 9);
    // The Action carries the arguments as sent.
    let Some(task_event::Payload::Action(action)) = &events[1].payload else {
        panic!()
    };
    assert_eq!(action.arguments_json, "{\"path\":\"app/hello.py\"}");
    assert_eq!(action.call_id, "call_0_0");
    assert_eq!(observations(&events)[0].call_id, "call_0_0");
}

#[tokio::test]
async fn invalid_json_arguments_become_an_error_observation_then_recovery() {
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_call("read_file", "{\"path\": \"app/hello.py\""),
        ScriptStep::tool_call("read_file", "[\"app/hello.py\"]"),
        ScriptStep::tool_call(
            "read_file",
            args(json!({"path": "app/hello.py", "line_start": 2, "line_end": 2})),
        ),
        ScriptStep::text("done"),
    ])
    .await
    .unwrap();
    let ws = workspace();
    let (result, events) = run(&agent(&model, 10), &ws, request()).await;
    assert_eq!(result.unwrap().finish, Finish::Finished);
    let obs = observations(&events);
    assert!(obs[0].is_error);
    assert!(
        obs[0]
            .content
            .starts_with("Error: the arguments of read_file are not valid JSON"),
        "{}",
        obs[0].content
    );
    assert!(obs[1].is_error);
    assert_eq!(
        obs[1].content,
        "Error: the arguments of read_file must be a JSON object, not an array"
    );
    assert!(!obs[2].is_error);
    assert_eq!(
        obs[2].content,
        "     2\t    return 'hello'\n... app/hello.py has 6 lines; showing 2-2. Use line_start/line_end for more.\n"
    );
    // What went back to the model is the observation's content.
    assert_eq!(tool_messages(&model, 1), vec![obs[0].content.clone()]);
}

#[tokio::test]
async fn unknown_tool_and_tools_not_offered() {
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_calls([("rm_rf", "{}"), ("edit_file", "{}")]),
        ScriptStep::text("ok"),
    ])
    .await
    .unwrap();
    let mut request = request();
    request.tools = ["read_file", "list_directory"]
        .iter()
        .map(|name| Tool {
            name: (*name).to_owned(),
            ..Tool::default()
        })
        .collect();
    let ws = workspace();
    let (result, events) = run(&agent(&model, 10), &ws, request).await;
    assert_eq!(result.unwrap().finish, Finish::Finished);
    let obs = observations(&events);
    assert_eq!(
        obs[0].content,
        "Error: unknown tool \"rm_rf\"; the tools are: read_file, list_directory"
    );
    assert_eq!(
        obs[1].content,
        "Error: unknown tool \"edit_file\"; the tools are: read_file, list_directory"
    );
    let requests = model.requests();
    let offered: Vec<&str> = requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(offered, vec!["read_file", "list_directory"]);
    assert_eq!(ws.file("app/hello.py").unwrap(), HELLO);
}

#[tokio::test]
async fn missing_and_wrong_typed_parameters() {
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_calls([
            (
                "edit_file",
                args(json!({"path": "app/hello.py", "old_string": "x"})),
            ),
            ("read_file", args(json!({"path": 7}))),
            (
                "list_directory",
                args(json!({"path": ".", "recursive": "yes"})),
            ),
            ("read_file", args(json!({"path": "../../etc/passwd"}))),
        ]),
        ScriptStep::text("ok"),
    ])
    .await
    .unwrap();
    let (result, events) = run(&agent(&model, 10), &workspace(), request()).await;
    assert_eq!(result.unwrap().finish, Finish::Finished);
    let contents: Vec<&str> = observations(&events)
        .iter()
        .map(|o| o.content.as_str())
        .collect();
    assert_eq!(
        contents,
        vec![
            "Error: invalid arguments for edit_file: missing field `new_string`",
            "Error: invalid arguments for read_file at `path`: invalid type: integer `7`, expected a string",
            "Error: invalid arguments for list_directory at `recursive`: invalid type: string \"yes\", expected a boolean",
            "Error: invalid path \"../../etc/passwd\": `..` is not allowed; paths must stay inside the workspace",
        ]
    );
}

#[tokio::test]
async fn edit_file_needs_exactly_one_match() {
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_call(
            "edit_file",
            args(json!({"path": "app/hello.py", "old_string": "return 'bye'", "new_string": "x"})),
        ),
        ScriptStep::tool_call(
            "edit_file",
            args(json!({"path": "app/hello.py", "old_string": "    return", "new_string": "    yield"})),
        ),
        ScriptStep::tool_call(
            "edit_file",
            args(json!({"path": "app/hello.py", "old_string": "    return 'HEY'", "new_string": "    return 'HO'"})),
        ),
        ScriptStep::text("ok"),
    ])
    .await
    .unwrap();
    let ws = workspace();
    let (result, events) = run(&agent(&model, 10), &ws, request()).await;
    assert_eq!(result.unwrap().files_changed.len(), 1);
    let obs = observations(&events);
    assert_eq!(
        obs[0].content,
        "Error: old_string was not found in app/hello.py; read the file and copy the text exactly, whitespace included"
    );
    assert_eq!(
        obs[1].content,
        "Error: old_string occurs 2 times in app/hello.py; include more surrounding lines so it occurs exactly once"
    );
    assert!(!obs[2].is_error);
    assert_eq!(
        ws.file("app/hello.py").unwrap(),
        HELLO.replace("'HEY'", "'HO'")
    );
}

#[tokio::test]
async fn stops_at_the_step_limit_and_keeps_the_edits() {
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_call(
            "create_file",
            args(json!({"path": "notes/a.txt", "content": "a\n"})),
        ),
        ScriptStep::tool_call("list_directory", args(json!({"path": "."}))),
        ScriptStep::text("never reached"),
    ])
    .await
    .unwrap();
    let ws = workspace();
    let (result, events) = run(&agent(&model, 2), &ws, request()).await;
    let outcome = result.unwrap();
    assert_eq!(outcome.finish, Finish::StepLimitReached);
    assert_eq!(outcome.steps, 2);
    assert_eq!(
        describe_all(&events),
        vec![
            "action create_file",
            "observation create_file ok [created notes/a.txt +1 -0]",
            "action list_directory",
            "observation list_directory ok",
            "error warning recoverable=true",
            "checkpoint step_limit_reached",
        ]
    );
    // The staged file shows in the listing before it is written.
    assert_eq!(
        observations(&events)[1].content,
        "README.md (10 bytes)\napp/\nnotes/\n"
    );
    assert_eq!(ws.file("notes/a.txt").as_deref(), Some("a\n"));
    assert_eq!(model.remaining(), 1);
    assert_eq!(
        checkpoint_state(&events)["files_changed"],
        json!([{"path": "notes/a.txt", "change": "created", "sha256": digest("a\n")}])
    );
}

const GOOD_DIFF: &str = "\
--- a/app/hello.py
+++ b/app/hello.py
@@ -1,2 +1,2 @@
 def greet():
-    return 'hello'
+    return 'hi'
--- /dev/null
+++ b/app/new.py
@@ -0,0 +1,2 @@
+import hello
+print(hello.greet())
--- a/README.md
+++ /dev/null
@@ -1 +0,0 @@
-# widgets
";

const BAD_DIFF: &str = "\
--- a/app/hello.py
+++ b/app/hello.py
@@ -1,2 +1,2 @@
 def greet():
-    return 'hello'
+    return 'hi'
--- a/README.md
+++ b/README.md
@@ -1 +1 @@
-# gadgets
+# things
";

#[tokio::test]
async fn apply_diff_applies_all_or_nothing() {
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_call("apply_diff", args(json!({"diff_text": BAD_DIFF}))),
        ScriptStep::tool_call(
            "read_file",
            args(json!({"path": "app/hello.py", "line_end": 2})),
        ),
        ScriptStep::tool_call("apply_diff", args(json!({"diff_text": GOOD_DIFF}))),
        ScriptStep::tool_call("read_file", args(json!({"path": "README.md"}))),
        ScriptStep::text("done"),
    ])
    .await
    .unwrap();
    let ws = workspace();
    let (result, events) = run(&agent(&model, 10), &ws, request()).await;
    let outcome = result.unwrap();
    let obs = observations(&events);
    assert!(obs[0].is_error);
    assert!(
        obs[0]
            .content
            .contains("error applying hunk #1 of README.md"),
        "{}",
        obs[0].content
    );
    // The first file's hunk matched, but nothing was staged.
    assert!(
        obs[1]
            .content
            .starts_with("     1\tdef greet():\n     2\t    return 'hello'\n")
    );
    assert!(!obs[2].is_error, "{}", obs[2].content);
    assert_eq!(
        obs[2].content,
        "applied the diff to 3 file(s):\nmodified app/hello.py (+1 -1)\ncreated app/new.py (+2 -0)\ndeleted README.md (+0 -1)\n"
    );
    assert_eq!(obs[2].detail, None);
    assert_eq!(obs[3].content, "Error: README.md does not exist");
    assert_eq!(
        outcome.files_changed,
        vec![
            ChangedFile {
                path: "README.md".into(),
                change: Change::Deleted,
                sha256: None,
            },
            ChangedFile {
                path: "app/hello.py".into(),
                change: Change::Modified,
                sha256: digest(&ws.file("app/hello.py").unwrap()),
            },
            ChangedFile {
                path: "app/new.py".into(),
                change: Change::Created,
                sha256: digest(&ws.file("app/new.py").unwrap()),
            },
        ]
    );
    assert_eq!(ws.paths(), vec!["app/hello.py", "app/new.py"]);
    assert_eq!(
        ws.file("app/new.py").unwrap(),
        "import hello\nprint(hello.greet())\n"
    );
}

#[tokio::test]
async fn commands_and_tests_see_the_staged_edits() {
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_calls([
            (
                "create_file",
                args(json!({"path": "test_x.py", "content": "def test_x(): pass\n"})),
            ),
            (
                "run_command",
                args(json!({"cmd": "python3 -m compileall -q .", "cwd": "app", "timeout": 30})),
            ),
        ]),
        ScriptStep::tool_calls([
            (
                "run_command",
                args(json!({"cmd": "true", "timeout": 100000})),
            ),
            ("run_command", args(json!({"cmd": "true", "cwd": "/tmp"}))),
            ("run_tests", args(json!({"test_pattern": "test_x"}))),
        ]),
        ScriptStep::text("done"),
    ])
    .await
    .unwrap();
    let mut request = request();
    request.repo.as_mut().unwrap().test_command = "python3 -m pytest -q".to_owned();
    let ws = workspace();
    ws.set_test_run(cap_testrun::TestRun {
        command: "python3 -m pytest -q".to_owned(),
        outcome: cap_testrun::Outcome::Failed,
        exit_code: 1,
        timed_out: false,
        duration_ms: 40,
        passed: 1,
        failed: 1,
        errors: 0,
        skipped: 0,
        cases: vec![cap_testrun::TestCase {
            name: "test_x.test_y".to_owned(),
            file: "test_x.py".to_owned(),
            outcome: "failed".to_owned(),
            duration_ms: 1,
            message: "assert 1 == 2".to_owned(),
        }],
        output_tail: "1 failed, 1 passed".to_owned(),
    });
    let (result, events) = run(&agent(&model, 10), &ws, request).await;
    assert_eq!(result.unwrap().finish, Finish::Finished);
    assert_eq!(
        ws.log(),
        vec![
            "write_files test_x.py",
            "exec python3 -m compileall -q . in \"app\" for 30s",
            "run_tests Some(\"python3 -m pytest -q\") Some(\"test_x\") for 600s",
        ]
    );
    let descriptions = describe_all(&events);
    assert!(descriptions.contains(
        &"observation run_command ok [command \"python3 -m compileall -q .\" exit 0]".to_owned()
    ));
    assert!(descriptions.contains(
        &"observation run_tests ok [command \"python3 -m pytest -q\" exit 1]".to_owned()
    ));
    let obs = observations(&events);
    assert_eq!(
        obs[1].content,
        "exit code: 0\n--- output ---\nran python3 -m compileall -q .\n"
    );
    assert_eq!(
        obs[2].content,
        "Error: timeout 100000 is out of range; give 1 to 600 seconds"
    );
    assert!(
        obs[3]
            .content
            .starts_with("Error: invalid path \"/tmp\": absolute paths"),
        "{}",
        obs[3].content
    );
    assert!(
        obs[4].content.contains("1 passed, 1 failed"),
        "{}",
        obs[4].content
    );
    assert!(
        obs[4]
            .content
            .contains("--- test_x.test_y ---\nassert 1 == 2"),
        "{}",
        obs[4].content
    );
}

#[tokio::test]
async fn run_tests_without_a_framework_says_so() {
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_call("run_tests", "{}"),
        ScriptStep::text("ok"),
    ])
    .await
    .unwrap();
    let (result, events) = run(&agent(&model, 10), &workspace(), request()).await;
    assert_eq!(result.unwrap().finish, Finish::Finished);
    assert_eq!(
        observations(&events)[0].content,
        "Error: no test framework was detected in this repository; run the tests with run_command"
    );
}

#[tokio::test]
async fn model_failures_after_retries_end_the_task() {
    let model = ScriptedModel::start(vec![
        ScriptStep::http_error(503),
        ScriptStep::http_error(503),
        ScriptStep::http_error(503),
    ])
    .await
    .unwrap();
    let (result, events) = run(&agent(&model, 10), &workspace(), request()).await;
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Model { .. }), "{err:?}");
    assert_eq!(model.requests().len(), 3);
    assert_eq!(describe_all(&events), vec!["error error recoverable=true"]);
    let Some(task_event::Payload::Error(report)) = &events[0].payload else {
        panic!()
    };
    assert_eq!(
        report.message,
        "the model endpoint failed: model endpoint answered HTTP 503: scripted HTTP 503"
    );
}

#[tokio::test]
async fn a_retried_model_failure_is_invisible() {
    let model = ScriptedModel::start(vec![ScriptStep::http_error(502), ScriptStep::text("fine")])
        .await
        .unwrap();
    let (result, events) = run(&agent(&model, 10), &workspace(), request()).await;
    assert_eq!(result.unwrap().summary, "fine");
    assert_eq!(
        describe_all(&events),
        vec!["thought: fine", "checkpoint agent_finished"]
    );
}

#[tokio::test]
async fn permanent_model_errors_are_not_recoverable() {
    let model = ScriptedModel::start(vec![ScriptStep::malformed("<html>")])
        .await
        .unwrap();
    let (result, events) = run(&agent(&model, 10), &workspace(), request()).await;
    assert!(matches!(result, Err(Error::Model { .. })));
    assert_eq!(model.requests().len(), 1);
    assert_eq!(describe_all(&events), vec!["error error recoverable=false"]);
}

#[tokio::test]
async fn edits_are_kept_when_the_model_fails_midway() {
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_call("delete_file", args(json!({"path": "README.md"}))),
        ScriptStep::http_error(400),
    ])
    .await
    .unwrap();
    let ws = workspace();
    let (result, _) = run(&agent(&model, 10), &ws, request()).await;
    assert!(matches!(result, Err(Error::Model { .. })));
    assert_eq!(ws.paths(), vec!["app/hello.py"]);
}

#[tokio::test]
async fn a_cut_off_reply_asks_the_model_to_continue() {
    let model = ScriptedModel::start(vec![
        ScriptStep::Text {
            content: "I will now".to_owned(),
            finish_reason: Some("length".to_owned()),
        },
        ScriptStep::text("done"),
    ])
    .await
    .unwrap();
    let (result, events) = run(&agent(&model, 10), &workspace(), request()).await;
    assert_eq!(result.unwrap().steps, 2);
    assert_eq!(
        describe_all(&events),
        vec![
            "thought: I will now",
            "thought: done",
            "checkpoint agent_finished"
        ]
    );
    let second = &model.requests()[1]["messages"];
    assert_eq!(
        second.as_array().unwrap().last().unwrap()["content"],
        super::CUT_OFF
    );
}

#[tokio::test]
async fn interrupt_stops_before_the_next_model_turn() {
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_call(
            "edit_file",
            args(json!({"path": "README.md", "old_string": "widgets", "new_string": "gadgets"})),
        ),
        ScriptStep::text("never reached"),
    ])
    .await
    .unwrap();
    let agent = agent(&model, 10);
    let ws = workspace();
    let cancel = CancellationToken::new();
    // Capacity 1: the loop cannot emit the Observation before the Action was taken.
    let (tx, mut rx) = mpsc::channel::<TaskEvent>(1);
    let consumer = async {
        let mut seen = Vec::new();
        while let Some(event) = rx.recv().await {
            if matches!(event.payload, Some(task_event::Payload::Action(_))) {
                cancel.cancel();
            }
            seen.push(event);
        }
        seen
    };
    let (result, events) = tokio::join!(
        agent.run_in(&ws, request(), tx, cancel.clone(), Steering::none()),
        consumer
    );
    let outcome = result.unwrap();
    assert_eq!(outcome.finish, Finish::Interrupted);
    assert_eq!(
        describe_all(&events),
        vec![
            "action edit_file",
            "observation edit_file ok [modified README.md +1 -1]",
            "checkpoint interrupted"
        ]
    );
    assert_eq!(model.requests().len(), 1);
    // The edit made before the interrupt is in the workspace.
    assert_eq!(ws.file("README.md").unwrap(), "# gadgets\n");
    assert_eq!(
        checkpoint_state(&events)["files_changed"],
        json!([{"path": "README.md", "change": "modified", "sha256": digest("# gadgets\n")}])
    );
}

#[tokio::test]
async fn an_interrupt_before_the_start_calls_no_model() {
    let model = ScriptedModel::start(vec![ScriptStep::text("never")])
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::channel(10);
    let cancel = CancellationToken::new();
    cancel.cancel();
    let outcome = agent(&model, 10)
        .run_in(&workspace(), request(), tx, cancel, Steering::none())
        .await
        .unwrap();
    assert_eq!(outcome.finish, Finish::Interrupted);
    assert_eq!(
        describe(&rx.recv().await.unwrap()),
        "checkpoint interrupted"
    );
    assert!(model.requests().is_empty());
}

#[tokio::test]
async fn an_unusable_session_fails_before_the_model_is_asked() {
    let model = ScriptedModel::start(vec![ScriptStep::text("never")])
        .await
        .unwrap();
    let ws = workspace();
    ws.go_down(0, tonic::Status::not_found("session session-1 not found"));
    let (result, events) = run(&agent(&model, 10), &ws, request()).await;
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Session { .. }), "{err:?}");
    assert_eq!(
        err.chain(),
        "sandbox session session-1 is not usable: sandbox ListDirectory failed: session session-1 not found"
    );
    assert_eq!(describe_all(&events), vec!["error error recoverable=false"]);
    assert!(model.requests().is_empty());
}

#[tokio::test]
async fn a_sandbox_outage_mid_task_ends_it() {
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_call("read_file", args(json!({"path": "README.md"}))),
        ScriptStep::text("never"),
    ])
    .await
    .unwrap();
    let ws = workspace();
    // The session check passes, then the sandbox is gone.
    ws.go_down(1, tonic::Status::unavailable("connection refused"));
    let (result, events) = run(&agent(&model, 10), &ws, request()).await;
    assert!(
        matches!(
            result,
            Err(Error::Sandbox {
                operation: "ReadFile",
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(
        describe_all(&events),
        vec![
            "action read_file",
            "observation read_file error",
            "error error recoverable=true"
        ]
    );
}

#[tokio::test]
async fn a_closed_event_stream_stops_the_task() {
    let model = ScriptedModel::start(vec![ScriptStep::text("done")])
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(10);
    drop(rx);
    let result = agent(&model, 10)
        .run_in(
            &workspace(),
            request(),
            tx,
            CancellationToken::new(),
            Steering::none(),
        )
        .await;
    assert!(matches!(result, Err(Error::EventsClosed)), "{result:?}");
}

#[tokio::test]
async fn invalid_requests_are_refused() {
    let model = ScriptedModel::start(vec![]).await.unwrap();
    let agent = agent(&model, 10);
    let cases: Vec<(TaskRequest, &str)> = vec![
        (
            TaskRequest {
                objective: "  ".into(),
                ..request()
            },
            "invalid task request: objective is empty",
        ),
        (
            TaskRequest {
                repo: None,
                ..request()
            },
            "invalid task request: repo.sandbox_session_id is empty",
        ),
        (
            TaskRequest {
                task_id: String::new(),
                ..request()
            },
            "invalid task request: task_id is empty",
        ),
        (
            TaskRequest {
                tools: vec![Tool {
                    name: "parse_ast".into(),
                    ..Tool::default()
                }],
                ..request()
            },
            "invalid task request: unknown tool \"parse_ast\" requested; the coding agent's tools are: read_file, list_directory, search_files, edit_file, create_file, delete_file, apply_diff, run_tests, run_command",
        ),
    ];
    for (request, message) in cases {
        let (tx, _rx) = mpsc::channel(10);
        let err = agent
            .run(request, tx, CancellationToken::new(), Steering::none())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), message);
    }
    assert!(model.requests().is_empty());
}

#[test]
fn bad_configuration_is_refused() {
    let config = |max_steps| {
        AgentConfig::new(
            ModelConfig {
                base_url: "http://127.0.0.1:1/v1".into(),
                api_key: None,
                model: "m".into(),
                timeout: Duration::from_secs(1),
                ..ModelConfig::default()
            },
            max_steps,
        )
    };
    let client = MemorySandbox::new;
    let err = CodingAgent::new(config(0), client()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid agent configuration: max_steps must be at least 1"
    );
    let mut bad_url = config(3);
    bad_url.model.base_url = "nope".into();
    let err = CodingAgent::new(bad_url, client()).unwrap_err();
    assert!(err.chain().contains("not a URL"), "{}", err.chain());
}

/// A constraint a human adds while the task runs reaches the model before its next step, and
/// the agent reports it; the task's own constraints from the supervisor are in the prompt.
#[tokio::test]
async fn constraints_added_mid_flight_reach_the_model_at_its_next_step() {
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_call("read_file", args(json!({"path": "app/hello.py"}))),
        ScriptStep::text("Nothing to change after all."),
    ])
    .await
    .unwrap();
    let agent = agent(&model, 10);
    let tasks = cap_agent_server::RunningTasks::new("coding");
    let (_cancel, guard) = tasks.register("task-1").unwrap();
    let mut request = request();
    if let Some(context) = request.context.as_mut() {
        context.human_constraints = vec!["Keep the README as it is".to_owned()];
    }
    let (tx, mut rx) = mpsc::channel(1000);
    let steering = guard.steering();
    assert!(
        tasks
            .add_constraint("task-1", "Leave shout() alone")
            .accepted
    );
    let result = agent
        .run_in(
            &workspace(),
            request,
            tx,
            CancellationToken::new(),
            steering,
        )
        .await;
    result.unwrap();
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        events.push(event);
    }
    assert_eq!(describe(&events[0]), "checkpoint constraint_added");
    let Some(task_event::Payload::Checkpoint(added)) = &events[0].payload else {
        panic!()
    };
    assert_eq!(added.description, "Leave shout() alone");
    let messages = model.requests()[0]["messages"].as_array().unwrap().clone();
    let user = messages[1]["content"].as_str().unwrap();
    assert!(
        user.contains("## human_constraints\n- Keep the README as it is"),
        "{user}"
    );
    let last = messages.last().unwrap()["content"].as_str().unwrap();
    assert!(
        last.starts_with("A human reviewer added a constraint")
            && last.ends_with("Leave shout() alone"),
        "{last}"
    );
    // Taken once: the next request does not repeat it.
    let again = model.requests()[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["content"]
                .as_str()
                .is_some_and(|c| c.contains("Leave shout()"))
        })
        .count();
    assert_eq!(again, 1);
}

/// A call refused for safety (a path out of the workspace, `.git`) is reported as a warning
/// event, not only told to the model.
#[tokio::test]
async fn refused_calls_are_reported_as_events() {
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_call("read_file", args(json!({"path": "../../etc/passwd"}))),
        ScriptStep::tool_call(
            "create_file",
            args(json!({"path": ".git/hooks/pre-commit", "content": "evil"})),
        ),
        ScriptStep::tool_call("read_file", args(json!({"path": "missing.py"}))),
        ScriptStep::text("Gave up."),
    ])
    .await
    .unwrap();
    let (result, events) = run(&agent(&model, 10), &workspace(), request()).await;
    result.unwrap();
    let warnings: Vec<String> = events
        .iter()
        .filter_map(|event| match &event.payload {
            Some(task_event::Payload::Error(e)) if e.severity == "warning" => {
                Some(e.message.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings[0]
            .starts_with("the read_file call was refused: invalid path \"../../etc/passwd\""),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[1].starts_with("the create_file call was refused: invalid path")
            && warnings[1].contains(".git"),
        "{}",
        warnings[1]
    );
}

/// What the agent reports for a file it left holding `text`.
fn digest(text: &str) -> Option<String> {
    Some(cap_sandbox_client::content_digest(text.as_bytes()))
}

#[tokio::test]
async fn a_primary_model_that_cannot_be_reached_hands_over_to_the_fallback_and_says_so() {
    let fallback = ScriptedModel::start(vec![
        ScriptStep::tool_call("read_file", args(json!({"path": "README.md"}))),
        ScriptStep::text("Nothing to change."),
    ])
    .await
    .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let primary = ModelConfig {
        base_url: closed_url,
        model: "primary".to_owned(),
        timeout: Duration::from_secs(5),
        ..ModelConfig::default()
    };
    let mut config = AgentConfig::new(primary, 10);
    config.fallbacks = vec![ModelConfig {
        base_url: fallback.base_url(),
        model: "fallback".to_owned(),
        timeout: Duration::from_secs(5),
        ..ModelConfig::default()
    }];
    config.retry = RetryPolicy {
        max_attempts: 1,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
    };
    let agent = CodingAgent::new(config, MemorySandbox::new()).unwrap();
    let (result, events) = run(&agent, &workspace(), request()).await;

    assert_eq!(result.unwrap().finish, Finish::Finished);
    assert_eq!(fallback.requests().len(), 2);
    let warnings: Vec<String> = events
        .iter()
        .filter_map(|event| match event.payload.as_ref()? {
            task_event::Payload::Error(e) if e.severity == "warning" => Some(e.message.clone()),
            _ => None,
        })
        .collect();
    // Reported once, at the hand-over, not at each turn.
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].starts_with("the model endpoint before it failed, so fallback at http://")
            && warnings[0].contains(": primary at http://")
            && warnings[0].contains("cannot connect to the model endpoint"),
        "{}",
        warnings[0]
    );
}

fn tiny_window_agent(model: &ScriptedModel) -> CodingAgent {
    let mut config = AgentConfig::new(
        ModelConfig {
            base_url: model.base_url(),
            model: "qwen2.5-coder".to_owned(),
            timeout: Duration::from_secs(10),
            ..ModelConfig::default()
        },
        10,
    );
    // Any conversation passes it: condensed as soon as there is something to condense.
    config.context_window = 100;
    config.retry = RetryPolicy {
        max_attempts: 1,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
    };
    CodingAgent::new(config, MemorySandbox::new()).unwrap()
}

#[tokio::test]
async fn a_conversation_past_the_window_is_condensed_and_the_task_still_completes() {
    let read = |path: &str| ScriptStep::tool_call("read_file", args(json!({"path": path})));
    let model = ScriptedModel::start(vec![
        read("app/hello.py"),
        read("README.md"),
        read("app/hello.py"),
        // Asked for a summary before the fourth turn (three turns: the first is condensable).
        ScriptStep::text("Read hello.py: greet() returns 'hello'."),
        ScriptStep::text("greet() is fine as it is."),
    ])
    .await
    .unwrap();
    let (result, events) = run(&tiny_window_agent(&model), &workspace(), request()).await;
    let outcome = result.unwrap();
    assert_eq!(outcome.finish, Finish::Finished);
    assert_eq!(outcome.summary, "greet() is fine as it is.");

    let condensed: Vec<&cap_proto::agent::v1::Checkpoint> = events
        .iter()
        .filter_map(|event| match event.payload.as_ref()? {
            task_event::Payload::Checkpoint(c)
                if c.kind() == cap_proto::agent::v1::CheckpointKind::ContextCondensed =>
            {
                Some(c)
            }
            _ => None,
        })
        .collect();
    assert_eq!(condensed.len(), 1, "{events:#?}");
    assert!(
        condensed[0].description.contains(
            "of a 100-token window) was condensed: 2 earlier messages replaced by a summary"
        ),
        "{}",
        condensed[0].description
    );
    let state: Value = serde_json::from_str(&condensed[0].state_json).unwrap();
    assert_eq!(state["summary"], "Read hello.py: greet() returns 'hello'.");

    let requests = model.requests();
    assert_eq!(requests.len(), 5);
    // The summariser saw the older turn as text, with no tools to call.
    let summariser = &requests[3];
    assert!(summariser.get("tools").is_none(), "{summariser}");
    assert!(summariser.to_string().contains("[called read_file"));
    // The last request: system prompt and task first, the summary, then the latest turns.
    let last = requests[4]["messages"].as_array().unwrap();
    assert_eq!(last[0]["role"], "system");
    assert!(
        last[1]["content"]
            .as_str()
            .unwrap()
            .contains("Make greet() say hi.")
    );
    assert!(
        last[2]["content"]
            .as_str()
            .unwrap()
            .starts_with(crate::condense::SUMMARY_HEADER)
    );
    assert_eq!(last.len(), 3 + 4, "the summary and the last two turns");
}

#[tokio::test]
async fn when_the_model_cannot_summarise_the_turns_are_listed_instead() {
    let read = |path: &str| ScriptStep::tool_call("read_file", args(json!({"path": path})));
    let model = ScriptedModel::start(vec![
        read("app/hello.py"),
        read("README.md"),
        read("app/hello.py"),
        ScriptStep::HttpError {
            status: 400,
            message: Some("summaries are not served".to_owned()),
        },
        ScriptStep::text("Done."),
    ])
    .await
    .unwrap();
    let (result, events) = run(&tiny_window_agent(&model), &workspace(), request()).await;
    assert_eq!(result.unwrap().finish, Finish::Finished);
    let description = events
        .iter()
        .find_map(|event| match event.payload.as_ref()? {
            task_event::Payload::Checkpoint(c)
                if c.kind() == cap_proto::agent::v1::CheckpointKind::ContextCondensed =>
            {
                Some(c.description.clone())
            }
            _ => None,
        })
        .unwrap();
    assert!(
        description.contains("the model could not summarise (")
            && description.contains("summaries are not served"),
        "{description}"
    );
    let last = model.requests()[4].to_string();
    assert!(last.contains("- called read_file"), "{last}");
}
