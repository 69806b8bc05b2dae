use super::*;
use crate::TaskSpec;

fn spec(avoid: &[&str], max: u32) -> TaskSpec {
    TaskSpec {
        repository_id: "acme/widgets".into(),
        prompt: "Fix it".into(),
        avoid_files: avoid.iter().map(|s| (*s).to_owned()).collect(),
        max_files_changed: max,
        priority: "normal".into(),
        ..TaskSpec::default()
    }
}

#[test]
fn constraints_name_the_offending_file() {
    let changed = vec!["src/app.py".to_owned(), "legacy/auth.js".to_owned()];
    let err = check_constraints(&spec(&["legacy/"], 0), &changed).unwrap_err();
    assert!(err.to_string().contains("legacy/auth.js"), "{err}");
    let err = check_constraints(&spec(&[], 1), &changed).unwrap_err();
    assert!(
        err.to_string().contains("max_files_changed allows 1"),
        "{err}"
    );
    check_constraints(&spec(&["legacy/other.js", "src/app"], 2), &changed).unwrap();
}

#[test]
fn titles_are_first_line_and_short() {
    assert_eq!(title_of("\n  Fix add()\nmore"), "Fix add()");
    assert_eq!(title_of(&"x".repeat(100)).chars().count(), 73);
}

#[test]
fn state_survives_json() {
    let mut state = WorkflowState::new();
    state.session_id = "s".into();
    state.next_node = Some(Node::Review);
    let back: WorkflowState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    assert_eq!(back, state);
    // Checkpoints written by an older version, without newer fields, still load.
    let old: WorkflowState = serde_json::from_str(r#"{"next_node":"execute"}"#).unwrap();
    assert_eq!(old.next_node, Some(Node::Execute));
}

#[test]
fn summary_reads_agent_state() {
    assert_eq!(summary_of(r#"{"summary":"fixed add"}"#), "fixed add");
    assert_eq!(summary_of("not json"), "");
}
