//! What the engine writes to the audit log (`cap-audit`, in the supervisor's database): who
//! asked for what, what each agent did, who steered or decided what, the commit with the
//! exact diff, the pull request and how the task ended.
//!
//! Actors are the signed-in user the gateway named (`cap_runtime::acting_user`), or
//! `service:<name>` for what the fleet's services did on their own (`service:supervisor`,
//! `service:coding-agent`). Human actions are recorded once they took effect; the task's
//! submission before the task is stored, so no task runs unrecorded.

use cap_audit::Entry;

use crate::engine::Inner;
use crate::{Error, Result};

/// The supervisor as an actor.
pub(crate) const SUPERVISOR: &str = "service:supervisor";

impl Inner {
    /// Appends one record, trying again while the store's trouble is passing. A record that
    /// still cannot be written is logged whole and fails the call (a run then goes on from
    /// its state once the store answers, writing it again), so none disappears unnoticed.
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
        self.store
            .audit()
            .append_retrying(&entries)
            .await
            .map(drop)
            .map_err(Error::Audit)
    }
}
