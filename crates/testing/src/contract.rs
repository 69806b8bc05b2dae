//! The testing agent's words on the wire, in one place: its name, the `TaskRequest.context`
//! keys it reads and the Checkpoint kinds its stream ends with.

/// The name the testing agent signs its events with and answers to in `GetAgentStatus`.
pub const AGENT_NAME: &str = "testing";

/// The `TaskRequest.context` keys.
pub mod context_key {
    /// The optional test pattern.
    pub const TEST_PATTERN: &str = "test_pattern";
    /// A bug fix's regression test files (comma-separated): the agent proves they fail on the
    /// base checkout and pass with the fix (UC-03).
    pub const REGRESSION_TEST_FILES: &str = "regression_test_files";
    /// The test pattern of the regression test (optional).
    pub const REGRESSION_TEST_PATTERN: &str = "regression_test_pattern";
    /// Turns coverage on (`true`) or off (`false`); by default coverage is measured when the
    /// repository sets a threshold.
    pub const COVERAGE: &str = "coverage";
}

/// The Checkpoint kinds.
pub mod checkpoint {
    /// The tests ran and passed (and coverage, the regression proof and the linters agree).
    pub const TESTS_PASSED: &str = "tests_passed";
    /// A test failed, the run broke or timed out, coverage dropped below the threshold, the
    /// regression test is not proven or a linter found violations.
    pub const TESTS_FAILED: &str = "tests_failed";
    /// No test runner was detected and none is configured.
    pub const NO_TESTS: &str = "no_tests";
    /// `InterruptTask` (or the caller going away) stopped the run.
    pub use cap_agent_server::INTERRUPTED;
}
