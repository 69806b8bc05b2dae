use pretty_assertions::assert_eq;

use super::*;

fn run(name: &str, status: &str, conclusion: Option<&str>) -> ReportedRun {
    ReportedRun {
        name: name.into(),
        status: status.into(),
        conclusion: conclusion.map(str::to_owned),
        summary: format!("{name} said so"),
        url: format!("https://ci.example/{name}"),
    }
}

fn status(context: &str, state: &str) -> ReportedStatus {
    ReportedStatus {
        context: context.into(),
        state: state.into(),
        description: format!("{context} is {state}"),
        url: String::new(),
    }
}

fn states(checks: &[CheckResult]) -> Vec<(&str, CheckState)> {
    checks.iter().map(|c| (c.name.as_str(), c.state)).collect()
}

#[test]
fn no_required_checks_is_none_required() {
    let checks = RequiredChecks::of("abc", evaluate(&[], &[run("ci", "queued", None)], &[]));
    assert_eq!(checks.state, ChecksState::NoneRequired);
}

#[test]
fn unreported_and_running_checks_are_pending() {
    let required = vec!["ci".to_owned(), "lint".to_owned(), "legacy".to_owned()];
    let checks = evaluate(
        &required,
        &[run("ci", "in_progress", None)],
        &[status("legacy", "pending")],
    );
    assert_eq!(
        states(&checks),
        vec![
            ("ci", CheckState::Pending),
            ("lint", CheckState::Pending),
            ("legacy", CheckState::Pending)
        ]
    );
    assert_eq!(checks[1].summary, "not reported yet");
    assert_eq!(
        RequiredChecks::of("abc", checks).state,
        ChecksState::Pending
    );
}

#[test]
fn conclusions_and_statuses_map_as_branch_protection_counts_them() {
    let required: Vec<String> = ["a", "b", "c", "d", "e", "f"].map(str::to_owned).to_vec();
    let checks = evaluate(
        &required,
        &[
            run("a", "completed", Some("success")),
            run("b", "completed", Some("skipped")),
            run("c", "completed", Some("timed_out")),
            run("d", "completed", Some("action_required")),
        ],
        &[status("e", "success"), status("f", "error")],
    );
    assert_eq!(
        states(&checks),
        vec![
            ("a", CheckState::Success),
            ("b", CheckState::Success),
            ("c", CheckState::Failure),
            ("d", CheckState::Failure),
            ("e", CheckState::Success),
            ("f", CheckState::Failure)
        ]
    );
    assert_eq!(checks[2].summary, "c said so");
    assert_eq!(checks[5].summary, "f is error");
}

#[test]
fn the_latest_report_wins_and_a_failure_wins_over_pending() {
    let required = vec!["ci".to_owned(), "lint".to_owned()];
    let checks = evaluate(
        &required,
        // Newest first: the re-run passed after a failure.
        &[
            run("ci", "completed", Some("success")),
            run("ci", "completed", Some("failure")),
            run("lint", "completed", Some("failure")),
        ],
        &[],
    );
    assert_eq!(
        states(&checks),
        vec![("ci", CheckState::Success), ("lint", CheckState::Failure)]
    );
    let all = RequiredChecks::of("abc", checks);
    assert_eq!(all.state, ChecksState::Failure);
    let pending_and_failed = evaluate(
        &required,
        &[
            run("ci", "queued", None),
            run("lint", "completed", Some("cancelled")),
        ],
        &[],
    );
    assert_eq!(
        RequiredChecks::of("abc", pending_and_failed).state,
        ChecksState::Failure
    );
}

#[test]
fn all_passed_is_success() {
    let required = vec!["ci".to_owned()];
    let checks = evaluate(&required, &[], &[status("ci", "success")]);
    assert_eq!(
        RequiredChecks::of("abc", checks).state,
        ChecksState::Success
    );
}
