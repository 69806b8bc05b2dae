//! Secret scanning: finds credentials in a directory tree, a single text or the added lines of
//! a unified diff, and redacts them.
//!
//! The [`Scanner`] holds every [rule](rules) compiled once. A scan first runs one
//! Aho-Corasick automaton over the text for the rules' keywords (`ghp_`, `AKIA`, `PRIVATE KEY`,
//! `password`, ...) and runs a rule's regex only on the lines around its keywords' hits, so a
//! text without any keyword costs one pass of the automaton. Each candidate then goes through
//! the rule's check (entropy, structure) and the look-alike rejection (placeholders, digests,
//! UUIDs, documentation example keys), then through the [`AllowList`].
//!
//! A [`Finding`] names the rule, the file, the line and the column, and carries only a
//! redacted form of the secret (its first characters and a SHA-256-based fingerprint): the
//! secret itself is never stored in a finding, so printing, logging or serialising one is safe.
//! [`redact`] replaces every detected secret in a text with that redacted form, for events,
//! logs and pull-request bodies.
//!
//! Reports come out as SARIF 2.1.0 ([`Report::to_sarif`]) or JSON ([`Report::to_json`]).

mod allow;
mod checks;
mod diff;
mod finding;
mod report;
pub mod rules;
mod scanner;
mod tree;

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::LazyLock;

pub use allow::{ALLOW_LIST_PATH, AllowList};
pub use diff::{DiffFile, looks_like_diff, parse_diff};
pub use finding::{Finding, fingerprint, redacted_form};
pub use report::{Report, SkippedFile};
pub use scanner::Scanner;
pub use tree::ScanLimits;

/// What went wrong in a scan.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The path that failed.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Walking a directory tree failed.
    #[error("cannot walk {path}")]
    Walk {
        /// The tree's root.
        path: PathBuf,
        /// The walker's error.
        #[source]
        source: ignore::Error,
    },
    /// The allow-list file is not valid.
    #[error("invalid allow-list {path}: {reason}")]
    AllowList {
        /// The allow-list file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The unified diff is malformed.
    #[error("malformed diff at line {line}: {reason}")]
    Diff {
        /// 1-based line of the diff text.
        line: usize,
        /// What is wrong there.
        reason: String,
    },
    /// A rule's pattern does not compile (a bug in the rule table).
    #[error("rule {rule} does not compile")]
    Rule {
        /// The rule's id.
        rule: &'static str,
        /// The regex error.
        #[source]
        source: regex::Error,
    },
    /// The keyword automaton could not be built (a bug in the rule table).
    #[error("the keyword automaton does not build")]
    Keywords(#[source] aho_corasick::BuildError),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The scanner with the built-in rules and an empty allow-list, built on first use.
static DEFAULT_SCANNER: LazyLock<Option<Scanner>> = LazyLock::new(|| Scanner::new().ok());

/// The shared scanner with the built-in rules and no allow-list (`None` only if the built-in
/// rule table does not compile, which the crate's tests rule out).
pub fn default_scanner() -> Option<&'static Scanner> {
    DEFAULT_SCANNER.as_ref()
}

/// Replaces every secret the built-in rules detect in `text` with its redacted form (see
/// [`redacted_form`]); for event payloads, log lines and pull-request bodies. No allow-list
/// applies: a known-public value is redacted too, which costs nothing where text is only shown.
/// If the rule table failed to compile (it cannot, the tests build it), the whole text is
/// withheld rather than passed on unchecked.
pub fn redact(text: &str) -> String {
    match default_scanner() {
        Some(scanner) => scanner.redact(text),
        None => "[withheld: the secret scanner is unavailable]".to_owned(),
    }
}

/// As [`redact`], borrowing `text` unchanged when it holds no secret (most log lines: one
/// pass of the keyword automaton, no copy).
pub fn redacted(text: &str) -> Cow<'_, str> {
    match default_scanner() {
        Some(scanner) => scanner.redacted(text),
        None => Cow::Borrowed("[withheld: the secret scanner is unavailable]"),
    }
}
