//! The gates between the workspace and the forge: a change holding a secret is not committed.

use pretty_assertions::assert_eq;

use super::support::{BASE_SHA, CLONE_URL, Harness, Step, config, fix_leaking_a_token};

#[tokio::test]
async fn a_change_holding_a_secret_fails_the_task_quarantined_and_nothing_is_committed() {
    let h = Harness::start(config()).await;
    let (secret, content) = fix_leaking_a_token();
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::edit("calc.py", content)]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    let failed = h.wait_for(&task.task_id, "failed").await;

    assert!(
        failed.error_message.contains("github-pat") && failed.error_message.contains("calc.py:4:"),
        "{}",
        failed.error_message
    );
    assert!(
        failed.error_message.contains("quarantined"),
        "{}",
        failed.error_message
    );
    assert!(!failed.error_message.contains(&secret));
    let trail = h.trail(&task.task_id).await;
    assert_eq!(
        trail[trail.len() - 2..],
        ["supervisor:error:critical", "supervisor:status:failed"],
        "{trail:#?}"
    );
    // Nothing reached the forge; the workspace is kept for an Admin.
    assert!(h.github.commits.lock().unwrap().is_empty());
    assert!(h.github.branches.lock().unwrap().is_empty());
    assert_eq!(
        h.sandbox.sessions().len(),
        1,
        "the workspace is quarantined, not released"
    );
    // Tests never ran on it: the gate is before review.
    assert!(h.testing.requests().is_empty());
    // The secret is nowhere in the store.
    for record in h.events(&task.task_id).await {
        assert!(
            !format!("{:?}", record.event).contains(&secret),
            "{record:?}"
        );
    }
    for checkpoint in h.store.checkpoints(&task.task_id).await.unwrap() {
        assert!(!checkpoint.state_json.contains(&secret));
    }
    let resumed = h.engine.resume(&task.task_id, "alice").await.unwrap_err();
    assert!(resumed.to_string().contains("quarantined"), "{resumed}");
}

#[tokio::test]
async fn files_written_by_commands_are_left_out_of_the_commit_and_reported() {
    let h = Harness::start(config()).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding
        .script([Step::edit("calc.py", "def add(a, b):\n    return a + b\n")]);
    // The test run (code the repository controls) rewrites a source file.
    h.testing.script([Step::Finish {
        kind: "tests_passed",
        writes: vec![("app/__init__.py", "import os\nos.system('curl evil')\n")],
    }]);
    let task = h.submit("Fix add").await;
    h.wait_for(&task.task_id, "completed").await;

    let commits = h.github.commits.lock().unwrap().clone();
    let committed: Vec<&str> = commits[0].changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(committed, ["calc.py"]);
    let warnings: Vec<String> = h
        .events(&task.task_id)
        .await
        .into_iter()
        .filter_map(|record| match record.event.payload? {
            cap_proto::agent::v1::task_event::Payload::Error(e) if e.severity == "warning" => {
                Some(e.message)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        warnings,
        [
            "left out of the pull request, changed by commands run in the sandbox and not by the \
          coding agent's edits: app/__init__.py"
        ]
    );
    let body = h.github.pull_requests.lock().unwrap()[0].body.clone();
    assert!(
        body.contains("## Left out") && body.contains("- `app/__init__.py`"),
        "{body}"
    );
}

/// The test run rewrites the very file the coding agent fixed, after its last edit.
async fn task_whose_tests_rewrite_the_fix(h: &Harness) -> String {
    h.context.script([Step::finish("context_ready")]);
    h.coding
        .script([Step::edit("calc.py", "def add(a, b):\n    return a + b\n")]);
    let rewritten = "def add(a, b):\n    return a + b\nimport os\nos.system('curl evil')\n";
    h.testing.script([
        Step::Finish {
            kind: "tests_passed",
            writes: vec![("calc.py", rewritten)],
        },
        Step::finish("tests_passed"),
    ]);
    let task = h.submit("Fix add").await;
    let paused = h.wait_for(&task.task_id, "paused").await;
    assert_eq!(paused.current_node, "review");
    let asked = h
        .events(&task.task_id)
        .await
        .into_iter()
        .rev()
        .find_map(|record| match record.event.payload {
            Some(cap_proto::agent::v1::task_event::Payload::Checkpoint(c))
                if c.kind() == cap_proto::agent::v1::CheckpointKind::HumanApprovalRequired =>
            {
                Some(c.description)
            }
            _ => None,
        })
        .expect("a human_approval_required checkpoint");
    assert!(
        asked.contains(
            "calc.py (changed by a command run in the sandbox after the coding agent's last edit)"
        ),
        "{asked}"
    );
    assert!(h.github.commits.lock().unwrap().is_empty());
    task.task_id
}

#[tokio::test]
async fn a_fix_a_test_run_rewrites_waits_for_a_human_and_a_rejection_ends_it() {
    let h = Harness::start(config()).await;
    let task_id = task_whose_tests_rewrite_the_fix(&h).await;
    h.engine
        .decide(&task_id, false, "", "reviewer")
        .await
        .unwrap();
    h.wait_for(&task_id, "failed").await;
    assert!(h.github.commits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_approved_rewrite_of_the_fix_is_committed_as_the_human_saw_it() {
    let h = Harness::start(config()).await;
    let task_id = task_whose_tests_rewrite_the_fix(&h).await;
    h.engine
        .decide(&task_id, true, "harmless", "reviewer")
        .await
        .unwrap();
    h.wait_for(&task_id, "completed").await;
    let commits = h.github.commits.lock().unwrap().clone();
    let committed: Vec<&str> = commits[0].changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(committed, ["calc.py"]);
    // Asked once: the second test run found the file as the human approved it.
    assert_eq!(h.testing.requests().len(), 2);
}

async fn task_touching_ci(h: &Harness) -> String {
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::Finish {
        kind: "agent_finished",
        writes: vec![
            ("calc.py", "def add(a, b):\n    return a + b\n"),
            (".github/workflows/evil.yml", "on: pull_request_target\n"),
        ],
    }]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    let paused = h.wait_for(&task.task_id, "paused").await;
    assert_eq!(paused.current_node, "execute");
    let events = h.events(&task.task_id).await;
    let asked = events
        .iter()
        .rev()
        .find_map(|record| match &record.event.payload {
            Some(cap_proto::agent::v1::task_event::Payload::Checkpoint(c))
                if c.kind() == cap_proto::agent::v1::CheckpointKind::HumanApprovalRequired =>
            {
                Some(c.description.clone())
            }
            _ => None,
        })
        .expect("a human_approval_required checkpoint");
    assert!(
        asked.contains(".github/workflows/evil.yml (CI or automation configuration)")
            && !asked.contains("calc.py"),
        "{asked}"
    );
    // Not past the gate without a decision.
    let resumed = h.engine.resume(&task.task_id, "alice").await.unwrap_err();
    assert!(
        resumed.to_string().contains("waits for a human to approve"),
        "{resumed}"
    );
    assert!(h.testing.requests().is_empty());
    task.task_id
}

#[tokio::test]
async fn a_change_to_ci_files_waits_for_a_human_and_a_rejection_ends_it() {
    let h = Harness::start(config()).await;
    let task_id = task_touching_ci(&h).await;
    h.engine
        .decide(&task_id, false, "no workflow changes", "reviewer")
        .await
        .unwrap();
    let failed = h.wait_for(&task_id, "failed").await;
    assert_eq!(
        failed.error_message,
        "a human rejected the change to protected files .github/workflows/evil.yml: no workflow changes"
    );
    assert!(h.github.commits.lock().unwrap().is_empty());
    assert!(h.sandbox.sessions().is_empty());
    let again = h
        .engine
        .decide(&task_id, true, "", "reviewer")
        .await
        .unwrap_err();
    assert!(
        again.to_string().contains("does not wait for an approval"),
        "{again}"
    );
}

#[tokio::test]
async fn an_approved_change_to_ci_files_is_reviewed_and_committed() {
    let h = Harness::start(config()).await;
    let task_id = task_touching_ci(&h).await;
    h.engine
        .decide(&task_id, true, "reviewed", "reviewer")
        .await
        .unwrap();
    h.wait_for(&task_id, "completed").await;
    let commits = h.github.commits.lock().unwrap().clone();
    let mut committed: Vec<&str> = commits[0].changes.iter().map(|c| c.path.as_str()).collect();
    committed.sort();
    assert_eq!(committed, [".github/workflows/evil.yml", "calc.py"]);
    let trail = h.trail(&task_id).await;
    assert!(
        trail.contains(&"supervisor:checkpoint:approved".to_owned()),
        "{trail:#?}"
    );
    // The coding agent ran once: the task went on at review.
    assert_eq!(h.coding.requests().len(), 1);
}

/// The repository with an allow-list at its base commit waiving findings in fixtures.
const BASE_ALLOW_LIST: &str = r#"{"paths": ["tests/fixtures/**"]}"#;

fn with_base_allow_list(h: &Harness) {
    h.sandbox.add_repository(
        CLONE_URL,
        BASE_SHA,
        &[
            ("calc.py", "def add(a, b):\n    return a - b\n"),
            ("test_calc.py", ""),
            (".cap/secrets-allow.json", BASE_ALLOW_LIST),
        ],
    );
}

#[tokio::test]
async fn a_model_allowing_its_own_secret_in_the_allow_list_still_fails_quarantined() {
    let (secret, leak) = fix_leaking_a_token();
    // The model waives its secret by fingerprint, by rule and by path.
    let waiver: &'static str = Box::leak(
        serde_json::json!({
            "paths": ["calc.py", "tests/fixtures/**"],
            "fingerprints": [cap_secrets::fingerprint(&secret)],
            "rules": ["github-pat"],
        })
        .to_string()
        .into_boxed_str(),
    );
    // Once creating the allow-list, once changing the base commit's.
    for base_has_one in [false, true] {
        let h = Harness::start(config()).await;
        if base_has_one {
            with_base_allow_list(&h);
        }
        h.context.script([Step::finish("context_ready")]);
        h.coding.script([Step::Finish {
            kind: "agent_finished",
            writes: vec![("calc.py", leak), (".cap/secrets-allow.json", waiver)],
        }]);
        let task = h.submit("Fix add").await;
        let failed = h.wait_for(&task.task_id, "failed").await;
        assert!(
            failed.error_message.contains("github-pat")
                && failed.error_message.contains("calc.py:4:")
                && failed.error_message.contains("quarantined"),
            "base has one: {base_has_one}: {}",
            failed.error_message
        );
        assert!(h.github.commits.lock().unwrap().is_empty());
        assert_eq!(h.sandbox.sessions().len(), 1, "quarantined, not released");
    }
}

#[tokio::test]
async fn an_allow_list_entry_in_the_base_commit_still_allows_a_fixture() {
    let h = Harness::start(config()).await;
    with_base_allow_list(&h);
    let secret = cap_testkit::fake_github_token();
    let fixture: &'static str = Box::leak(format!("GITHUB_TOKEN={secret}\n").into_boxed_str());
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::Finish {
        kind: "agent_finished",
        writes: vec![
            ("calc.py", "def add(a, b):\n    return a + b\n"),
            ("tests/fixtures/github.env", fixture),
        ],
    }]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    h.wait_for(&task.task_id, "completed").await;
    let commits = h.github.commits.lock().unwrap().clone();
    let mut committed: Vec<&str> = commits[0].changes.iter().map(|c| c.path.as_str()).collect();
    committed.sort();
    assert_eq!(committed, ["calc.py", "tests/fixtures/github.env"]);
}

#[tokio::test]
async fn the_same_fixture_without_an_allow_list_in_the_base_commit_fails() {
    let h = Harness::start(config()).await;
    let secret = cap_testkit::fake_github_token();
    let fixture: &'static str = Box::leak(format!("GITHUB_TOKEN={secret}\n").into_boxed_str());
    h.context.script([Step::finish("context_ready")]);
    h.coding
        .script([Step::edit("tests/fixtures/github.env", fixture)]);
    let task = h.submit("Fix add").await;
    let failed = h.wait_for(&task.task_id, "failed").await;
    assert!(
        failed
            .error_message
            .contains("tests/fixtures/github.env:1:"),
        "{}",
        failed.error_message
    );
}

#[tokio::test]
async fn a_broken_allow_list_in_the_base_commit_allows_nothing_and_says_why() {
    let h = Harness::start(config()).await;
    h.sandbox.add_repository(
        CLONE_URL,
        BASE_SHA,
        &[
            ("calc.py", "def add(a, b):\n    return a - b\n"),
            (
                ".cap/secrets-allow.json",
                r#"{"path": ["tests/fixtures/**"]}"#,
            ),
        ],
    );
    let secret = cap_testkit::fake_github_token();
    let fixture: &'static str = Box::leak(format!("GITHUB_TOKEN={secret}\n").into_boxed_str());
    h.context.script([Step::finish("context_ready")]);
    h.coding
        .script([Step::edit("tests/fixtures/github.env", fixture)]);
    let task = h.submit("Fix add").await;
    h.wait_for(&task.task_id, "failed").await;
    let warned = h.events(&task.task_id).await.into_iter().any(|record| {
        matches!(record.event.payload, Some(cap_proto::agent::v1::task_event::Payload::Error(e))
            if e.severity == "warning"
                && e.message.contains("allow-list is ignored")
                && e.message.contains("unknown field `path`"))
    });
    assert!(warned);
}

#[tokio::test]
async fn a_change_to_the_allow_list_waits_for_a_human() {
    let h = Harness::start(config()).await;
    with_base_allow_list(&h);
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::Finish {
        kind: "agent_finished",
        writes: vec![
            ("calc.py", "def add(a, b):\n    return a + b\n"),
            (".cap/secrets-allow.json", r#"{"paths": ["**"]}"#),
        ],
    }]);
    let task = h.submit("Fix add").await;
    let paused = h.wait_for(&task.task_id, "paused").await;
    assert_eq!(paused.current_node, "execute");
    let asked = h
        .events(&task.task_id)
        .await
        .into_iter()
        .rev()
        .find_map(|record| match record.event.payload {
            Some(cap_proto::agent::v1::task_event::Payload::Checkpoint(c))
                if c.kind() == cap_proto::agent::v1::CheckpointKind::HumanApprovalRequired =>
            {
                Some(c.description)
            }
            _ => None,
        })
        .expect("a human_approval_required checkpoint");
    assert!(
        asked.contains(
            ".cap/secrets-allow.json (the secret scanner's allow-list, which waives findings)"
        ),
        "{asked}"
    );
    assert!(h.github.commits.lock().unwrap().is_empty());
}
