//! Integration tests of the gateway: one binary, suites under `suite/`.

// `cfg(test)` marks the helpers as test code too, for clippy's allow-unwrap-in-tests.
#[cfg(test)]
mod suite;
