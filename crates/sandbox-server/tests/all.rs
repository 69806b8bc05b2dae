//! The sandbox service over mutual TLS, served in-process on port 0.

// Test helpers outside `#[test]` functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
