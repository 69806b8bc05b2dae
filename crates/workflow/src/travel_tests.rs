use pretty_assertions::assert_eq;

use super::*;

const TASK: &str = "0b1f6c1e-8a39-4c43-9c0e-1d2e3f4a5b6c";

#[test]
fn checkpoint_ids_name_one_task_and_one_seq() {
    assert_eq!(checkpoint_id(TASK, 7), format!("{TASK}:7"));
    assert_eq!(checkpoint_seq(TASK, &format!("{TASK}:7")), Some(7));
    let other = "9b1f6c1e-8a39-4c43-9c0e-1d2e3f4a5b6c";
    assert_eq!(checkpoint_seq(TASK, &format!("{other}:7")), None);
    for bad in [
        "7",
        "",
        ":7",
        &format!("{TASK}:"),
        &format!("{TASK}:x"),
        &format!("{TASK}:0"),
    ] {
        assert_eq!(checkpoint_seq(TASK, bad), None, "{bad:?}");
    }
}

fn reviewed() -> WorkflowState {
    WorkflowState {
        next_node: Some(Node::Review),
        clone_url: "/forge/a/b.git".into(),
        base_sha: "1".repeat(40),
        default_branch: "main".into(),
        session_id: "parent-session".into(),
        plan: "the plan".into(),
        execute_attempts: 2,
        agent_summary: "did it".into(),
        changed_files: vec!["calc.py".into()],
        last_test_report: "failed".into(),
        branch: "coding-assistant/20260101000000-fix".into(),
        branch_created: true,
        head_sha: "2".repeat(40),
        committed_files: vec!["calc.py".into()],
        pull_request_id: "pr-1".into(),
        agent_files: vec!["calc.py".into()],
        side_effects: vec!["out.log".into()],
        awaiting_approval: vec![".github/ci.yml".into()],
        approved_files: vec!["setup.py".into()],
        quarantined: true,
        constraints_seen: 1,
        dependency_findings: vec!["x".into()],
        secrets_allow_list: Some("{}".into()),
        ..WorkflowState::default()
    }
}

#[test]
fn a_fork_keeps_the_plan_and_base_and_leaves_the_parents_workspace_and_forge_state() {
    let fork = fork_state(reviewed()).unwrap();
    assert_eq!(
        fork,
        WorkflowState {
            // Review needs the change in the workspace: the attempt that made it runs again.
            next_node: Some(Node::Execute),
            clone_url: "/forge/a/b.git".into(),
            base_sha: "1".repeat(40),
            default_branch: "main".into(),
            plan: "the plan".into(),
            execute_attempts: 1,
            constraints_seen: 1,
            secrets_allow_list: Some("{}".into()),
            ..WorkflowState::default()
        }
    );
}

#[test]
fn a_fork_before_the_repository_was_resolved_plans_and_an_ended_graph_has_nothing_to_fork() {
    let early = WorkflowState {
        next_node: Some(Node::Execute),
        ..WorkflowState::default()
    };
    assert_eq!(fork_state(early).unwrap().next_node, Some(Node::Plan));
    let ended = WorkflowState {
        next_node: None,
        ..reviewed()
    };
    assert_eq!(fork_state(ended), None);
}
