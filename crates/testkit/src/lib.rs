//! Test support: the scripted model server, test repositories and an in-memory sandbox.
//!
//! The scripted model lives in `cap-scripted-model` (the demo of `cap up` runs it too); it is
//! re-exported here so tests find every fixture in one crate. [`git`] makes test repositories;
//! [`sandbox`] is an in-memory sandbox for tests that need a workspace but not bubblewrap;
//! [`github`] is a GitHub API stand-in with a real git remote over smart HTTP.

pub use cap_scripted_model::{
    HASHED_DIMENSIONS, ScriptStep, ScriptToolCall, ScriptedModel, load_script, serve_script,
};

pub mod git;
pub mod github;
pub mod sandbox;

/// A token in the GitHub personal-access-token format, made at run time so that no
/// repository file holds one: for tests of the secret gates.
pub fn fake_github_token() -> String {
    let body: String = (0..36)
        .map(|i| char::from(b"aZ7qW3eR9tY1uI5oP2sD8fG4hJ6kL0"[(i * 7 + 3) % 30]))
        .collect();
    format!("{}{body}", ["gh", "p_"].concat())
}
