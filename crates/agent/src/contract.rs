//! The coding agent's words on the wire, in one place: its name and the Checkpoint kinds its
//! stream ends with. It reads no `TaskRequest.context` key by name: the whole context goes
//! into the task prompt.

/// The name the coding agent signs its events with and answers to in `GetAgentStatus`.
pub const AGENT_NAME: &str = "coding";

/// The Checkpoint kinds.
pub mod checkpoint {
    /// The model answered without tool calls; its edits are written.
    pub const AGENT_FINISHED: &str = "agent_finished";
    /// The model turns ran out; its edits are written.
    pub const STEP_LIMIT_REACHED: &str = "step_limit_reached";
    /// `InterruptTask` (or the caller going away) stopped the loop at its next step.
    pub use cap_agent_server::INTERRUPTED;
}
