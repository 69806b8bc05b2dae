//! What the engine writes to the audit log (`cap-audit`, in the supervisor's database): who
//! asked for what, what each agent did, who steered or decided what, the commit with the
//! exact diff, the pull request and how the task ended.
//!
//! Actors are the signed-in user the gateway named (`cap_runtime::acting_user`), or
//! `service:<name>` for what the fleet's services did on their own (`service:supervisor`,
//! `service:coding-agent`). Human actions are recorded once they took effect; the task's
//! submission before the task is stored, so no task runs unrecorded.

use std::time::Duration;

use cap_audit::Entry;

use crate::engine::Inner;
use crate::{Error, Result};

/// The supervisor as an actor.
pub(crate) const SUPERVISOR: &str = "service:supervisor";

/// Attempts of an append that meets contention or a passing outage.
const APPEND_ATTEMPTS: u32 = 5;
/// Wait before the second attempt; doubled for each further one.
const APPEND_BACKOFF: Duration = Duration::from_millis(50);

impl Inner {
    /// Appends one record, trying again while the store's trouble is passing. A record that
    /// cannot be written fails the action that made it (and is logged whole), so nothing is
    /// done that the log does not show.
    pub(crate) async fn audit(
        &self,
        actor: &str,
        action: &str,
        task_id: &str,
        details: serde_json::Value,
    ) -> Result<()> {
        self.audit_all(vec![Entry::new(actor, action, task_id, details)])
            .await
    }

    /// Appends `entries` in one transaction (all or none), as [`Inner::audit`] does one.
    pub(crate) async fn audit_all(&self, entries: Vec<Entry>) -> Result<()> {
        let mut wait = APPEND_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.store.audit().append_all(&entries).await {
                Ok(_) => return Ok(()),
                Err(error) if error.is_transient() && attempt < APPEND_ATTEMPTS => {
                    tracing::warn!(attempt, error = %error, "audit append failed; trying again");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
                Err(error) => {
                    for entry in &entries {
                        tracing::error!(
                            task_id = %entry.task_id, actor = %entry.actor,
                            action = %entry.action, details = %entry.details,
                            error = %error, cause = ?std::error::Error::source(&error),
                            "could not write an audit record"
                        );
                    }
                    return Err(Error::Audit(error));
                }
            }
        }
    }
}
