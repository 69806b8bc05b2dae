//! Required status checks on GitHub: the base branch's required contexts (from the branch
//! summary, which needs no Administration permission) against the head commit's check runs
//! (Checks: read) and commit statuses (Commit statuses: read).

use super::*;
use crate::checks::{self, ReportedRun, ReportedStatus, RequiredChecks};

/// GitHub's largest page; a commit with more than 100 check runs is read in pages.
const PER_PAGE: &str = "per_page=100";

impl GitHubForge {
    /// How the required checks of the pull request `owner:name:number`'s base branch stand
    /// on its head commit. Reads the checks afresh each call (no caching: the caller polls).
    pub async fn required_checks(&self, id: &str) -> Result<RequiredChecks> {
        let (repository_id, number) = parse_pull_request_id(id)?;
        let pull: json::Pull = self
            .get(
                &repository_id,
                &format!("/repos/{repository_id}/pulls/{number}"),
                "pull request",
            )
            .await?
            .ok_or_else(|| Error::PullRequestNotFound(id.to_owned()))?;
        let head_sha = pull.head.sha;
        let base = self
            .branch(&repository_id, &pull.base.branch)
            .await?
            .ok_or_else(|| Error::BranchNotFound {
                repository_id: repository_id.clone(),
                branch: pull.base.branch.clone(),
            })?;
        let required = if base.protected {
            base.protection
                .and_then(|p| p.required_status_checks)
                .map(|r| r.contexts)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        if required.is_empty() {
            return Ok(RequiredChecks::none(head_sha));
        }
        let runs: Vec<ReportedRun> = self
            .check_runs(&repository_id, &head_sha)
            .await?
            .into_iter()
            .map(|run| ReportedRun {
                name: run.name,
                status: run.status,
                conclusion: run.conclusion,
                summary: run
                    .output
                    .map(|o| {
                        [o.title, o.summary]
                            .into_iter()
                            .flatten()
                            .filter(|s| !s.trim().is_empty())
                            .collect::<Vec<_>>()
                            .join(": ")
                    })
                    .unwrap_or_default(),
                url: run.html_url.or(run.details_url).unwrap_or_default(),
            })
            .collect();
        let statuses: Vec<ReportedStatus> = self
            .get::<json::CombinedStatus>(
                &repository_id,
                &format!("/repos/{repository_id}/commits/{head_sha}/status?{PER_PAGE}"),
                "combined status",
            )
            .await?
            .map(|combined| combined.statuses)
            .unwrap_or_default()
            .into_iter()
            .map(|status| ReportedStatus {
                context: status.context,
                state: status.state,
                description: status.description.unwrap_or_default(),
                url: status.target_url.unwrap_or_default(),
            })
            .collect();
        Ok(RequiredChecks::of(
            head_sha,
            checks::evaluate(&required, &runs, &statuses),
        ))
    }

    /// The check runs of `sha`, page by page (the answer is an object, not a list, so
    /// [`Self::get_pages`] does not fit), at most [`MAX_PAGES`] pages.
    async fn check_runs(&self, repository_id: &str, sha: &str) -> Result<Vec<json::CheckRun>> {
        let mut all = Vec::new();
        let mut path = format!("/repos/{repository_id}/commits/{sha}/check-runs?{PER_PAGE}");
        for _ in 0..MAX_PAGES {
            let reply = self
                .call(repository_id, Method::GET, &path, None, api::JSON)
                .await?;
            match reply.status {
                StatusCode::OK => {
                    all.extend(reply.json::<json::CheckRuns>("check runs")?.check_runs)
                }
                // No check runs API on this commit (e.g. an old GitHub Enterprise): none.
                StatusCode::NOT_FOUND => return Ok(all),
                _ => return Err(reply.unexpected("check runs")),
            }
            match reply.next {
                Some(next) => path = next,
                None => return Ok(all),
            }
        }
        tracing::warn!(%repository_id, %sha, pages = MAX_PAGES, "check runs cut at the page limit");
        Ok(all)
    }
}
