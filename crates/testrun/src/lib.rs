//! Detects how a repository is tested and runs its tests inside the sandbox.
