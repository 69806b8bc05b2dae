#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chain;
mod support;
mod tamper;
