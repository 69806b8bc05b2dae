//! The coding agent as a role of the agent server: `ExecuteTask` runs [`CodingAgent::run`];
//! the agent streams its own ErrorReports, interrupts stop it at its next step.

use cap_agent_server::{Reported, Role, RoleError, Steering};
use cap_proto::agent::v1::{TaskEvent, TaskRequest};
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;
use tonic::Code;

use crate::{CodingAgent, Error, Result};

impl Role for CodingAgent {
    const AGENT: &'static str = crate::AGENT_NAME;
    type Job = TaskRequest;
    type Error = Error;

    fn accept(&self, request: TaskRequest) -> Result<TaskRequest> {
        Self::validate(&request)?;
        Ok(request)
    }

    async fn run(
        &self,
        job: TaskRequest,
        events: Sender<TaskEvent>,
        cancel: CancellationToken,
        steering: Steering,
    ) -> Result<()> {
        CodingAgent::run(self, job, events, cancel, steering)
            .await
            .map(drop)
    }
}

impl RoleError for Error {
    fn code(&self) -> Code {
        match self {
            Error::InvalidRequest { .. } => Code::InvalidArgument,
            Error::Config { .. } => Code::FailedPrecondition,
            Error::Model { .. } => Code::Unavailable,
            // The named session does not exist or cannot be used.
            Error::Session { source, .. } => match source.as_ref() {
                Error::Sandbox { source, .. } if source.code() == Code::NotFound => {
                    Code::FailedPrecondition
                }
                _ => Code::Unavailable,
            },
            Error::Sandbox { source, .. } => match source.code() {
                Code::InvalidArgument
                | Code::NotFound
                | Code::FailedPrecondition
                | Code::AlreadyExists
                | Code::OutOfRange
                | Code::PermissionDenied => Code::FailedPrecondition,
                _ => Code::Unavailable,
            },
            Error::ExecIncomplete | Error::TestRun { .. } | Error::Format { .. } => {
                Code::Unavailable
            }
            Error::EventsClosed => Code::Cancelled,
        }
    }

    fn reported(&self) -> Reported {
        // The loop streams an ErrorReport where it fails (see `run.rs`).
        Reported::ByRole
    }
}

#[cfg(test)]
#[path = "role_tests.rs"]
mod tests;
