//! End-to-end tests: the fleet started as processes (as `cap up` starts it), driven through
//! the gateway's REST and WebSocket API with the scripted model playing the model.
//!
//! The service binaries must be built first (`make test` does: `cargo build --bins`).

// `cfg(test)` so that clippy treats the shared helpers as test code.
#[cfg(test)]
mod suite;
