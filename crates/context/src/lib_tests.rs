use cap_proto::agent::v1::{RepositoryContext, TaskContext, TaskRequest};
use pretty_assertions::assert_eq;

use super::*;

fn request(task_id: &str, session: &str, context: Option<TaskContext>) -> TaskRequest {
    TaskRequest {
        task_id: task_id.to_owned(),
        repo: Some(RepositoryContext {
            sandbox_session_id: session.to_owned(),
            ..Default::default()
        }),
        objective: String::new(),
        tools: Vec::new(),
        context,
    }
}

#[test]
fn requests_are_validated_with_a_named_field() {
    let message = |r| Job::from_request(r).err().map(|e| e.to_string());
    assert_eq!(
        message(request("", "s", None)).as_deref(),
        Some("invalid task request: task_id is empty")
    );
    assert_eq!(
        message(request("t", " ", None)).as_deref(),
        Some("invalid task request: repo.sandbox_session_id is empty")
    );
    let mut no_repo = request("t", "s", None);
    no_repo.repo = None;
    assert!(message(no_repo).is_some_and(|m| m.contains("repo is missing")));
    let job = Job::from_request(request(
        "t",
        "s",
        Some(TaskContext {
            repo_map_tokens: Some(50),
            stack_trace: "x".into(),
            ..TaskContext::default()
        }),
    ));
    let job = job.ok();
    let defaults = Job::from_request(request("t", "s", None)).ok();
    assert_eq!(
        defaults.map(|j| (j.map_tokens, j.stack_trace)),
        Some((DEFAULT_MAP_TOKENS, None))
    );
    assert_eq!(
        job.as_ref()
            .map(|j| (j.map_tokens, j.stack_trace.as_deref())),
        Some((50, Some("x")))
    );
}

#[test]
fn only_safe_relative_paths_are_copied() {
    assert!(safe_relative("src/a.py").is_ok());
    for bad in ["", "/etc/passwd", "../x.py", "a/../../x.py"] {
        assert!(
            matches!(safe_relative(bad), Err(Error::UnsafePath(_))),
            "{bad}"
        );
    }
    assert!(wanted("a/b.go") && wanted("pyproject.toml") && wanted("sub/package.json"));
    assert!(!wanted("logo.png") && !wanted("README.md"));
}

#[test]
fn store_names_are_one_safe_component() {
    assert_eq!(store_name("acme/widgets"), "acme_widgets");
    assert_eq!(store_name("../.."), "_____");
    assert_eq!(store_name(""), "_");
}
