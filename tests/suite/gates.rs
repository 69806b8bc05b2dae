//! The security gates through the whole fleet: a model that writes a credential into the
//! change gets no commit, and the credential shows nowhere.

use pretty_assertions::assert_eq;
use serde_json::json;

use cap_testkit::ScriptStep;

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_written_by_the_model_is_never_committed_streamed_or_logged() {
    let secret = cap_testkit::fake_github_token();
    let edit = json!({
        "path": "calc.py",
        "old_string": "    return a - b\n\n\ndef subtract",
        "new_string": format!("    return a + b\n\n\nAPI_TOKEN = \"{secret}\"\n\n\ndef subtract"),
    });
    let script = vec![
        ScriptStep::tool_call("edit_file", edit.to_string()).with_content(format!(
            "Fixing add() and keeping the token {secret} handy."
        )),
        ScriptStep::text("Fixed add()."),
    ];
    let fleet = TestFleet::start(script, None).await;
    let repository_id = format!("e2e/secret-{}", uuid::Uuid::new_v4().simple());
    let bare = fleet.create_repository(&repository_id, &fixtures().join("python-calculator"));

    let task_id = fleet
        .submit(&repository_id, "Fix the bug that makes test_add fail.")
        .await;
    let events = fleet.stream_events(&task_id).await.unwrap();
    let task = fleet.wait_for_end(&task_id).await.unwrap();

    assert_eq!(task["status"], "failed", "{task}\n{}", fleet.logs());
    let message = task["error_message"].as_str().unwrap();
    assert!(
        message.contains("github-pat") && message.contains("calc.py:9:"),
        "{message}"
    );
    let critical = find_event(&events, 0, "error", |d| d["severity"] == "critical");
    assert!(critical.is_ok(), "{events:#?}");
    // Nothing in the forge but the base branch.
    assert_eq!(
        git(&bare, &["branch", "--format=%(refname:short)"]).trim(),
        "main"
    );
    // The secret is in no event, no task field and no log line.
    let streamed = serde_json::to_string(&events).unwrap();
    assert!(!streamed.contains(&secret), "an event carries the secret");
    assert!(!task.to_string().contains(&secret));

    // The workspace is kept for an Admin, who reads it redacted; a developer may not.
    let (status, refused) = fleet.get("/api/v1/quarantine").await;
    assert_eq!(status, 403, "{refused}");
    let admin = fleet
        .fleet
        .issue_token("e2e-admin", cap_identity::Role::Admin)
        .await
        .unwrap();
    let (status, kept) = fleet.get_with(&admin, "/api/v1/quarantine").await;
    assert_eq!(status, 200, "{kept}");
    let entry = kept["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["task"]["task_id"] == task_id.as_str())
        .unwrap_or_else(|| panic!("{task_id} is not quarantined: {kept}"));
    assert_eq!(entry["files"], json!(["calc.py"]));
    let (status, file) = fleet
        .get_with(
            &admin,
            &format!("/api/v1/quarantine/{task_id}/files?path=calc.py"),
        )
        .await;
    assert_eq!(status, 200, "{file}");
    let content = file["content"].as_str().unwrap();
    assert!(content.contains("return a + b"), "{content}");
    assert!(content.contains("API_TOKEN = ") && !content.contains(&secret));
    assert!(!kept.to_string().contains(&secret));
    assert_every_log_is_free_of(&fleet, &secret);
}

/// Reads every service's log (each must exist and hold lines, or the check proves nothing)
/// and fails if one carries `secret`.
fn assert_every_log_is_free_of(fleet: &TestFleet, secret: &str) {
    let names = fleet.fleet.process_names();
    for service in cap_fleet::SERVICES {
        assert!(
            names.iter().any(|name| name == service),
            "no {service} among {names:?}"
        );
    }
    for name in names {
        let path = fleet.fleet.config().log_dir().join(format!("{name}.log"));
        let log = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{name}'s log {}: {error}", path.display()));
        assert!(log.lines().count() > 0, "{name}'s log is empty");
        assert!(!log.contains(secret), "{name}'s log carries the secret");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspicious_code_written_by_the_model_is_reported_and_listed_in_the_pull_request() {
    let edit = json!({
        "path": "calc.py",
        "old_string": "    return a - b\n\n\ndef subtract",
        "new_string": "    return a + b\n\n\ndef run(cmd):\n    subprocess.call(cmd, shell=True)\n    return eval(input())\n\n\ndef subtract",
    });
    let script = vec![
        ScriptStep::tool_call("edit_file", edit.to_string()),
        ScriptStep::text("Fixed add()."),
    ];
    let fleet = TestFleet::start(script, None).await;
    let repository_id = format!("e2e/codecheck-{}", uuid::Uuid::new_v4().simple());
    fleet.create_repository(&repository_id, &fixtures().join("python-calculator"));

    let task_id = fleet
        .submit(&repository_id, "Fix the bug that makes test_add fail.")
        .await;
    let events = fleet.stream_events(&task_id).await.unwrap();
    let task = fleet.wait_for_end(&task_id).await.unwrap();

    // Reported, not stopping: the task completes with its pull request.
    assert_eq!(task["status"], "completed", "{task}\n{}", fleet.logs());
    let shell = find_event(&events, 0, "error", |d| {
        d["severity"] == "warning"
            && d["message"]
                .as_str()
                .is_some_and(|m| m.contains("calc.py:10 [python.shell, high]"))
    });
    assert!(shell.is_ok(), "{events:#?}");
    let eval = find_event(&events, 0, "error", |d| {
        d["message"]
            .as_str()
            .is_some_and(|m| m.contains("calc.py:11 [python.eval, high]"))
    });
    assert!(eval.is_ok(), "{events:#?}");
    let pr_id = task["pull_request_id"].as_str().unwrap().to_owned();
    let (status, pr) = fleet.get(&format!("/api/v1/pull-requests/{pr_id}")).await;
    assert_eq!(status, 200, "{pr}");
    let body = pr["body"].as_str().unwrap();
    assert!(
        body.contains("## Suspicious code")
            && body.contains("- `calc.py:10` **python.shell** (high)")
            && body.contains("- `calc.py:11` **python.eval** (high)"),
        "{body}"
    );
}

/// A `conftest.py` that rewrites `target` at each test run, as a hostile repository's does.
fn hostile_conftest(target: &str) -> String {
    format!(
        "import pathlib\n\n\ndef pytest_sessionstart(session):\n    path = \
         pathlib.Path(__file__).with_name(\"{target}\")\n    with path.open(\"a\") as file:\n        \
         file.write(\"\\nTOUCHED_BY_CONFTEST = True\\n\")\n"
    )
}

fn fix_add() -> ScriptStep {
    let edit = json!({
        "path": "calc.py",
        "old_string": "    return a - b\n\n\ndef subtract",
        "new_string": "    return a + b\n\n\ndef subtract",
    });
    ScriptStep::tool_call("edit_file", edit.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_a_test_run_rewrites_is_left_out_of_the_pull_request_and_reported() {
    let script = vec![
        fix_add(),
        ScriptStep::tool_call("run_tests", "{}"),
        ScriptStep::text("Fixed add()."),
    ];
    let fleet = TestFleet::start(script, None).await;
    let repository_id = format!("e2e/side-effect-{}", uuid::Uuid::new_v4().simple());
    let bare = fleet.create_repository_with(
        &repository_id,
        &fixtures().join("python-calculator"),
        &[
            ("util.py", "VALUE = 1\n"),
            ("conftest.py", &hostile_conftest("util.py")),
        ],
    );

    let task_id = fleet
        .submit(&repository_id, "Fix the bug that makes test_add fail.")
        .await;
    let events = fleet.stream_events(&task_id).await.unwrap();
    let task = fleet.wait_for_end(&task_id).await.unwrap();

    assert_eq!(task["status"], "completed", "{task}\n{}", fleet.logs());
    let reported = find_event(&events, 0, "error", |d| {
        d["severity"] == "warning"
            && d["message"].as_str().is_some_and(|m| {
                m.starts_with("left out of the pull request") && m.ends_with(": util.py")
            })
    });
    assert!(reported.is_ok(), "{reported:?}");
    let pr_id = task["pull_request_id"].as_str().unwrap().to_owned();
    let (status, pr) = fleet.get(&format!("/api/v1/pull-requests/{pr_id}")).await;
    assert_eq!(status, 200, "{pr}");
    let diff = pr["diff"].as_str().unwrap();
    assert_eq!(diff.matches("diff --git").count(), 1, "{diff}");
    assert!(diff.contains("a/calc.py") && !diff.contains("TOUCHED_BY_CONFTEST"));
    let body = pr["body"].as_str().unwrap();
    assert!(
        body.contains("## Left out") && body.contains("- `util.py`"),
        "{body}"
    );
    let branch = pr["head_branch"].as_str().unwrap();
    assert_eq!(
        git(&bare, &["show", &format!("{branch}:util.py")]),
        "VALUE = 1\n"
    );
}

/// The model creates a CI workflow that leaks the token and a `.gitattributes` naming a
/// filter driver.
fn protected_script() -> Vec<ScriptStep> {
    let workflow = json!({
        "path": ".github/workflows/evil.yml",
        "content": "on: pull_request_target\njobs:\n  leak:\n    runs-on: ubuntu-latest\n    \
                    steps:\n      - run: echo ${{ secrets.GITHUB_TOKEN }}\n",
    });
    let attributes = json!({"path": ".gitattributes", "content": "* filter=evil\n"});
    vec![
        fix_add(),
        ScriptStep::tool_call("create_file", workflow.to_string()),
        ScriptStep::tool_call("create_file", attributes.to_string()),
        ScriptStep::text("Fixed add()."),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ci_workflow_and_gitattributes_wait_for_a_human_who_rejects_or_approves() {
    // Two tasks in turn, each playing the same script.
    let script = [protected_script(), protected_script()].concat();
    let fleet = TestFleet::start(script, None).await;
    let repository_id = format!("e2e/protected-{}", uuid::Uuid::new_v4().simple());
    let bare = fleet.create_repository(&repository_id, &fixtures().join("python-calculator"));
    let prompt = "Fix the bug that makes test_add fail.";

    // Rejected: the task ends, nothing reaches the forge.
    let rejected = fleet.submit(&repository_id, prompt).await;
    let task = fleet.wait_for_end(&rejected).await.unwrap();
    assert_eq!(task["status"], "paused", "{task}\n{}", fleet.logs());
    let events = fleet.recorded_events(&rejected).await;
    let asked = find_event(&events, 0, "checkpoint_reached", |d| {
        d["type"] == "human_approval_required"
            && d["description"].as_str().is_some_and(|text| {
                text.contains(".github/workflows/evil.yml (") && text.contains(".gitattributes (")
            })
    });
    assert!(asked.is_ok(), "{asked:?}");
    let (status, answer) = fleet
        .post_as_reviewer(
            &format!("/api/v1/tasks/{rejected}/reject"),
            json!({"reason": "no CI changes"}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let task = wait_for_status(&fleet, &rejected, "failed").await;
    assert!(
        task["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("rejected") && m.contains("no CI changes")),
        "{task}"
    );
    assert_eq!(
        git(&bare, &["branch", "--format=%(refname:short)"]).trim(),
        "main"
    );

    // Approved by a second person: the change is committed with both files.
    let approved = fleet.submit(&repository_id, prompt).await;
    let task = fleet.wait_for_end(&approved).await.unwrap();
    assert_eq!(task["status"], "paused", "{task}\n{}", fleet.logs());
    let (status, refused) = fleet
        .post(&format!("/api/v1/tasks/{approved}/approve"), json!({}))
        .await;
    assert_eq!(
        status, 403,
        "the author approved their own change: {refused}"
    );
    let (status, answer) = fleet
        .post_as_reviewer(&format!("/api/v1/tasks/{approved}/approve"), json!({}))
        .await;
    assert_eq!(status, 202, "{answer}");
    let task = wait_for_status(&fleet, &approved, "completed").await;
    let branch = git(&bare, &["branch", "--format=%(refname:short)"]);
    let branch = branch
        .lines()
        .find(|name| *name != "main")
        .unwrap_or_else(|| panic!("no branch for {task}"));
    let files = git(&bare, &["diff", "--name-only", "main", branch]);
    assert_eq!(
        files,
        ".gitattributes\n.github/workflows/evil.yml\ncalc.py\n"
    );
}

/// Polls the task until its status is `status` (failing on another end).
async fn wait_for_status(fleet: &TestFleet, task_id: &str, status: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + TASK_DEADLINE;
    loop {
        let (_, task) = fleet.get(&format!("/api/v1/tasks/{task_id}")).await;
        if task["status"] == status {
            return task;
        }
        let ended = matches!(task["status"].as_str(), Some("completed" | "failed"));
        assert!(
            !ended && std::time::Instant::now() < deadline,
            "waiting for {status}: {task}\n{}",
            fleet.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_out_of_the_workspace_or_into_git_are_refused_in_every_file_tool_and_reported() {
    let bad_paths = ["../outside.txt", "/etc/passwd", ".git/config"];
    let mut calls = Vec::new();
    for path in bad_paths {
        calls.push(("read_file", json!({"path": path})));
        calls.push(("list_directory", json!({"path": path})));
        calls.push((
            "edit_file",
            json!({"path": path, "old_string": "a", "new_string": "b"}),
        ));
        calls.push(("create_file", json!({"path": path, "content": "x\n"})));
        calls.push(("delete_file", json!({"path": path})));
        calls.push((
            "apply_diff",
            json!({"diff_text": format!(
                "--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+x\n"
            )}),
        ));
        calls.push(("run_command", json!({"cmd": "true", "cwd": path})));
    }
    calls.push(("search_files", json!({"pattern": "root", "glob": "../**"})));
    let mut script: Vec<ScriptStep> = calls
        .iter()
        .map(|(tool, arguments)| ScriptStep::tool_call(*tool, arguments.to_string()))
        .collect();
    script.push(fix_add());
    script.push(ScriptStep::text("Fixed add()."));
    let fleet = TestFleet::start(script, None).await;
    let repository_id = format!("e2e/paths-{}", uuid::Uuid::new_v4().simple());
    fleet.create_repository(&repository_id, &fixtures().join("python-calculator"));

    let task_id = fleet
        .submit(&repository_id, "Fix the bug that makes test_add fail.")
        .await;
    let events = fleet.stream_events(&task_id).await.unwrap();
    let task = fleet.wait_for_end(&task_id).await.unwrap();

    assert_eq!(task["status"], "completed", "{task}\n{}", fleet.logs());
    let refusals: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "error" && e["data"]["severity"] == "warning")
        .filter_map(|e| e["data"]["message"].as_str())
        .filter(|m| m.contains(" call was refused: "))
        .collect();
    let expected: Vec<String> = calls
        .iter()
        .map(|(tool, _)| format!("the {tool} call was refused: "))
        .collect();
    assert_eq!(
        refusals.len(),
        expected.len(),
        "refused calls reported: {refusals:#?}"
    );
    for (refusal, expected) in refusals.iter().zip(&expected) {
        assert!(
            refusal.starts_with(expected.as_str()),
            "{refusal} / {expected}"
        );
    }
    // Nothing was written outside the workspace nor into its git directory.
    let pr_id = task["pull_request_id"].as_str().unwrap().to_owned();
    let (_, pr) = fleet.get(&format!("/api/v1/pull-requests/{pr_id}")).await;
    let diff = pr["diff"].as_str().unwrap();
    assert_eq!(diff.matches("diff --git").count(), 1, "{diff}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_dependency_with_a_known_advisory_waits_for_a_human() {
    let requirements = json!({"path": "requirements.txt", "content": "requests==2.0.0\n"});
    let script = vec![
        fix_add(),
        ScriptStep::tool_call("create_file", requirements.to_string()),
        ScriptStep::text("Fixed add() and pinned requests."),
    ];
    let fleet = TestFleet::start(script, None).await;
    // The operator imports an advisory snapshot into the running fleet, as they would.
    let osv = tempfile::tempdir().unwrap();
    let record = json!({
        "schema_version": "1.6.0",
        "id": "TEST-2026-0042",
        "modified": "2026-01-01T00:00:00Z",
        "summary": "requests leaks credentials on redirects",
        "affected": [{
            "package": {"ecosystem": "PyPI", "name": "requests"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.32.0"}]}]
        }],
        "database_specific": {"severity": "HIGH"}
    });
    std::fs::write(osv.path().join("TEST-2026-0042.json"), record.to_string()).unwrap();
    let imported = std::process::Command::new(fleet.fleet.config().bin_dir.join("cap"))
        .arg("advisories")
        .arg("--data-dir")
        .arg(&fleet.fleet.config().data_dir)
        .arg("import")
        .arg(osv.path())
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let repository_id = format!("e2e/advisory-{}", uuid::Uuid::new_v4().simple());
    fleet.create_repository(&repository_id, &fixtures().join("python-calculator"));

    let task_id = fleet
        .submit(&repository_id, "Fix the bug that makes test_add fail.")
        .await;
    let task = fleet.wait_for_end(&task_id).await.unwrap();
    assert_eq!(task["status"], "paused", "{task}\n{}", fleet.logs());
    let events = fleet.recorded_events(&task_id).await;
    let asked = find_event(&events, 0, "checkpoint_reached", |d| {
        d["type"] == "human_approval_required"
            && d["description"].as_str().is_some_and(|text| {
                text.contains("known vulnerabilities")
                    && text.contains("requests")
                    && text.contains("TEST-2026-0042")
            })
    });
    assert!(asked.is_ok(), "{asked:?}");

    let (status, answer) = fleet
        .post_as_reviewer(
            &format!("/api/v1/tasks/{task_id}/approve"),
            json!({"reason": "upgrade tracked separately"}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let task = wait_for_status(&fleet, &task_id, "completed").await;
    let pr_id = task["pull_request_id"].as_str().unwrap().to_owned();
    let (_, pr) = fleet.get(&format!("/api/v1/pull-requests/{pr_id}")).await;
    let body = pr["body"].as_str().unwrap();
    assert!(
        body.contains("## Dependencies") && body.contains("TEST-2026-0042"),
        "{body}"
    );
}
