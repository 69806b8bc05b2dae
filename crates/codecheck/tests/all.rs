//! Integration tests of cap-codecheck.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod suite;
