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
