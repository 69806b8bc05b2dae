//! The coding agent's tool-calling loop and the PRD's tools, run against a sandbox session.
