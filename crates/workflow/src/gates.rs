//! Gates between the workspace and the outside world (error category D): the change is
//! scanned for secrets before it is reviewed and again before it is committed, and every
//! event is redacted before it is stored or streamed.
//!
//! A finding stops the task: it fails naming the rule, the file and the line with the
//! secret's redacted fingerprint only, a `critical` error event is raised, nothing is
//! committed, and the workspace is kept (quarantined) for an Admin to look at, not released.

use cap_proto::agent::v1::TaskEvent;
use cap_proto::agent::v1::observation::Detail;
use cap_proto::agent::v1::task_event::Payload;

use crate::engine::Run;
use crate::{Error, Result};

/// Findings named in the task's error message; the rest are counted.
const NAMED_FINDINGS: usize = 10;

impl Run {
    /// Refuses a change whose added lines (`diff`, unified) hold what looks like a secret.
    pub(crate) fn check_secrets(&self, diff: &str) -> Result<()> {
        let scanner = cap_secrets::default_scanner().ok_or_else(|| {
            Error::SecretsFound(
                "the secret scanner is unavailable, so the change cannot be cleared; nothing \
                 was committed"
                    .into(),
            )
        })?;
        let report = scanner.scan_diff(diff).map_err(|error| {
            Error::SecretsFound(format!(
                "the change could not be scanned for secrets ({error}); nothing was committed"
            ))
        })?;
        if report.is_clean() {
            return Ok(());
        }
        let count = report.findings.len();
        let mut named: Vec<String> = report
            .findings
            .iter()
            .take(NAMED_FINDINGS)
            .map(ToString::to_string)
            .collect();
        if count > NAMED_FINDINGS {
            named.push(format!("and {} more", count - NAMED_FINDINGS));
        }
        Err(Error::SecretsFound(format!(
            "the change holds {count} likely secret{}; nothing was committed and the workspace \
             is quarantined: {}",
            if count == 1 { "" } else { "s" },
            named.join("; ")
        )))
    }
}

/// Replaces every secret the scanner detects in the event's text with its redacted form.
pub(crate) fn redact_event(event: &mut TaskEvent) {
    let redact = |text: &mut String| {
        let redacted = cap_secrets::redact(text);
        if redacted != *text {
            *text = redacted;
        }
    };
    match event.payload.as_mut() {
        Some(Payload::Thought(thought)) => redact(&mut thought.reasoning),
        Some(Payload::Action(action)) => redact(&mut action.arguments_json),
        Some(Payload::Observation(observation)) => {
            redact(&mut observation.content);
            if let Some(Detail::CommandExecuted(command)) = observation.detail.as_mut() {
                redact(&mut command.command);
                redact(&mut command.stdout_snippet);
            }
        }
        Some(Payload::Checkpoint(checkpoint)) => {
            redact(&mut checkpoint.description);
            redact(&mut checkpoint.state_json);
        }
        Some(Payload::Error(report)) => redact(&mut report.message),
        Some(Payload::Status(_)) | None => {}
    }
}

#[cfg(test)]
#[path = "gates_tests.rs"]
mod tests;
