//! Integration tests of the secret scanner.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod suite;
