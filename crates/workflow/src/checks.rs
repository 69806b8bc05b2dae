//! Waiting for the required status checks of an opened pull request (FR-007) before it is
//! announced as ready for review.
//!
//! The supervisor polls the GitHub service's `GetRequiredChecks` (the service reads the base
//! branch's protection and the head's check runs and statuses afresh each time) rather than
//! the GitHub service waiting inside one long RPC: the wait and its outcome are task events,
//! which only the supervisor writes, and a poll survives a GitHub service restart. The local
//! forge answers "none required", so the flow there is as before, with no extra event.
//!
//! GitHub's REST API cannot turn a draft pull request into a ready one (only GraphQL's
//! `markPullRequestReadyForReview` can), so the pull request is opened ready and "ready for
//! review" is the supervisor's `human_approval_required` checkpoint, emitted only once the
//! checks passed. A failed check ends the task failed, naming the check, its summary and its
//! link; the pull request stays open on GitHub for a human.

use std::time::Duration;

use cap_proto::agent::v1::Thought;
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::github::v1::{GetRequiredChecksRequest, GetRequiredChecksResponse};

use crate::engine::Run;
use crate::{Error, Result};

impl Run {
    /// Polls the required checks of `pull_request_id` every `checks_poll_interval` until none
    /// is pending: `Ok` when none are required or all passed, [`Error::TaskFailed`] naming
    /// the failed check, or naming the pending ones after `checks_timeout`.
    pub(crate) async fn wait_for_required_checks(&mut self, pull_request_id: &str) -> Result<()> {
        let started = tokio::time::Instant::now();
        let mut announced = false;
        loop {
            let mut github = self.inner.clients.github.clone();
            let answer = self
                .inner
                .github_call(github.get_required_checks(GetRequiredChecksRequest {
                    pull_request_id: pull_request_id.to_owned(),
                }))
                .await;
            let checks = match answer {
                Ok(checks) => checks.into_inner(),
                // A GitHub service from before this RPC: it has no checks to offer.
                Err(status) if status.code() == tonic::Code::Unimplemented => return Ok(()),
                Err(status) => return Err(Error::upstream("github", status)),
            };
            match checks.state.as_str() {
                "none" => return Ok(()),
                "success" => {
                    let names = names(&checks, |_| true);
                    self.think(format!(
                        "Required checks passed on {}: {names}",
                        short(&checks.head_sha)
                    ))
                    .await?;
                    return Ok(());
                }
                "failure" => {
                    let failed: Vec<String> = checks
                        .checks
                        .iter()
                        .filter(|check| check.state == "failure")
                        .map(|check| {
                            let mut line = format!("{:?} failed", check.name);
                            if !check.summary.trim().is_empty() {
                                line.push_str(&format!(": {}", check.summary.trim()));
                            }
                            if !check.url.is_empty() {
                                line.push_str(&format!(" ({})", check.url));
                            }
                            line
                        })
                        .collect();
                    return Err(Error::TaskFailed(format!(
                        "required check {} on the pull request's head {}; the pull request \
                         stays open for a human",
                        failed.join("; "),
                        short(&checks.head_sha)
                    )));
                }
                "pending" => {
                    let pending = names(&checks, |state| state == "pending");
                    if !announced {
                        announced = true;
                        self.think(format!(
                            "Waiting for the required checks on {} before the pull request is \
                             ready for review: {pending}",
                            short(&checks.head_sha)
                        ))
                        .await?;
                    }
                    let timeout = self.inner.config.checks_timeout;
                    if started.elapsed() >= timeout {
                        return Err(Error::TaskFailed(format!(
                            "required checks still pending after {} s: {pending}; the pull \
                             request stays open for a human",
                            timeout.as_secs()
                        )));
                    }
                    tokio::time::sleep(self.inner.config.checks_poll_interval).await;
                }
                other => {
                    return Err(Error::TaskFailed(format!(
                        "the GitHub service answered required checks in state {other:?}, not \
                         none, pending, success or failure"
                    )));
                }
            }
        }
    }

    async fn think(&mut self, reasoning: String) -> Result<()> {
        self.emit("supervisor", Payload::Thought(Thought { reasoning }))
            .await
            .map(drop)
    }
}

/// The names of the checks whose state `keep` accepts, with their summaries.
fn names(checks: &GetRequiredChecksResponse, keep: impl Fn(&str) -> bool) -> String {
    checks
        .checks
        .iter()
        .filter(|check| keep(&check.state))
        .map(|check| match check.summary.trim() {
            "" => check.name.clone(),
            summary => format!("{} ({summary})", check.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A commit's first 12 digits.
fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The default pause between two polls of the checks.
pub(crate) const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(15);
/// The default longest wait for checks (CI of a large repository may take a while).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
