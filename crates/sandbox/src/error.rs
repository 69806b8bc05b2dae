//! The crate's one error type.

use std::path::PathBuf;
use std::time::Duration;

use uuid::Uuid;

/// Errors of the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// bubblewrap is missing or cannot create the sandbox on this host.
    #[error("bubblewrap at {bwrap} is not usable: {reason}")]
    BubblewrapUnavailable {
        /// The bubblewrap binary that was tried.
        bwrap: PathBuf,
        /// Why it is not usable (missing, not executable, its own error message).
        reason: String,
    },
    /// Control groups (for the CPU, memory and process limits) cannot be used on this host.
    #[error("cgroups under {root} are not usable: {reason}")]
    CgroupsUnavailable {
        /// The cgroup root that was tried.
        root: PathBuf,
        /// Why (no controller, no permission...).
        reason: String,
    },
    /// The configuration is inconsistent (e.g. the default timeout exceeds the maximum).
    #[error("invalid sandbox configuration: {0}")]
    InvalidConfig(String),
    /// A session id that is not a UUID.
    #[error("invalid session id {id:?}: expected a UUID")]
    InvalidSessionId {
        /// The id as given.
        id: String,
    },
    /// No session has this id.
    #[error("session {id} not found")]
    SessionNotFound {
        /// The session id.
        id: Uuid,
    },
    /// The repository URL is refused.
    #[error("invalid repository URL {url:?}: {reason}")]
    InvalidRepoUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The commit is not a hexadecimal object name.
    #[error("invalid commit sha {sha:?}: expected 7 to 64 hexadecimal digits")]
    InvalidCommitSha {
        /// The sha as given.
        sha: String,
    },
    /// The image is not one the sandbox knows.
    #[error("unknown image {image:?}; known images: {known}")]
    UnknownImage {
        /// The image as given.
        image: String,
        /// The images the sandbox knows, comma-separated.
        known: String,
    },
    /// The repository could not be cloned.
    #[error("cannot clone {url:?}: {detail}")]
    Clone {
        /// The URL.
        url: String,
        /// git's own message (last lines of its stderr).
        detail: String,
    },
    /// The commit does not exist in the cloned repository.
    #[error("commit {sha} not found in {url:?}")]
    CommitNotFound {
        /// The URL.
        url: String,
        /// The commit.
        sha: String,
    },
    /// Another git step failed.
    #[error("git {action} failed: {detail}")]
    Git {
        /// What was being done.
        action: &'static str,
        /// git's own message.
        detail: String,
    },
    /// git could not be run to completion: it could not be started, or it ran past its
    /// timeout and was killed.
    #[error("cannot run git")]
    GitProcess(#[source] cap_git::Error),
    /// A timeout of zero or above the maximum.
    #[error("invalid timeout {requested:?}: must be more than zero and at most {max:?}")]
    InvalidTimeout {
        /// The timeout as requested.
        requested: Duration,
        /// The largest timeout allowed.
        max: Duration,
    },
    /// An environment variable that cannot be passed into the sandbox.
    #[error("invalid environment variable {name:?}: {reason}")]
    InvalidEnv {
        /// The variable's name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A command that cannot be run.
    #[error("invalid command: {reason}")]
    InvalidCommand {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A path that is refused (absolute, `..`, `.git`, escaping the workspace...).
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The path does not exist in the workspace.
    #[error("{path:?} does not exist in the workspace")]
    PathNotFound {
        /// The path as given.
        path: String,
    },
    /// The path exists but is of the wrong kind (a directory where a file is expected...).
    #[error("{path:?} is not {expected}")]
    WrongFileType {
        /// The path as given.
        path: String,
        /// What was expected, e.g. "a regular file".
        expected: &'static str,
    },
    /// A file too large to be returned whole.
    #[error("{path:?} has {size} bytes, more than the {limit} bytes that can be read at once")]
    FileTooLarge {
        /// The path as given.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The search pattern is not a valid regular expression.
    #[error("invalid regular expression {pattern:?}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// The parser's error.
        #[source]
        source: Box<regex::Error>,
    },
    /// The glob is not valid.
    #[error("invalid glob {glob:?}")]
    InvalidGlob {
        /// The glob as given.
        glob: String,
        /// The parser's error.
        #[source]
        source: Box<ignore::Error>,
    },
    /// A workspace filesystem could not be made, mounted or removed.
    #[error("{program} failed: {detail}")]
    Volume {
        /// The tool (mkfs.ext4, mount, umount, losetup).
        program: String,
        /// Its exit status and stderr.
        detail: String,
    },
    /// A process could not be started.
    #[error("cannot start {program}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A filesystem operation failed.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path concerned (host-side).
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A session's metadata file is unreadable.
    #[error("corrupt session metadata {path}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A blocking task panicked or was cancelled.
    #[error("background task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// How a caller should treat an [`Error`]; services map this to their wire status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is wrong; retrying it unchanged fails again.
    InvalidArgument,
    /// The session or path does not exist.
    NotFound,
    /// The request is valid but the world is not in a state to serve it.
    FailedPrecondition,
    /// A fault of the sandbox or its host.
    Internal,
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidSessionId { .. }
            | Error::InvalidRepoUrl { .. }
            | Error::InvalidCommitSha { .. }
            | Error::UnknownImage { .. }
            | Error::InvalidTimeout { .. }
            | Error::InvalidEnv { .. }
            | Error::InvalidCommand { .. }
            | Error::InvalidPath { .. }
            | Error::WrongFileType { .. }
            | Error::InvalidPattern { .. }
            | Error::InvalidGlob { .. } => ErrorKind::InvalidArgument,
            Error::SessionNotFound { .. } | Error::PathNotFound { .. } => ErrorKind::NotFound,
            Error::Clone { .. }
            | Error::CommitNotFound { .. }
            | Error::FileTooLarge { .. }
            | Error::BubblewrapUnavailable { .. }
            | Error::CgroupsUnavailable { .. } => ErrorKind::FailedPrecondition,
            Error::InvalidConfig(_)
            | Error::Git { .. }
            | Error::GitProcess(_)
            | Error::Spawn { .. }
            | Error::Volume { .. }
            | Error::Io { .. }
            | Error::Metadata { .. }
            | Error::Task(_) => ErrorKind::Internal,
        }
    }

    /// The message and all its causes, `: `-separated; for logs and for errors the caller made.
    pub fn chain(&self) -> String {
        cap_errors::chain(self)
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}
