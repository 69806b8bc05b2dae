//! Integration tests of the sandbox against real git and real bubblewrap.

// Test helpers outside `#[test]` functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
