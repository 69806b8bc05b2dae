//! The fleet's contract: messages and gRPC clients/servers generated from `proto/`.
//!
//! Types only; behaviour lives in the crates that use them.
#![allow(missing_docs, clippy::all)]

/// Types shared by several services.
pub mod common {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("cap.common.v1");
    }
}

/// The `AgentOrchestrator` contract between the supervisor and the agents.
pub mod agent {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("cap.agent.v1");
    }
}

/// The supervisor's task API.
pub mod supervisor {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("cap.supervisor.v1");
    }
}

/// The sandbox service.
pub mod sandbox {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("cap.sandbox.v1");
    }
}

/// The GitHub service (local forge by default).
pub mod github {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("cap.github.v1");
    }
}

/// Repository analysis served by the context agent.
pub mod context {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("cap.context.v1");
    }
}

mod names;
pub use names::ACTOR_METADATA;
