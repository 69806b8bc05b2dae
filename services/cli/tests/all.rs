//! Integration tests of the `cap` command.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod suite;
