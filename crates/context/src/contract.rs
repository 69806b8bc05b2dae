//! The context agent's name on the wire. It reads the context fields of `TaskContext`
//! (`stack_trace`, `repo_map_tokens`) and ends its stream with a Checkpoint of kind
//! `context_ready` (the state holds the context for the planner) or `interrupted`.

/// The name the context agent signs its events with and answers to in `GetAgentStatus`.
pub const AGENT_NAME: &str = "context";
