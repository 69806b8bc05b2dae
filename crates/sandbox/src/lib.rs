//! Workspaces and isolated command execution: the local bubblewrap backend.
