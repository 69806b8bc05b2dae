//! Detects how a repository is tested and runs its tests inside the sandbox.
//!
//! Everything goes through the sandbox service's RPCs: detection lists and reads the
//! workspace ([`detect`]), running streams one `Exec` ([`run`]). Results come from the
//! runners' machine formats, never from their console text: JUnit XML for pytest, Maven
//! (surefire) and Gradle, `go test -json` for Go. Runners without a machine format (npm,
//! unittest, a custom command) are judged by their exit code alone.
//!
//! The repository's tests are untrusted code; they run only inside the sandbox. What they
//! print is parsed defensively: malformed or missing reports fall back to the exit code,
//! never to a panic.

mod detect;
mod gotest;
mod junit;
mod plan;
mod run;

use serde::{Deserialize, Serialize};

pub use detect::{detect, detect_from_files, files_to_read};
pub use gotest::parse_go_test_json;
pub use junit::parse_junit_xml;
pub use plan::{Framework, TestPlan};
pub use run::run;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A sandbox RPC failed (unreachable service, unknown session, refused request).
    #[error("sandbox {operation} failed")]
    Sandbox {
        /// The RPC, e.g. `Exec`.
        operation: &'static str,
        /// The status the sandbox (or the transport) returned.
        #[source]
        source: tonic::Status,
    },
    /// The `Exec` stream ended without reporting how the command exited.
    #[error("sandbox Exec stream ended without an exit status")]
    MissingExitStatus,
    /// The test pattern cannot be passed to a test runner.
    #[error("invalid test pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The session id is empty.
    #[error("sandbox session id is empty")]
    EmptySessionId,
    /// The plan's command is empty.
    #[error("the test command is empty")]
    EmptyCommand,
    /// A JUnit report is not well-formed XML (or uses a DTD, which is refused).
    #[error("malformed JUnit XML report")]
    MalformedJunit(#[source] roxmltree::Error),
    /// A well-formed XML document that is not a JUnit report.
    #[error("not a JUnit XML report: the root element is <{0}>, not <testsuites> or <testsuite>")]
    NotJunit(String),
}

impl Error {
    /// The gRPC status code the sandbox answered with, if the error came from the sandbox.
    pub fn sandbox_code(&self) -> Option<tonic::Code> {
        match self {
            Self::Sandbox { source, .. } => Some(source.code()),
            Self::MissingExitStatus
            | Self::InvalidPattern { .. }
            | Self::EmptySessionId
            | Self::EmptyCommand
            | Self::MalformedJunit(_)
            | Self::NotJunit(_) => None,
        }
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// How one test run ended, as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every test that ran passed.
    Passed,
    /// At least one test failed or errored, or the runner exited non-zero.
    Failed,
    /// The run was killed at its timeout.
    TimedOut,
    /// The runner found no tests to run.
    NoTests,
    /// The runner itself could not run (not installed, usage error, internal error).
    Error,
}

impl Outcome {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::NoTests => "no_tests",
            Self::Error => "error",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One test case as the runner reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCase {
    /// Qualified name: `classname.name` from JUnit, the test name (with subtests) for Go.
    pub name: String,
    /// The file the test lives in when the runner says so; the package import path for Go;
    /// empty when unknown.
    pub file: String,
    /// `passed`, `failed`, `error` or `skipped`.
    pub outcome: String,
    /// How long the test took.
    pub duration_ms: u64,
    /// The failure, error or skip message with its details (capped), empty for a pass.
    pub message: String,
}

/// The result of one test run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRun {
    /// The command as shown to the user (without the reporting options added to run it).
    pub command: String,
    /// How the run ended as a whole.
    pub outcome: Outcome,
    /// The runner's exit code; -1 when killed by a signal or the timeout.
    pub exit_code: i32,
    /// Whether the run was killed at its timeout.
    pub timed_out: bool,
    /// Wall time of the run, as the sandbox measured it.
    pub duration_ms: u64,
    /// Test cases that passed.
    pub passed: u32,
    /// Test cases that failed.
    pub failed: u32,
    /// Test cases that errored (including collection errors).
    pub errors: u32,
    /// Test cases that were skipped.
    pub skipped: u32,
    /// Every case the runner reported, in report order.
    pub cases: Vec<TestCase>,
    /// The last ~4 KiB of the combined console output, plus an explanation when the runner
    /// could not run.
    pub output_tail: String,
}

impl TestRun {
    /// A one-paragraph summary for a model or a human.
    pub fn summary(&self) -> String {
        let Self {
            command,
            outcome,
            exit_code,
            passed,
            failed,
            errors,
            skipped,
            ..
        } = self;
        let mut text = format!(
            "`{command}` {outcome} (exit code {exit_code}): {passed} passed, {failed} failed, \
             {errors} errors, {skipped} skipped"
        );
        if self.timed_out {
            text.push_str(", killed at the timeout");
        }
        let failing: Vec<&str> = self
            .cases
            .iter()
            .filter(|c| c.outcome == "failed" || c.outcome == "error")
            .map(|c| c.name.as_str())
            .take(20)
            .collect();
        if !failing.is_empty() {
            text.push_str("\nfailing: ");
            text.push_str(&failing.join(", "));
        }
        text
    }
}
