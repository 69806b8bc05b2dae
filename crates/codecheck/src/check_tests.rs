#![allow(clippy::unwrap_used, clippy::expect_used)]

use pretty_assertions::assert_eq;

use super::*;

#[test]
fn every_query_compiles_and_names_only_known_rules() {
    crate::verify_queries().unwrap();
}

#[test]
fn added_rows_are_the_new_and_changed_lines() {
    let all = added_rows(None, "a\nb\n");
    assert_eq!((all.len(), all.first().cloned()), (1, Some(0..2)));
    assert_eq!(
        added_rows(Some("a\nb\nc\n"), "a\nB\nc\nd\n"),
        vec![1..2, 3..4]
    );
    assert!(added_rows(Some("a\n"), "a\n").is_empty());
    assert_eq!(first_added(&[1..2, 5..7], 3..6), Some(5));
    assert_eq!(first_added(&[1..2, 5..7], 2..5), None);
}

#[test]
fn base64_runs_are_measured() {
    assert_eq!(longest_base64_run("\"abc def\""), 3);
    assert_eq!(longest_base64_run(&format!("'{}'", "Qm".repeat(150))), 300);
}

#[test]
fn shown_lines_are_trimmed_cut_and_redacted() {
    // Built at test time, as cap-testkit's fake token: the repository holds none.
    let body: String = (0..36)
        .map(|i| char::from(b"aZ7qW3eR9tY1uI5oP2sD8fG4hJ6kL0"[(i * 7 + 3) % 30]))
        .collect();
    let secret = format!("{}{body}", ["gh", "p_"].concat());
    let text = shown(&format!("   token = '{secret}'  "));
    assert!(!text.contains(&secret), "{text}");
    assert!(text.starts_with("token = "), "{text}");
    assert_eq!(shown(&"x".repeat(500)).chars().count(), SHOWN_CHARS + 1);
}
