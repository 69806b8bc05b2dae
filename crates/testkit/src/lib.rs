//! Test support: the scripted model server, test repositories and an in-memory sandbox.
//!
//! The scripted model lives in `cap-scripted-model` (the demo of `cap up` runs it too); it is
//! re-exported here so tests find every fixture in one crate. [`git`] makes test repositories;
//! [`sandbox`] is an in-memory sandbox for tests that need a workspace but not bubblewrap.

pub use cap_scripted_model::{
    HASHED_DIMENSIONS, ScriptStep, ScriptToolCall, ScriptedModel, load_script, serve_script,
};

pub mod git;
pub mod sandbox;
