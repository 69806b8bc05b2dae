//! The coding agent's name on the wire. Its stream ends with a Checkpoint of kind
//! `agent_finished` (the model answered without tool calls; its edits are written),
//! `step_limit_reached` (the model turns ran out; its edits are written) or `interrupted`;
//! it reads the coding fields of `TaskContext` into the task prompt.

/// The name the coding agent signs its events with and answers to in `GetAgentStatus`.
pub const AGENT_NAME: &str = "coding";
