use pretty_assertions::assert_eq;

use super::pulls::{ReviewMarker, task_of};
use super::*;

#[test]
fn pull_request_ids_round_trip_and_bad_ones_are_named() {
    let id = pull_request_id("octo/hello.rs", 12);
    assert_eq!(id, "octo:hello.rs:12");
    assert_eq!(
        parse_pull_request_id(&id).unwrap(),
        ("octo/hello.rs".to_owned(), 12)
    );
    for bad in ["octo:hello", "octo:hello:x", "octo:hello:1:2", "pr-1"] {
        let error = parse_pull_request_id(bad).unwrap_err().to_string();
        assert!(
            error.contains("is not `owner:name:number`"),
            "{bad}: {error}"
        );
    }
    assert!(matches!(
        parse_pull_request_id("..:x:1"),
        Err(Error::InvalidRepositoryId { .. })
    ));
}

#[test]
fn markers_survive_text_that_would_end_a_comment() {
    let marker = ReviewMarker {
        action: "request_changes".into(),
        reviewer: "alice".into(),
        comments: vec![ReviewComment {
            file: "src/a.rs".into(),
            line: 3,
            body: "no --> here <b>".into(),
        }],
    };
    let body = format!(
        "text\n{REVIEW_MARKER}{}{MARKER_END}\n",
        marker.encode().unwrap()
    );
    assert_eq!(body.matches("-->").count(), 1);
    let decoded = ReviewMarker::decode(&body).unwrap();
    assert_eq!(decoded.comments, marker.comments);
    assert_eq!(
        task_of("body\n\n<!-- coding-assistant:task t-1 -->\n"),
        Some("t-1")
    );
    assert_eq!(task_of("a human's pull request"), None);
}

#[test]
fn only_the_platforms_own_branches_are_written() {
    GitHubForge::own_branch("coding-assistant/20240101000000-fix").unwrap();
    for branch in ["main", "coding-assistant/", "feature/x"] {
        assert!(matches!(
            GitHubForge::own_branch(branch),
            Err(Error::InvalidBranch { .. })
        ));
    }
}

#[test]
fn next_links_stay_on_the_api() {
    let base = "https://api.github.com";
    let links = r#"<https://api.github.com/repositories/1/pulls/2/files?page=2>; rel="next", <https://api.github.com/repositories/1/pulls/2/files?page=5>; rel="last""#;
    assert_eq!(
        api::next_link(links, base).as_deref(),
        Some("/repositories/1/pulls/2/files?page=2")
    );
    assert_eq!(
        api::next_link(r#"<https://x.invalid/a?page=2>; rel="next""#, base),
        None
    );
    assert_eq!(
        api::next_link(r#"<https://api.github.com/a?page=1>; rel="prev""#, base),
        None
    );
    // A look-alike host is another host.
    assert_eq!(
        api::next_link(
            r#"<https://api.github.com.evil.invalid/a>; rel="next""#,
            base
        ),
        None
    );
}
