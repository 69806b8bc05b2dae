//! Required status checks of a pull request: which of its base branch's required checks
//! have reported on its head commit, and how.
//!
//! GitHub has two kinds of checks: check runs (the Checks API, GitHub Actions and most CI
//! apps) and commit statuses (the older Statuses API). A branch protection rule names both
//! kinds alike by their "context" (a check run's name, a status's context), so a required
//! check is met by either. The local forge has no checks at all and answers
//! [`ChecksState::NoneRequired`], so the workflow goes on as before.

use std::fmt;

/// How one required check stands on the head commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    /// Not reported yet, queued or running.
    Pending,
    /// Passed (or neutral / skipped, which GitHub's protection counts as passing).
    Success,
    /// Failed, errored, cancelled, timed out or waiting for an action: the check does not
    /// pass without someone doing something.
    Failure,
}

impl CheckState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

impl fmt::Display for CheckState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One required check on the head commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// The check run's name or the status's context (as branch protection names it).
    pub name: String,
    /// How it stands.
    pub state: CheckState,
    /// What the check said: a check run's output title and summary, a status's description.
    pub summary: String,
    /// Where its details are (the check run's or status's target URL); may be empty.
    pub url: String,
}

/// The required checks of a pull request as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksState {
    /// The base branch requires no checks (or the forge has none).
    NoneRequired,
    /// At least one required check has not finished, and none failed.
    Pending,
    /// Every required check passed.
    Success,
    /// At least one required check failed.
    Failure,
}

impl ChecksState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoneRequired => "none",
            Self::Pending => "pending",
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

impl fmt::Display for ChecksState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The required checks of a pull request's base branch, on its head commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredChecks {
    /// The commit the checks were read on.
    pub head_sha: String,
    /// Overall: a failure wins over pending, pending over success.
    pub state: ChecksState,
    /// One entry per required check, in the order the protection rule lists them.
    pub checks: Vec<CheckResult>,
}

impl RequiredChecks {
    /// No checks required on `head_sha`.
    pub fn none(head_sha: impl Into<String>) -> Self {
        Self {
            head_sha: head_sha.into(),
            state: ChecksState::NoneRequired,
            checks: Vec::new(),
        }
    }

    /// The overall state of `checks` on `head_sha` (none required when `checks` is empty).
    pub fn of(head_sha: impl Into<String>, checks: Vec<CheckResult>) -> Self {
        let state = if checks.is_empty() {
            ChecksState::NoneRequired
        } else if checks.iter().any(|c| c.state == CheckState::Failure) {
            ChecksState::Failure
        } else if checks.iter().any(|c| c.state == CheckState::Pending) {
            ChecksState::Pending
        } else {
            ChecksState::Success
        };
        Self {
            head_sha: head_sha.into(),
            state,
            checks,
        }
    }
}

/// A check run as reported on a commit (the Checks API's fields that decide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedRun {
    /// Its name.
    pub name: String,
    /// `queued`, `in_progress`, `completed` (and `waiting`, `requested`, `pending`).
    pub status: String,
    /// Set once completed: `success`, `failure`, `neutral`, `cancelled`, `skipped`,
    /// `timed_out`, `action_required`, `stale`.
    pub conclusion: Option<String>,
    /// Output title and summary, joined.
    pub summary: String,
    /// Its details URL.
    pub url: String,
}

/// A commit status as reported on a commit (the Statuses API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedStatus {
    /// Its context.
    pub context: String,
    /// `error`, `failure`, `pending` or `success`.
    pub state: String,
    /// Its description.
    pub description: String,
    /// Its target URL.
    pub url: String,
}

/// How each of `required` stands given the check runs and statuses reported on the commit
/// (each list newest first, as GitHub answers them: the first match is the latest report).
/// A check run of the name is taken before a status of the context; a check not reported
/// at all is pending (CI may not have started yet).
pub fn evaluate(
    required: &[String],
    runs: &[ReportedRun],
    statuses: &[ReportedStatus],
) -> Vec<CheckResult> {
    required
        .iter()
        .map(|name| {
            if let Some(run) = runs.iter().find(|run| run.name == *name) {
                let state = match (run.status.as_str(), run.conclusion.as_deref()) {
                    ("completed", Some("success" | "neutral" | "skipped")) => CheckState::Success,
                    ("completed", _) => CheckState::Failure,
                    _ => CheckState::Pending,
                };
                return CheckResult {
                    name: name.clone(),
                    state,
                    summary: run.summary.clone(),
                    url: run.url.clone(),
                };
            }
            if let Some(status) = statuses.iter().find(|s| s.context == *name) {
                let state = match status.state.as_str() {
                    "success" => CheckState::Success,
                    "pending" => CheckState::Pending,
                    _ => CheckState::Failure,
                };
                return CheckResult {
                    name: name.clone(),
                    state,
                    summary: status.description.clone(),
                    url: status.url.clone(),
                };
            }
            CheckResult {
                name: name.clone(),
                state: CheckState::Pending,
                summary: "not reported yet".to_owned(),
                url: String::new(),
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
