//! The testing agent's name on the wire. It reads the testing fields of `TaskContext`
//! (`test_pattern`, `coverage`, `regression_test_files`, `regression_test_pattern`) and ends
//! its stream with a Checkpoint of kind `tests_passed`, `tests_failed`, `no_tests` or
//! `interrupted` (see `CheckpointKind` in the contract).

/// The name the testing agent signs its events with and answers to in `GetAgentStatus`.
pub const AGENT_NAME: &str = "testing";
