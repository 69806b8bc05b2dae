use std::collections::HashMap;

use cap_proto::agent::v1::{RepositoryContext, TaskRequest};
use pretty_assertions::assert_eq;

use super::*;

fn request(task_id: &str, session: &str, context: &[(&str, &str)]) -> TaskRequest {
    TaskRequest {
        task_id: task_id.to_owned(),
        repo: Some(RepositoryContext {
            sandbox_session_id: session.to_owned(),
            ..Default::default()
        }),
        objective: String::new(),
        tools: Vec::new(),
        context: context
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>(),
    }
}

#[test]
fn requests_are_validated_with_a_named_field() {
    let message = |r| Job::from_request(r).err().map(|e| e.to_string());
    assert_eq!(
        message(request("", "s", &[])).as_deref(),
        Some("invalid task request: task_id is empty")
    );
    assert_eq!(
        message(request("t", " ", &[])).as_deref(),
        Some("invalid task request: repo.sandbox_session_id is empty")
    );
    assert_eq!(
        message(request("t", "s", &[(context_key::REPO_MAP_TOKENS, "many")])).as_deref(),
        Some("invalid task request: repo_map_tokens is not a whole number")
    );
    let mut no_repo = request("t", "s", &[]);
    no_repo.repo = None;
    assert!(message(no_repo).is_some_and(|m| m.contains("repo is missing")));
    let job = Job::from_request(request(
        "t",
        "s",
        &[
            (context_key::REPO_MAP_TOKENS, "50"),
            (context_key::STACK_TRACE, "x"),
        ],
    ));
    let job = job.ok();
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
