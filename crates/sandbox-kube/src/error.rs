//! The one error type of the Kubernetes backend.

use std::path::PathBuf;

use uuid::Uuid;

/// Errors of the Kubernetes backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("kubernetes {operation} failed")]
    Api {
        /// What was being done, e.g. "create pod".
        operation: &'static str,
        /// The client's error (the API server's status when it answered).
        #[source]
        source: kube::Error,
    },
    /// No cluster configuration was found, or it is unusable.
    #[error("no usable kubernetes configuration (in-cluster service account or KUBECONFIG)")]
    NoCluster {
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The API server did not answer the readiness probe.
    #[error("the kubernetes API server did not answer within {waited:?}")]
    NoAnswer {
        /// How long it was given.
        waited: std::time::Duration,
    },
    /// The session's Pod did not become ready.
    #[error("sandbox pod {pod} did not start: {reason}")]
    NotReady {
        /// The Pod.
        pod: String,
        /// Why (the Pod's own status, or the wait's timeout).
        reason: String,
    },
    /// A session id that is not a UUID.
    #[error("invalid session id {0:?}: expected a UUID")]
    InvalidSessionId(String),
    /// No Pod for this session (never made, destroyed, or past its deadline).
    #[error("no sandbox session {id}")]
    SessionNotFound {
        /// The session.
        id: Uuid,
    },
    /// A command that cannot be run.
    #[error("invalid command: {0}")]
    InvalidCommand(&'static str),
    /// An error of the local backend's code run on the host: checking the repository URL and
    /// commit, the hardened checkout, searching and diffing a copy of the workspace.
    #[error(transparent)]
    Local(#[from] cap_sandbox::Error),
    /// The Pod's workspace, sent back as a tar, holds an entry that would land outside the
    /// host copy (an absolute path, `..`, a path through a symlink).
    #[error("the workspace archive from the sandbox pod is refused: entry {entry:?} {reason}")]
    UnsafeArchive {
        /// The entry's path as the archive names it.
        entry: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The Pod's workspace is larger than may be copied to the host.
    #[error("the workspace is larger than {max_bytes} bytes, the most searched or diffed")]
    WorkspaceTooLarge {
        /// The limit.
        max_bytes: u64,
    },
    /// An image the sandbox does not know.
    #[error("unknown image")]
    UnknownImage(#[source] cap_sandbox::Error),
    /// A timeout of zero or above the maximum.
    #[error("invalid timeout {seconds} s: must be between 1 and {max_seconds} s")]
    InvalidTimeout {
        /// The timeout asked for.
        seconds: u64,
        /// The maximum.
        max_seconds: u64,
    },
    /// An environment variable name outside `[A-Z_][A-Z0-9_]*`.
    #[error("invalid environment variable name {name:?}: expected [A-Z_][A-Z0-9_]*")]
    InvalidEnv {
        /// The name.
        name: String,
    },
    /// A workspace path that is not a plain relative path.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// No such file or directory in the workspace.
    #[error("no such file or directory in the workspace: {path}")]
    PathNotFound {
        /// The path.
        path: String,
    },
    /// A directory where a file was expected, or the reverse.
    #[error("{path} is not a {expected}")]
    WrongFileType {
        /// The path.
        path: String,
        /// "regular file" or "directory".
        expected: &'static str,
    },
    /// A file larger than a read may return.
    #[error("{path} is larger than {max_bytes} bytes")]
    FileTooLarge {
        /// The path.
        path: String,
        /// The limit.
        max_bytes: u64,
    },
    /// A host file operation failed.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A command the backend runs in the Pod itself (unpacking the tree, a file operation)
    /// failed.
    #[error("{operation} in sandbox pod failed (exit code {exit_code}): {detail}")]
    PodCommand {
        /// What the command was for.
        operation: &'static str,
        /// Its exit code (-1: killed, or no status).
        exit_code: i32,
        /// The end of its stderr, or "timed out".
        detail: String,
    },
    /// The task making a session ended without a result (it panicked or the runtime is
    /// shutting down); whatever it made is deleted by the Pod's deadline at the latest.
    #[error("session creation was interrupted")]
    Interrupted,
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// How a caller should treat an [`Error`]; the service maps this to its wire status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is wrong; retrying it unchanged fails again.
    InvalidArgument,
    /// The session or path does not exist.
    NotFound,
    /// The request is valid but the world is not in a state to serve it.
    FailedPrecondition,
    /// The cluster or the API server failed; a retry may succeed.
    Unavailable,
    /// A fault of the backend or its host.
    Internal,
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidSessionId(_)
            | Error::InvalidCommand(_)
            | Error::UnknownImage(_)
            | Error::InvalidTimeout { .. }
            | Error::InvalidEnv { .. }
            | Error::InvalidPath { .. }
            | Error::WrongFileType { .. } => ErrorKind::InvalidArgument,
            Error::SessionNotFound { .. } | Error::PathNotFound { .. } => ErrorKind::NotFound,
            Error::NotReady { .. }
            | Error::FileTooLarge { .. }
            | Error::UnsafeArchive { .. }
            | Error::WorkspaceTooLarge { .. } => ErrorKind::FailedPrecondition,
            Error::Local(error) => match error.kind() {
                cap_sandbox::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                cap_sandbox::ErrorKind::NotFound => ErrorKind::NotFound,
                cap_sandbox::ErrorKind::FailedPrecondition => ErrorKind::FailedPrecondition,
                cap_sandbox::ErrorKind::Internal => ErrorKind::Internal,
            },
            Error::Api { .. } | Error::NoCluster { .. } | Error::NoAnswer { .. } => {
                ErrorKind::Unavailable
            }
            Error::Io { .. } | Error::PodCommand { .. } | Error::Interrupted => ErrorKind::Internal,
        }
    }

    /// The message and all its causes, `: `-separated.
    pub fn chain(&self) -> String {
        cap_errors::chain(self)
    }
}
