//! Gates between the workspace and the outside world (error category D): the change is
//! scanned for secrets before it is reviewed and again before it is committed, only the
//! coding agent's own edits are committed (what commands wrote is reported and left out), and
//! every event is redacted before it is stored or streamed.
//!
//! A finding stops the task: it fails naming the rule, the file and the line with the
//! secret's redacted fingerprint only, a `critical` error event is raised, nothing is
//! committed, and the workspace is kept (quarantined) for an Admin to look at, not released.

use std::path::Path;

use cap_proto::agent::v1::observation::Detail;
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::agent::v1::{ErrorReport, TaskEvent};
use cap_proto::common::v1::{FileChange, file_change};
use cap_proto::sandbox::v1::ReadFileRequest;
use cap_secrets::{ALLOW_LIST_PATH, AllowList, Scanner};

use crate::engine::Run;
use crate::{Error, Result};

/// Findings named in the task's error message; the rest are counted.
const NAMED_FINDINGS: usize = 10;

impl Run {
    /// Refuses a change whose added lines (`diff`, unified) hold what looks like a secret.
    /// Findings the base commit's allow-list waives are not reported: what the change itself
    /// does to the allow-list counts for nothing here (and needs a human, see
    /// [`protected_reason`]).
    pub(crate) fn check_secrets(&self, diff: &str) -> Result<()> {
        let unavailable = || {
            Error::SecretsFound(
                "the secret scanner is unavailable, so the change cannot be cleared; nothing \
                 was committed"
                    .into(),
            )
        };
        let allow_list = self
            .state
            .secrets_allow_list
            .as_deref()
            .and_then(|json| AllowList::parse(json, Path::new(ALLOW_LIST_PATH)).ok())
            .unwrap_or_default();
        // Built for each check (a few milliseconds, a few times a task) rather than kept, so
        // the list in force is always the one in the state.
        let with_list;
        let scanner = if allow_list.is_empty() {
            cap_secrets::default_scanner().ok_or_else(unavailable)?
        } else {
            with_list = Scanner::with_allow_list(allow_list).map_err(|_| unavailable())?;
            &with_list
        };
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

impl Run {
    /// Reads the secret scanner's allow-list from the workspace while it still is the base
    /// commit and keeps it in the state ([`WorkflowState::secrets_allow_list`]). A list that
    /// does not parse allows nothing, and a warning says why.
    ///
    /// [`WorkflowState::secrets_allow_list`]: crate::nodes::WorkflowState::secrets_allow_list
    pub(crate) async fn read_base_allow_list(&mut self) -> Result<()> {
        let read = self
            .inner
            .clients
            .sandbox
            .read_file(ReadFileRequest {
                session_id: self.state.session_id.clone(),
                path: ALLOW_LIST_PATH.to_owned(),
            })
            .await;
        let parsed = match read {
            Ok(file) => AllowList::parse(
                &String::from_utf8_lossy(&file.content),
                Path::new(ALLOW_LIST_PATH),
            )
            .map_err(|error| cap_errors::chain(&error)),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(AllowList::new()),
            Err(status) if status.code() == tonic::Code::InvalidArgument => Err(format!(
                "{ALLOW_LIST_PATH} is not a readable file: {}",
                status.message()
            )),
            Err(status) => return Err(Error::upstream("sandbox", status)),
        };
        let list = match parsed {
            Ok(list) => list,
            Err(reason) => {
                self.emit(
                    "supervisor",
                    Payload::Error(ErrorReport {
                        severity: "warning".into(),
                        message: format!(
                            "the repository's secret-scan allow-list is ignored, so every \
                             finding counts: {reason}"
                        ),
                        recoverable: true,
                    }),
                )
                .await?;
                AllowList::new()
            }
        };
        self.state.secrets_allow_list = Some(list.to_json());
        Ok(())
    }
}

/// Why a file the coding agent edited waits for a human after a command changed it.
const REWRITTEN_BY_COMMAND: &str =
    "changed by a command run in the sandbox after the coding agent's last edit";

/// A file the coding agent says it changed through its own edit tools.
pub(crate) struct AgentFile {
    pub(crate) path: String,
    /// The digest of what its tools left in it, `""` when they deleted it; `None` when the
    /// agent did not say.
    pub(crate) digest: Option<String>,
}

/// The `files_changed` the coding agent's ending checkpoint reports (none when it reports
/// none).
pub(crate) fn agent_files(state_json: &str) -> Vec<AgentFile> {
    serde_json::from_str::<serde_json::Value>(state_json)
        .ok()
        .and_then(|state| state.get("files_changed").cloned())
        .and_then(|files| files.as_array().cloned())
        .into_iter()
        .flatten()
        .filter_map(|file| {
            let digest = if file.get("change")?.as_str()? == "deleted" {
                Some(String::new())
            } else {
                file.get("sha256")
                    .and_then(|digest| digest.as_str())
                    .map(str::to_owned)
            };
            Some(AgentFile {
                path: file.get("path")?.as_str()?.to_owned(),
                digest,
            })
        })
        .collect()
}

impl Run {
    /// Before the coding agent runs: a change in the workspace that is neither the agent's
    /// nor a known side effect was left by a run of the coding agent whose end was never
    /// recorded (the supervisor or the agent died in it), since what the test runs write is
    /// recorded after each of them. It is the agent's.
    pub(crate) async fn adopt_unrecorded_edits(&mut self) -> Result<()> {
        let changes = self.workspace_changes().await?.changes;
        for change in changes {
            if !self.state.agent_files.contains(&change.path)
                && !self.state.side_effects.contains(&change.path)
            {
                self.state.agent_files.push(change.path);
            }
        }
        self.state.agent_files.sort();
        Ok(())
    }

    /// The agent's files among `changes` whose content is no longer what its tools left
    /// there: a command (a test run, a build, a script: code the repository controls)
    /// rewrote them after, and committing them would carry that write. They wait for a
    /// human (see [`Run::gate_protected`]).
    pub(crate) fn rewritten_by_commands(
        &self,
        changes: &[FileChange],
    ) -> Vec<(String, &'static str)> {
        changes
            .iter()
            .filter_map(|change| {
                let left = self.state.agent_digests.get(&change.path)?;
                let now = match &change.change {
                    Some(file_change::Change::Content(bytes)) => {
                        cap_sandbox_client::content_digest(bytes)
                    }
                    _ => String::new(),
                };
                (now != *left).then(|| (change.path.clone(), REWRITTEN_BY_COMMAND))
            })
            .collect()
    }

    /// Keeps the changes the coding agent made through its edit tools; the others were
    /// written by commands (tests, builds, scripts: code the repository controls) and are left
    /// out, each reported once as a warning so a reviewer sees it.
    pub(crate) async fn own_changes(
        &mut self,
        changes: Vec<FileChange>,
    ) -> Result<Vec<FileChange>> {
        let (own, side_effects): (Vec<FileChange>, Vec<FileChange>) = changes
            .into_iter()
            .partition(|change| self.state.agent_files.contains(&change.path));
        let new: Vec<String> = side_effects
            .into_iter()
            .map(|change| change.path)
            .filter(|path| !self.state.side_effects.contains(path))
            .collect();
        if !new.is_empty() {
            self.state.side_effects.extend(new.iter().cloned());
            self.state.side_effects.sort();
            self.emit(
                "supervisor",
                Payload::Error(ErrorReport {
                    severity: "warning".into(),
                    message: format!(
                        "left out of the pull request, changed by commands run in the sandbox \
                         and not by the coding agent's edits: {}",
                        new.join(", ")
                    ),
                    recoverable: true,
                }),
            )
            .await?;
        }
        Ok(own)
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

impl crate::Engine {
    /// A human's decision on the change a paused task waits with (protected files or
    /// dependency findings): approved, the task goes on; rejected, it ends failed saying what
    /// was rejected and why.
    pub async fn decide(
        &self,
        task_id: &str,
        approve: bool,
        reason: &str,
        actor: &str,
    ) -> Result<crate::TaskRecord> {
        let task = self.store().get_task(task_id).await?;
        // Protected files and dependency findings (`dependencies::DEPENDENCY_APPROVAL`).
        let awaiting = self
            .resume_state(task_id)
            .await?
            .map(|state| state.awaiting_approval)
            .unwrap_or_default();
        if task.status != crate::TaskStatus::Paused || awaiting.is_empty() {
            return Err(Error::Conflict(format!(
                "task {task_id} is {} and does not wait for an approval",
                task.status.as_str()
            )));
        }
        let decision = if approve { "approved" } else { "rejected" };
        if !self
            .store()
            .decide_approval(task_id, decision, reason.trim())
            .await?
        {
            return Err(Error::Conflict(format!(
                "task {task_id} was decided already"
            )));
        }
        tracing::info!(%task_id, decision, "held change decided");
        self.inner
            .audit(
                actor,
                &format!("task.{decision}"),
                task_id,
                serde_json::json!({ "awaiting": awaiting, "reason": reason.trim() }),
            )
            .await?;
        self.restart(task_id).await
    }
}

/// Why a change to `path` needs a human before it is committed, if it does: files that run
/// code in CI or at install, or change how git treats the repository. `added` is the text the
/// change adds to the file.
pub(crate) fn protected_reason(path: &str, added: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let under = |dir: &str| path.starts_with(dir) || path.contains(&format!("/{dir}"));
    if under(".github/") || under(".gitlab/") || under(".circleci/") || under(".buildkite/") {
        return Some("CI or automation configuration");
    }
    if matches!(
        name,
        ".gitlab-ci.yml"
            | "Jenkinsfile"
            | ".travis.yml"
            | "azure-pipelines.yml"
            | "bitbucket-pipelines.yml"
            | ".drone.yml"
    ) {
        return Some("CI configuration");
    }
    if path == ALLOW_LIST_PATH || path.ends_with(&format!("/{ALLOW_LIST_PATH}")) {
        return Some("the secret scanner's allow-list, which waives findings");
    }
    if matches!(name, ".gitattributes" | ".gitmodules") {
        return Some("git attributes or submodules (filters and fetches run on checkout)");
    }
    if under(".githooks/") || under(".husky/") || name == ".pre-commit-config.yaml" {
        return Some("git hooks configuration");
    }
    if name == "setup.py" {
        return Some("a setup script, run at install");
    }
    if name == "package.json"
        && [
            "\"preinstall\"",
            "\"install\"",
            "\"postinstall\"",
            "\"prepare\"",
        ]
        .iter()
        .any(|script| added.contains(script))
    {
        return Some("an install script in the package manifest");
    }
    None
}

/// What a paused task waits for a human's decision on, from its `awaiting_approval`
/// entries: "the change to protected files a, b", "the change for its dependency findings:
/// x; y", or both.
pub(crate) fn awaited_decision(awaiting: &[String]) -> String {
    let (findings, files): (Vec<&str>, Vec<&str>) = awaiting
        .iter()
        .map(String::as_str)
        .partition(|entry| entry.starts_with(crate::dependencies::DEPENDENCY_APPROVAL));
    let findings: Vec<&str> = findings
        .into_iter()
        .filter_map(|entry| entry.strip_prefix(crate::dependencies::DEPENDENCY_APPROVAL))
        .collect();
    match (files.is_empty(), findings.is_empty()) {
        (false, true) => format!("the change to protected files {}", files.join(", ")),
        (true, false) => format!(
            "the change for its dependency findings: {}",
            findings.join("; ")
        ),
        (false, false) => format!(
            "the change to protected files {} and for its dependency findings: {}",
            files.join(", "),
            findings.join("; ")
        ),
        (true, true) => "the change".to_owned(),
    }
}

/// The protected files among `changes`, each with why, from the change's unified `diff`.
pub(crate) fn protected_changes(changes: &[FileChange], diff: &str) -> Vec<(String, &'static str)> {
    let added = cap_secrets::parse_diff(diff).unwrap_or_default();
    changes
        .iter()
        .filter_map(|change| {
            let text = added
                .iter()
                .find(|file| file.path == change.path)
                .map(|file| file.text.as_str())
                .unwrap_or_default();
            protected_reason(&change.path, text).map(|reason| (change.path.clone(), reason))
        })
        .collect()
}

impl Run {
    /// Holds a change touching protected files until a human approves it: the task pauses
    /// at a `human_approval_required` checkpoint naming each file (`Error::NeedsHuman`)
    /// and goes on to review once approved; a rejection ends it. Files approved once are not
    /// asked about again.
    pub(crate) async fn gate_protected(
        &mut self,
        protected: Vec<(String, &'static str)>,
    ) -> Result<()> {
        let asked: Vec<(String, &'static str)> = protected
            .into_iter()
            .filter(|(path, _)| !self.state.approved_files.contains(path))
            .collect();
        if asked.is_empty() {
            return Ok(());
        }
        let files: Vec<String> = asked
            .iter()
            .map(|(path, reason)| format!("{path} ({reason})"))
            .collect();
        self.state.awaiting_approval = asked.into_iter().map(|(path, _)| path).collect();
        self.state.next_node = Some(crate::Node::Review);
        Err(Error::NeedsHuman(format!(
            "the change touches files that need a human's approval: {}; approve to go on \
             to review, or reject to end the task",
            files.join(", ")
        )))
    }

    /// Pauses the task until a human decides on its change (see [`Run::gate_protected`]).
    pub(crate) async fn await_human(&mut self, description: String) -> Result<()> {
        self.emit(
            "supervisor",
            Payload::Checkpoint(cap_proto::agent::v1::Checkpoint {
                kind: cap_proto::agent::v1::CheckpointKind::HumanApprovalRequired.into(),
                description,
                state_json: self.state_json()?,
            }),
        )
        .await?;
        self.set_status(crate::TaskStatus::Paused).await
    }

    /// At review, after a pause for approval: the human's decision. Approved files are
    /// remembered; a rejection fails the task.
    pub(crate) async fn take_decision(&mut self) -> Result<()> {
        if self.state.awaiting_approval.is_empty() {
            return Ok(());
        }
        let (decision, reason) = self.inner.store.take_approval(&self.task.task_id).await?;
        let what = awaited_decision(&self.state.awaiting_approval);
        let said = if reason.is_empty() {
            String::new()
        } else {
            format!(": {reason}")
        };
        match decision.as_str() {
            "approved" => {
                let approved = std::mem::take(&mut self.state.awaiting_approval);
                self.state.approved_files.extend(approved);
                self.emit(
                    "supervisor",
                    Payload::Checkpoint(cap_proto::agent::v1::Checkpoint {
                        kind: cap_proto::agent::v1::CheckpointKind::Approved.into(),
                        description: format!("a human approved {what}{said}"),
                        state_json: self.state_json()?,
                    }),
                )
                .await?;
                Ok(())
            }
            "rejected" => Err(Error::TaskFailed(format!("a human rejected {what}{said}"))),
            _ => Err(Error::Conflict(format!("{what} has not been approved"))),
        }
    }
}
