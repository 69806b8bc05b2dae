//! The workflow graph in process: the engine over a SQLite store, the test kit's in-memory
//! sandbox, and stub agents and a stub GitHub service on loopback. No bubblewrap, no fleet.

// Test helpers outside `#[test]` functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
