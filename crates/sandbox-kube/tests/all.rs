//! Integration tests of the Kubernetes backend against a mocked API server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
