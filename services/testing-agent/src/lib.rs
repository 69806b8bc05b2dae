//! Testing agent service: AgentOrchestrator that runs a repository's own tests in the sandbox.
