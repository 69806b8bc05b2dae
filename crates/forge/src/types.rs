//! The forge's domain types.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A repository of the forge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// `owner/name`.
    pub repository_id: String,
    /// The absolute path of the bare repository; what the sandbox clones.
    pub clone_url: String,
    /// The branch `HEAD` points at.
    pub default_branch: String,
    /// The default branch's head commit; empty while the repository has no commit.
    pub head_sha: String,
}

/// One file of a change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Path relative to the repository root, `/`-separated.
    pub path: String,
    /// The complete new content, or `None` to delete the file.
    pub content: Option<Vec<u8>>,
}

impl FileChange {
    /// Creates or replaces `path` with `content`.
    pub fn write(path: impl Into<String>, content: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.into(),
            content: Some(content.into()),
        }
    }

    /// Deletes `path`.
    pub fn delete(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            content: None,
        }
    }
}

/// Where a pull request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullRequestState {
    /// Waiting for a review.
    Open,
    /// Approved; may be merged.
    Approved,
    /// A reviewer asked for changes.
    ChangesRequested,
    /// Rejected; closed.
    Rejected,
    /// Merged into the base branch; closed.
    Merged,
}

impl PullRequestState {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Approved => "approved",
            Self::ChangesRequested => "changes_requested",
            Self::Rejected => "rejected",
            Self::Merged => "merged",
        }
    }

    /// Whether the pull request takes no more reviews or merges.
    pub fn is_closed(self) -> bool {
        match self {
            Self::Rejected | Self::Merged => true,
            Self::Open | Self::Approved | Self::ChangesRequested => false,
        }
    }
}

impl fmt::Display for PullRequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PullRequestState {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        Ok(match value {
            "open" => Self::Open,
            "approved" => Self::Approved,
            "changes_requested" => Self::ChangesRequested,
            "rejected" => Self::Rejected,
            "merged" => Self::Merged,
            _ => {
                return Err(Error::InvalidArgument {
                    field: "pull request state",
                    reason: format!(
                        "{value:?} is not one of open, approved, changes_requested, rejected, merged"
                    ),
                });
            }
        })
    }
}

/// What a reviewer decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewAction {
    /// Approve; the pull request becomes `approved`.
    Approve,
    /// Ask for changes; the pull request becomes `changes_requested`.
    RequestChanges,
    /// Reject; the pull request becomes `rejected` and is closed.
    Reject,
}

impl ReviewAction {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::RequestChanges => "request_changes",
            Self::Reject => "reject",
        }
    }

    /// The state a pull request takes after this review.
    pub fn resulting_state(self) -> PullRequestState {
        match self {
            Self::Approve => PullRequestState::Approved,
            Self::RequestChanges => PullRequestState::ChangesRequested,
            Self::Reject => PullRequestState::Rejected,
        }
    }
}

impl fmt::Display for ReviewAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReviewAction {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        Ok(match value {
            "approve" => Self::Approve,
            "request_changes" => Self::RequestChanges,
            "reject" => Self::Reject,
            _ => {
                return Err(Error::InvalidArgument {
                    field: "review action",
                    reason: format!("{value:?} is not one of approve, request_changes, reject"),
                });
            }
        })
    }
}

/// A reviewer's comment on one line of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewComment {
    /// Path of the file, relative to the repository root.
    pub file: String,
    /// Line in the head version; 0 comments on the whole file.
    pub line: u32,
    /// The comment.
    pub body: String,
}

/// One review of a pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// Its id (a UUID).
    pub review_id: String,
    /// The decision.
    pub action: ReviewAction,
    /// Who reviewed.
    pub reviewer: String,
    /// Line comments.
    pub comments: Vec<ReviewComment>,
    /// The head commit the review was given on.
    pub head_sha: String,
    /// When, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// A pull request of the forge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Its id (a UUID).
    pub pull_request_id: String,
    /// The repository, `owner/name`.
    pub repository_id: String,
    /// Its number, counting from 1 per repository.
    pub number: u64,
    /// Title.
    pub title: String,
    /// Description.
    pub body: String,
    /// The branch with the changes.
    pub head_branch: String,
    /// The branch the changes go into.
    pub base_branch: String,
    /// The head commit under review (follows the head branch until the pull request closes).
    pub head_sha: String,
    /// The base branch's head when the pull request was opened; the diff is `base_sha..head_sha`.
    pub base_sha: String,
    /// The commit that landed on the base branch, once merged.
    pub merge_sha: Option<String>,
    /// Where it stands.
    pub state: PullRequestState,
    /// Opened as a draft: a partial change handed to a human, not ready for review.
    pub draft: bool,
    /// The supervisor task that opened it (may be empty).
    pub task_id: String,
    /// Unified diff of `base_sha..head_sha`; filled by `get_pull_request`, empty in lists.
    pub diff: String,
    /// Reviews, oldest first; filled by `get_pull_request` and `review`, empty in lists.
    pub reviews: Vec<Review>,
    /// Where the dashboard shows it.
    pub url: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Last change, milliseconds since the Unix epoch.
    pub updated_at_ms: i64,
}
