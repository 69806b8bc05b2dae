//! Detects how a repository is tested and runs its tests inside the sandbox.
//!
//! Everything goes through the sandbox service's RPCs: detection lists and reads the
//! workspace ([`detect`]), running streams one `Exec` ([`run`]). Results come from the
//! runners' machine formats, never from their console text: JUnit XML for pytest, Maven
//! (surefire), Gradle and node's test runner, Jest's JSON for Jest and Vitest, Mocha's JSON,
//! `go test -json`
//! for Go. Runners without a machine format (npm,
//! unittest, a custom command) are judged by their exit code alone.
//!
//! The repository's tests are untrusted code; they run only inside the sandbox. What they
//! print is parsed defensively: malformed or missing reports fall back to the exit code,
//! never to a panic.

pub mod coverage;
mod detect;
mod gotest;
mod jestjson;
mod junit;
pub mod lint;
mod mochajson;
mod plan;
mod run;

use serde::{Deserialize, Serialize};

pub use detect::{detect, detect_from_files, files_to_read};
pub use gotest::parse_go_test_json;
pub use jestjson::parse_jest_json;
pub use junit::parse_junit_xml;
pub use mochajson::parse_mocha_json;
pub use plan::{Framework, TestPlan};
pub use run::{RegressionProof, prove_regression, run, run_detailed};

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
    /// A file name handed to a linter that could escape the workspace or pass for an option.
    #[error("invalid file path {path:?}: it must be relative, without `..`, not start with `-`")]
    InvalidPath {
        /// The path as given (cut).
        path: String,
    },
    /// A coverage report that cannot be read.
    #[error("malformed {format} coverage report: {reason}")]
    MalformedCoverage {
        /// The report's format.
        format: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Coverage could not be measured.
    #[error("coverage of the {framework} tests could not be measured: {reason}")]
    CoverageUnavailable {
        /// The runner.
        framework: Framework,
        /// Why.
        reason: String,
    },
    /// A Jest, Vitest or Mocha JSON report that is not valid JSON of the expected shape.
    #[error("malformed Jest/Vitest/Mocha JSON report")]
    MalformedJson(#[source] serde_json::Error),
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
            | Self::NotJunit(_)
            | Self::MalformedJson(_)
            | Self::MalformedCoverage { .. }
            | Self::InvalidPath { .. }
            | Self::CoverageUnavailable { .. } => None,
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

/// What went wrong with a run, beyond tests failing: the category of a broken input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// The suite ran past its timeout (it hangs) and was killed.
    TimedOut,
    /// The test runner is not installed in the sandbox.
    RunnerMissing,
    /// The test runner could not run (not executable, internal or usage error).
    RunnerFailed,
    /// The runner should have left a report file and left none.
    ReportMissing,
    /// The runner's report files are not well-formed reports.
    ReportMalformed,
    /// The runner found no tests.
    NoTests,
}

impl Problem {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TimedOut => "timed_out",
            Self::RunnerMissing => "runner_missing",
            Self::RunnerFailed => "runner_failed",
            Self::ReportMissing => "report_missing",
            Self::ReportMalformed => "report_malformed",
            Self::NoTests => "no_tests",
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A [`TestRun`] with the category of what went wrong, from [`run_detailed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    /// The run.
    #[serde(flatten)]
    pub run: TestRun,
    /// What went wrong beyond failing tests; `None` for a run that passed or failed normally.
    pub problem: Option<Problem>,
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
