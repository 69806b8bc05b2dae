//! Supervisor service: runs tasks through the workflow graph.
