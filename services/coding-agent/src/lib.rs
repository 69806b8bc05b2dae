//! Coding agent service: AgentOrchestrator over the tool-calling loop.
