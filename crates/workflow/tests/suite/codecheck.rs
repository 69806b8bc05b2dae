//! Suspicious-code checks at review: reported as warnings, kept in the state, listed in the
//! pull request, never stopping the task.

use cap_proto::agent::v1::task_event::Payload;
use pretty_assertions::assert_eq;

use super::support::{Harness, Step, config};

#[tokio::test]
async fn suspicious_code_the_agent_adds_is_reported_once_and_listed_in_the_pull_request() {
    let h = Harness::start(config()).await;
    // The commit fails once after the checks ran: review runs again, and reports nothing twice.
    h.github.fail(
        "CommitChanges",
        tonic::Status::unavailable("the forge is restarting"),
    );
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::edit(
        "calc.py",
        "import subprocess\n\n\ndef add(a, b):\n    return a + b\n\n\ndef run(cmd):\n    \
         subprocess.call(cmd, shell=True)\n    return eval(input())\n",
    )]);
    h.testing
        .script([Step::finish("tests_passed"), Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    h.wait_for(&task.task_id, "completed").await;
    assert_eq!(h.testing.requests().len(), 2, "review ran twice");

    let warnings: Vec<String> = h
        .events(&task.task_id)
        .await
        .into_iter()
        .filter_map(|record| match record.event.payload? {
            Payload::Error(e) if e.message.starts_with("suspicious code") => {
                assert_eq!(e.severity, "warning");
                Some(e.message)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        warnings,
        [
            "suspicious code, for the reviewer to decide: calc.py:9 [python.shell, high] runs a \
             shell command built at run time: input that reaches it can inject commands: \
             `subprocess.call(cmd, shell=True)`",
            "suspicious code, for the reviewer to decide: calc.py:10 [python.eval, high] \
             evaluates code given at run time: whoever controls the text runs code: `return \
             eval(input())`",
        ]
    );
    // Reported, not stopping: the change is committed and the pull request lists them.
    assert_eq!(h.github.commits.lock().unwrap().len(), 1);
    let body = h.github.pull_requests.lock().unwrap()[0].body.clone();
    assert!(body.contains("## Suspicious code"), "{body}");
    assert!(
        body.contains("- `calc.py:9` **python.shell** (high)")
            && body.contains("- `calc.py:10` **python.eval** (high)"),
        "{body}"
    );
    // Kept in the state the task ended with.
    let last = h.store.checkpoints(&task.task_id).await.unwrap();
    let state: cap_workflow::WorkflowState =
        serde_json::from_str(&last.last().unwrap().state_json).unwrap();
    let rules: Vec<&str> = state
        .suspicious_code
        .iter()
        .map(|f| f.rule.as_str())
        .collect();
    assert_eq!(rules, ["python.shell", "python.eval"]);
}

#[tokio::test]
async fn a_clean_change_has_no_suspicious_code_section() {
    let h = Harness::start(config()).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding
        .script([Step::edit("calc.py", "def add(a, b):\n    return a + b\n")]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    h.wait_for(&task.task_id, "completed").await;
    let body = h.github.pull_requests.lock().unwrap()[0].body.clone();
    assert!(!body.contains("Suspicious code"), "{body}");
}
