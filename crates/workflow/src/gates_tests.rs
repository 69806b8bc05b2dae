use cap_proto::agent::v1::{Action, Observation, Thought};

use super::*;

#[test]
fn every_text_of_an_event_is_redacted() {
    let secret = cap_testkit::fake_github_token();
    let events = [
        Payload::Thought(Thought {
            reasoning: format!("I will use {secret} for the API"),
        }),
        Payload::Action(Action {
            call_id: "c1".into(),
            tool: "write_file".into(),
            arguments_json: format!(r#"{{"path":"a.py","content":"TOKEN = '{secret}'"}}"#),
        }),
        Payload::Observation(Observation {
            call_id: "c1".into(),
            tool: "run_command".into(),
            is_error: false,
            content: format!("echo {secret}"),
            detail: None,
        }),
    ];
    for payload in events {
        let mut event = TaskEvent {
            payload: Some(payload),
            agent: "coding".into(),
            created_at_ms: 1,
        };
        redact_event(&mut event);
        let shown = format!("{event:?}");
        assert!(!shown.contains(&secret), "{shown}");
        assert!(shown.contains('…'), "the redacted form is shown: {shown}");
    }
    // Arguments stay JSON.
    let mut event = TaskEvent {
        payload: Some(Payload::Action(Action {
            call_id: "c1".into(),
            tool: "write_file".into(),
            arguments_json: format!(r#"{{"content":"{secret}"}}"#),
        })),
        agent: "coding".into(),
        created_at_ms: 1,
    };
    redact_event(&mut event);
    let Some(Payload::Action(action)) = event.payload else {
        panic!()
    };
    serde_json::from_str::<serde_json::Value>(&action.arguments_json).unwrap();
}

#[test]
fn protected_files_are_named_with_why() {
    for path in [
        ".github/workflows/ci.yml",
        "sub/.github/dependabot.yml",
        ".gitlab-ci.yml",
        ".circleci/config.yml",
        "Jenkinsfile",
        ".gitattributes",
        ".gitmodules",
        ".husky/pre-commit",
        ".pre-commit-config.yaml",
        "setup.py",
        ".cap/secrets-allow.json",
        "sub/.cap/secrets-allow.json",
    ] {
        assert!(protected_reason(path, "").is_some(), "{path}");
    }
    for path in [
        "src/github.py",
        "docs/ci.md",
        "app/setup_helpers.py",
        "package.json",
        ".cap/notes.json",
        "cap/secrets-allow.json",
    ] {
        assert_eq!(protected_reason(path, "\"name\": \"x\""), None, "{path}");
    }
    assert_eq!(
        protected_reason("package.json", "  \"postinstall\": \"node x.js\",\n"),
        Some("an install script in the package manifest")
    );
}

#[test]
fn what_a_decision_is_on_says_files_or_dependency_findings() {
    let files = [
        ".github/workflows/x.yml".to_owned(),
        ".gitattributes".to_owned(),
    ];
    assert_eq!(
        awaited_decision(&files),
        "the change to protected files .github/workflows/x.yml, .gitattributes"
    );
    let findings = [
        "dependency requirements.txt:1: PyPI requests ==2.31.0 is affected by X-1".to_owned(),
        "dependency requirements.txt:2: PyPI lib ==1.0 is licensed GPL-3.0-only".to_owned(),
    ];
    assert_eq!(
        awaited_decision(&findings),
        "the change for its dependency findings: requirements.txt:1: PyPI requests ==2.31.0 is \
         affected by X-1; requirements.txt:2: PyPI lib ==1.0 is licensed GPL-3.0-only"
    );
    let both = [files[1].clone(), findings[0].clone()];
    assert_eq!(
        awaited_decision(&both),
        "the change to protected files .gitattributes and for its dependency findings: \
         requirements.txt:1: PyPI requests ==2.31.0 is affected by X-1"
    );
}
