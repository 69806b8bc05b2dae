//! The context agent's words on the wire, in one place: its name, the `TaskRequest.context`
//! keys it reads and the Checkpoint kinds its stream ends with.

/// The name the context agent signs its events with and answers to in `GetAgentStatus`.
pub const AGENT_NAME: &str = "context";

/// The `TaskRequest.context` keys.
pub mod context_key {
    /// A stack trace or error log to map onto the repository.
    pub const STACK_TRACE: &str = "stack_trace";
    /// The repository map's token budget (a whole number; 1024 when absent).
    pub const REPO_MAP_TOKENS: &str = "repo_map_tokens";
}

/// The Checkpoint kinds.
pub mod checkpoint {
    /// The workspace is indexed; the state holds the context for the planner.
    pub const CONTEXT_READY: &str = "context_ready";
    /// `InterruptTask` (or the caller going away) stopped the copy or the indexing.
    pub use cap_agent_server::INTERRUPTED;
}
