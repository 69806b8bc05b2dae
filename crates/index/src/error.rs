//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong indexing or searching a repository.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The root to index is missing or not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    /// A path given by the caller is absolute, contains `..`, or leaves the repository.
    #[error("path {0:?} is outside the repository")]
    PathOutsideRepository(String),
    /// A path given by the caller is not an indexed file.
    #[error("{0} is not an indexed file")]
    NotIndexed(String),
    /// The search pattern is not a valid regular expression.
    #[error("invalid search pattern {pattern:?}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// Why it is invalid.
        #[source]
        source: grep::regex::Error,
    },
    /// The glob is not a valid glob.
    #[error("invalid glob {glob:?}")]
    InvalidGlob {
        /// The glob as given.
        glob: String,
        /// Why it is invalid.
        #[source]
        source: ignore::Error,
    },
    /// A tree-sitter grammar could not be loaded (a version mismatch between crates).
    #[error("the {0} grammar could not be loaded")]
    Grammar(&'static str),
    /// The full-text index failed.
    #[error("the full-text index failed")]
    FullText(#[source] tantivy::TantivyError),
    /// The embeddings endpoint's configuration is unusable.
    #[error("invalid embeddings configuration: {0}")]
    InvalidEmbeddingsConfig(String),
    /// The embeddings endpoint failed or answered something unusable.
    #[error("the embeddings endpoint {endpoint} failed: {reason}")]
    Embeddings {
        /// The URL called.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
    /// Indexing was cancelled by the caller; nothing half-done was kept.
    #[error("indexing was cancelled")]
    Cancelled,
    /// Reading the file system failed.
    #[error("cannot read {path}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;
