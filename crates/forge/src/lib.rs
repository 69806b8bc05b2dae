//! The local git forge: bare repositories on disk, safe host-side git, pull requests and reviews in the SQL store.
//!
//! This is the GitHub service's embedded default. Repositories are bare git repositories at
//! `<root>/<owner>/<name>.git`; branches and commits are written with git plumbing only
//! (`hash-object --no-filters`, a temporary index, `write-tree`, `commit-tree`, `update-ref`
//! with the old value), so nothing a repository controls (hooks, filters, fsmonitor, external
//! diff drivers) ever runs on the host. Every git process goes through [`cap_git`]'s hardened
//! runner (no hooks, fsmonitor, system/global configuration or attributes, a timeout) with no
//! transport allowed: the forge only ever works on repositories on its own disk.
//!
//! Pull requests and reviews live in the SQL store (`github_*` tables, migrations 2001+), and
//! nothing is merged without an approval.
//!
//! [`github::GitHubForge`] is the production forge: the same operations on GitHub through a
//! GitHub App.

use std::path::{Path, PathBuf};

use sqlx::migrate::Migrator;

pub mod checks;
pub mod github;
mod import;
pub use import::{ImportFile, Imported};
mod pulls;
mod repos;
pub use repos::import_directory;
mod types;
mod validate;
pub mod webhook;

pub use cap_storage::AnyPool;
pub use checks::{CheckResult, CheckState, ChecksState, RequiredChecks};
pub use types::{
    FileChange, PullRequest, PullRequestState, Repository, Review, ReviewAction, ReviewComment,
};

/// The forge's migrations (versions 2001 and up, so they can share a PostgreSQL database with
/// the supervisor's 1xxx).
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The identity that authors every commit the forge writes.
pub const BOT_NAME: &str = "coding-assistant[bot]";
/// The e-mail address of [`BOT_NAME`].
pub const BOT_EMAIL: &str = "coding-assistant[bot]@users.noreply.localhost";

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A repository id is not `owner/name` with `[A-Za-z0-9._-]` parts.
    #[error("invalid repository id {id:?}: {reason}")]
    InvalidRepositoryId {
        /// The id as given.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A branch name is not a valid git branch name.
    #[error("invalid branch name {branch:?}: {reason}")]
    InvalidBranch {
        /// The name as given.
        branch: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file path is not a relative path inside the repository.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A commit id is not a hexadecimal object name.
    #[error("invalid commit sha {sha:?}: expected 4 to 64 hexadecimal digits")]
    InvalidSha {
        /// The value as given.
        sha: String,
    },
    /// Some other argument is missing or malformed.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The argument.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A commit was asked for with no changes.
    #[error("empty change set: a commit needs at least one file change")]
    EmptyChangeSet,
    /// The repository does not exist.
    #[error("repository {0} not found")]
    RepositoryNotFound(String),
    /// The repository already exists.
    #[error("repository {0} already exists")]
    RepositoryExists(String),
    /// The branch does not exist.
    #[error("branch {branch:?} not found in {repository_id}")]
    BranchNotFound {
        /// The repository.
        repository_id: String,
        /// The branch.
        branch: String,
    },
    /// The branch already exists.
    #[error("branch {branch:?} already exists in {repository_id}")]
    BranchExists {
        /// The repository.
        repository_id: String,
        /// The branch.
        branch: String,
    },
    /// No commit with this id exists in the repository.
    #[error("commit {sha} not found in {repository_id}")]
    CommitNotFound {
        /// The repository.
        repository_id: String,
        /// The id as given.
        sha: String,
    },
    /// A file to delete is not in the branch.
    #[error("cannot delete {path:?}: no such file on branch {branch:?}")]
    PathNotFound {
        /// The branch.
        branch: String,
        /// The path.
        path: String,
    },
    /// The change set leaves the branch's tree as it was, or the head has nothing the base
    /// lacks.
    #[error("nothing to do: {0}")]
    NoChanges(String),
    /// A reference moved while it was being updated (a concurrent writer); retry.
    #[error("{reference} moved during the update; retry")]
    RefMoved {
        /// The full reference name.
        reference: String,
    },
    /// No pull request with this id exists.
    #[error("pull request {0} not found")]
    PullRequestNotFound(String),
    /// An open pull request for the same branches already exists.
    #[error("pull request #{number} ({id}) is already open for {head_branch} -> {base_branch}")]
    PullRequestExists {
        /// Its id.
        id: String,
        /// Its number.
        number: u64,
        /// Head branch.
        head_branch: String,
        /// Base branch.
        base_branch: String,
    },
    /// The pull request is `rejected` or `merged` and takes no more reviews or merges.
    #[error("pull request {id} is {state} and closed")]
    PullRequestClosed {
        /// Its id.
        id: String,
        /// Its state.
        state: PullRequestState,
    },
    /// Merging was asked for without an approval.
    #[error("pull request {id} is {state}: nothing is merged without an approval")]
    NotApproved {
        /// Its id.
        id: String,
        /// Its state.
        state: PullRequestState,
    },
    /// The head does not merge cleanly into the base.
    #[error("pull request {id} conflicts with {base_branch} in: {}", files.join(", "))]
    MergeConflict {
        /// Its id.
        id: String,
        /// The base branch.
        base_branch: String,
        /// The conflicting files.
        files: Vec<String>,
    },
    /// A git command failed.
    #[error("`git {command}` failed ({status}): {stderr}")]
    Git {
        /// The command line after `git` (hardening flags left out).
        command: String,
        /// The exit status.
        status: String,
        /// What git wrote to stderr.
        stderr: String,
    },
    /// A git command printed something this crate cannot read.
    #[error("unexpected output from `git {command}`: {output:?}")]
    GitOutput {
        /// The command line after `git`.
        command: String,
        /// The output.
        output: String,
    },
    /// git could not be run to completion: it could not be started, or it ran past its
    /// timeout and was killed.
    #[error("cannot run git")]
    GitProcess(#[source] cap_git::Error),
    /// A file or directory could not be read or written.
    #[error("I/O error on {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("cannot open the forge's store")]
    Storage(#[from] cap_storage::Error),
    /// A query failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// A stored row holds a value this crate cannot read.
    #[error("corrupt stored {what}: {value:?}")]
    CorruptRecord {
        /// What was being read.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// This forge does not offer the operation (e.g. importing a repository into GitHub).
    #[error("{0}")]
    Unsupported(&'static str),
    /// The GitHub App's private key cannot be read or used. The reason never quotes the key.
    #[error("GitHub App key {path}: {reason}")]
    GitHubKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The GitHub App is not installed on the repository (or the repository does not exist).
    #[error("the GitHub App is not installed on {0} (or GitHub has no such repository)")]
    GitHubNotInstalled(String),
    /// GitHub answered 5xx (after the retries).
    #[error("GitHub is unavailable: {0}")]
    GitHubUnavailable(String),
    /// GitHub's circuit is open after failures in a row; the call was not made.
    #[error("GitHub is unavailable: {0}")]
    GitHubCircuitOpen(String),
    /// GitHub could not be reached (connection, TLS, timeout).
    #[error("GitHub cannot be reached")]
    GitHubTransport {
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// GitHub's rate limit holds for longer than the forge waits.
    #[error("GitHub's rate limit is exhausted; try again in {retry_in_secs} s")]
    GitHubRateLimited {
        /// When GitHub says calls go through again.
        retry_in_secs: u64,
    },
    /// GitHub refused the operation for a reason of its own (validation, branch protection,
    /// required checks or reviews, not mergeable).
    #[error("GitHub refused {what}: {message}")]
    GitHubRefused {
        /// What was refused.
        what: String,
        /// GitHub's message.
        message: String,
    },
    /// GitHub answered with a status the forge does not expect for this call.
    #[error("GitHub answered {what} with {status}: {message}")]
    GitHubApi {
        /// The call.
        what: String,
        /// The HTTP status.
        status: u16,
        /// GitHub's message.
        message: String,
    },
    /// A webhook delivery's signature is missing or wrong (the delivery is refused).
    #[error("webhook delivery refused: {0}")]
    WebhookSignature(&'static str),
    /// A webhook delivery does not have the documented shape.
    #[error("unreadable webhook delivery: {0}")]
    WebhookPayload(String),
    /// GitHub's answer does not have the documented shape.
    #[error("unreadable GitHub answer to {what}: {reason}")]
    GitHubResponse {
        /// The call.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl From<cap_git::Error> for Error {
    /// A non-zero exit stays [`Error::Git`], with its command and stderr; the rest is
    /// [`Error::GitProcess`].
    fn from(error: cap_git::Error) -> Self {
        match error {
            cap_git::Error::Failed {
                command,
                status,
                stderr,
            } => Error::Git {
                command,
                status,
                stderr,
            },
            other => Error::GitProcess(other),
        }
    }
}

/// Where the forge keeps its repositories and records.
#[derive(Debug, Clone)]
pub struct ForgeConfig {
    /// Directory of the bare repositories (`<root>/<owner>/<name>.git`); created if missing.
    pub root: PathBuf,
    /// SQL store URL (`sqlite://...` or `postgres://...`).
    pub database_url: String,
    /// Base URL of the dashboard; pull request URLs are `{public_url}/#/pull-requests/{id}` (the dashboard's route).
    pub public_url: String,
}

/// The local forge. Cheap to clone: clones share the connection pool.
#[derive(Debug, Clone)]
pub struct Forge {
    root: PathBuf,
    pool: AnyPool,
    backend: cap_storage::Backend,
    public_url: String,
}

impl Forge {
    /// Opens the forge: creates the repository root and opens (and migrates) the store.
    pub async fn open(config: ForgeConfig) -> Result<Self> {
        let io_err = |source| Error::Io {
            path: config.root.clone(),
            source,
        };
        tokio::fs::create_dir_all(&config.root)
            .await
            .map_err(io_err)?;
        // Clone URLs are absolute paths, so the sandbox can clone from any working directory.
        let root = tokio::fs::canonicalize(&config.root)
            .await
            .map_err(io_err)?;
        let pool = cap_storage::open(&config.database_url, &MIGRATOR).await?;
        let backend = cap_storage::Backend::of_url(&config.database_url)?;
        let public_url = config.public_url.trim_end_matches('/').to_owned();
        tracing::info!(root = %root.display(), "forge ready");
        Ok(Self {
            root,
            pool,
            backend,
            public_url,
        })
    }

    /// The directory holding the bare repositories.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The store's connection pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The path of a repository's bare git directory (whether or not it exists).
    pub fn repository_path(&self, repository_id: &str) -> Result<PathBuf> {
        repository_path(&self.root, repository_id)
    }
}

/// The path of a repository's bare git directory under the forge's `root`.
pub fn repository_path(root: &Path, repository_id: &str) -> Result<PathBuf> {
    let (owner, name) = validate::repository_id(repository_id)?;
    Ok(root.join(owner).join(format!("{name}.git")))
}
