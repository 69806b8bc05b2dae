//! The parts of GitHub's REST answers this forge reads (field names as in the REST reference,
//! API version 2022-11-28); everything else in an answer is ignored.

use serde::Deserialize;

/// `POST /app/installations/{id}/access_tokens`.
#[derive(Deserialize)]
pub(crate) struct AccessToken {
    pub(crate) token: String,
    pub(crate) expires_at: String,
}

/// `GET /repos/{owner}/{repo}/installation`.
#[derive(Debug, Deserialize)]
pub(crate) struct Installation {
    pub(crate) id: u64,
}

/// `GET /repos/{owner}/{repo}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Repo {
    pub(crate) default_branch: String,
    pub(crate) clone_url: String,
}

/// `GET /repos/{owner}/{repo}/branches/{branch}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Branch {
    pub(crate) commit: CommitRef,
    #[serde(default)]
    pub(crate) protected: bool,
    #[serde(default)]
    pub(crate) protection: Option<Protection>,
}

/// A commit named by its sha.
#[derive(Debug, Deserialize)]
pub(crate) struct CommitRef {
    pub(crate) sha: String,
}

/// A branch's `protection` summary (readable with Metadata/Contents permission; the full
/// `/protection` route needs Administration, which the App does not ask for).
#[derive(Debug, Deserialize)]
pub(crate) struct Protection {
    #[serde(default)]
    pub(crate) required_status_checks: Option<RequiredChecks>,
}

/// Required status checks of a protected branch.
#[derive(Debug, Deserialize)]
pub(crate) struct RequiredChecks {
    #[serde(default)]
    pub(crate) contexts: Vec<String>,
}

/// One entry of `GET /repos/{owner}/{repo}/contents/{path}`: a directory listing is an array
/// of these, a file one with `content`.
#[derive(Debug, Deserialize)]
pub(crate) struct Content {
    pub(crate) name: String,
    pub(crate) path: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) content: Option<String>,
    #[serde(default)]
    pub(crate) encoding: Option<String>,
}

/// A pull request.
#[derive(Debug, Deserialize)]
pub(crate) struct Pull {
    pub(crate) number: u64,
    /// A draft pull request (absent in older answers: not a draft).
    #[serde(default)]
    pub(crate) draft: bool,
    pub(crate) state: String,
    pub(crate) title: String,
    #[serde(default)]
    pub(crate) body: Option<String>,
    pub(crate) html_url: String,
    pub(crate) head: PullRef,
    pub(crate) base: PullRef,
    #[serde(default)]
    pub(crate) merged: Option<bool>,
    #[serde(default)]
    pub(crate) merged_at: Option<String>,
    #[serde(default)]
    pub(crate) merge_commit_sha: Option<String>,
    #[serde(default)]
    pub(crate) created_at: Option<String>,
    #[serde(default)]
    pub(crate) updated_at: Option<String>,
}

/// A pull request's head or base.
#[derive(Debug, Deserialize)]
pub(crate) struct PullRef {
    #[serde(rename = "ref")]
    pub(crate) branch: String,
    pub(crate) sha: String,
}

/// A file of `GET /repos/{owner}/{repo}/pulls/{n}/files`.
#[derive(Debug, Deserialize)]
pub(crate) struct PullFile {
    pub(crate) filename: String,
}

/// A review of `GET /repos/{owner}/{repo}/pulls/{n}/reviews`.
#[derive(Debug, Deserialize)]
pub(crate) struct Review {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) user: Option<User>,
    #[serde(default)]
    pub(crate) body: Option<String>,
    pub(crate) state: String,
    #[serde(default)]
    pub(crate) commit_id: Option<String>,
    #[serde(default)]
    pub(crate) submitted_at: Option<String>,
}

/// A user.
#[derive(Debug, Deserialize)]
pub(crate) struct User {
    pub(crate) login: String,
}

/// `GET /repos/{owner}/{repo}/commits/{ref}/check-runs`.
#[derive(Debug, Deserialize)]
pub(crate) struct CheckRuns {
    #[serde(default)]
    pub(crate) check_runs: Vec<CheckRun>,
}

/// One check run.
#[derive(Debug, Deserialize)]
pub(crate) struct CheckRun {
    pub(crate) name: String,
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) conclusion: Option<String>,
    #[serde(default)]
    pub(crate) html_url: Option<String>,
    #[serde(default)]
    pub(crate) details_url: Option<String>,
    #[serde(default)]
    pub(crate) output: Option<CheckOutput>,
}

/// A check run's `output`.
#[derive(Debug, Deserialize)]
pub(crate) struct CheckOutput {
    #[serde(default)]
    pub(crate) title: Option<String>,
    #[serde(default)]
    pub(crate) summary: Option<String>,
}

/// `GET /repos/{owner}/{repo}/commits/{ref}/status` (the combined status).
#[derive(Debug, Deserialize)]
pub(crate) struct CombinedStatus {
    #[serde(default)]
    pub(crate) statuses: Vec<CommitStatus>,
}

/// One commit status.
#[derive(Debug, Deserialize)]
pub(crate) struct CommitStatus {
    pub(crate) context: String,
    pub(crate) state: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) target_url: Option<String>,
}
