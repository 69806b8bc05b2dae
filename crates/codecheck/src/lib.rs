//! Suspicious-code checks on a change: finds, in the lines a change adds to Python,
//! JavaScript/TypeScript, Go and Java files, code a reviewer should look at twice: `eval` and
//! its kin, dynamic imports, shell commands built at run time, network calls added to a file
//! that made none, encoded or very long literals, disabled TLS verification.
//!
//! Each language has one tree-sitter query (compiled once, on first use) holding every rule's
//! patterns; what a query cannot say (is this argument a constant? does this literal hold a
//! base64 blob?) is checked in Rust on the captured nodes. Only changed files are parsed, and
//! only the part of each that the change touched is searched. A finding is reported only when
//! its node touches a line the change added or modified: code that was there before is not
//! the change's doing. Files in other languages are skipped; a file that does not parse
//! cleanly is still checked on the tree tree-sitter recovers.
//!
//! The rules, with their ids and severities, are in [`rules::RULES`].

mod check;
mod lang;
pub mod rules;

use serde::{Deserialize, Serialize};

pub use check::{BLOB_MIN_CHARS, LONG_LITERAL_MIN_CHARS, MAX_FILE_BYTES};
pub use lang::Lang;
pub use rules::{Rule, Severity};

/// What went wrong in the checks' own setup.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A language's query does not compile or names an unknown rule (a bug in the rule table,
    /// which the crate's tests rule out).
    #[error("the {language} query of the suspicious-code checks is invalid: {message}")]
    Query {
        /// The language whose query failed.
        language: &'static str,
        /// What the query compiler said.
        message: String,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// One file of a change.
#[derive(Debug, Clone, Copy)]
pub struct ChangedFile<'a> {
    /// Path relative to the repository root, `/`-separated.
    pub path: &'a str,
    /// Content before the change; `None` when the change creates the file.
    pub before: Option<&'a str>,
    /// Content after the change; `None` when the change deletes the file.
    pub after: Option<&'a str>,
}

/// Suspicious code the change adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The rule's id, e.g. `python.eval`.
    pub rule: String,
    /// How serious it is.
    pub severity: Severity,
    /// The file.
    pub path: String,
    /// 1-based line in the file after the change.
    pub line: usize,
    /// What was found and why it matters.
    pub message: String,
    /// The line's text, trimmed, cut and cleared of secrets.
    pub text: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{} [{}, {}] {}: `{}`",
            self.path, self.line, self.rule, self.severity, self.message, self.text
        )
    }
}

/// A file in a checked language that was not checked, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The file.
    pub path: String,
    /// Why it was not checked.
    pub reason: String,
}

/// What the checks found in a change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The findings, by file (in the order given) and line.
    pub findings: Vec<Finding>,
    /// Files in a checked language that could not be checked.
    pub skipped: Vec<Skipped>,
}

/// Checks every file of a change; never fails (a file that cannot be checked is listed in
/// [`Report::skipped`]).
pub fn check(files: &[ChangedFile<'_>]) -> Report {
    let mut parser = tree_sitter::Parser::new();
    let mut report = Report::default();
    for file in files {
        check::check_file(&mut parser, file, &mut report.findings, &mut report.skipped);
    }
    report
}

/// Compiles every language's query, naming the first that fails (for tests and start-up
/// checks; [`check`] compiles them on first use anyway).
pub fn verify_queries() -> Result<()> {
    for lang in Lang::ALL {
        check::compiled(lang)?;
    }
    Ok(())
}
