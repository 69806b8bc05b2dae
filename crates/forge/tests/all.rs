//! Integration tests of the forge: real git on real bare repositories, SQLite and PostgreSQL.

// `cfg(test)` marks the suite as test code for clippy's `allow-unwrap-in-tests`, which the
// store-generic test bodies (plain `async fn`s run by the `on_both_stores!` wrappers) need.
#[cfg(test)]
mod suite;
