//! The dependency gate at review: the manifests the coding agent changed are read for new
//! or changed dependencies (`cap-advisories`), which are checked against the operator's OSV
//! snapshot (`EngineConfig::advisories_dir`) and the repository's licence policy
//! (`EngineConfig::licence_policy`). A known vulnerability or a licence the policy refuses
//! pauses the task for a human, as a protected file does; the findings go into the pull
//! request. Without a snapshot the advisories are not checked, and a warning says so.

use std::collections::HashMap;

use cap_advisories::{
    Checker, Dependency, Findings, LicenceSnapshot, PolicyFile, Snapshot, changed_dependencies,
    files_from_diff, licence_from_package_json, workspace_manifest,
};
use cap_proto::agent::v1::ErrorReport;
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::common::v1::FileChange;
use cap_proto::common::v1::file_change::Change;
use cap_proto::sandbox::v1::ReadFileRequest;

use crate::engine::Run;
use crate::nodes::WorkflowState;
use crate::{Error, Result};

/// How a dependency finding waiting for a human is told from a protected file among the
/// entries of `WorkflowState::awaiting_approval` (and `approved_files`): this, then the
/// finding's line.
pub(crate) const DEPENDENCY_APPROVAL: &str = "dependency ";

impl Run {
    /// Checks the dependencies the agent's own `changes` add or change (the change's
    /// unified `diff` gives their content before). Pauses for a human (`Error::NeedsHuman`)
    /// on a finding not approved before; the findings are kept for the pull request.
    pub(crate) async fn check_dependencies(
        &mut self,
        changes: &[FileChange],
        diff: &str,
    ) -> Result<()> {
        if !changes
            .iter()
            .any(|change| cap_advisories::is_manifest(&change.path))
        {
            return Ok(());
        }
        let after: HashMap<&str, String> = changes
            .iter()
            .filter_map(|change| match &change.change {
                Some(Change::Content(bytes)) => Some((
                    change.path.as_str(),
                    String::from_utf8_lossy(bytes).into_owned(),
                )),
                _ => None,
            })
            .collect();
        let read = files_from_diff(diff, &|path| after.get(path).cloned())
            .and_then(|files| changed_dependencies(&files));
        let dependencies = match read {
            Ok(dependencies) => dependencies,
            Err(error) => {
                return self
                    .warn(format!(
                        "the change's dependencies were not checked for advisories or licences: {}",
                        cap_errors::chain(&error)
                    ))
                    .await;
            }
        };
        if dependencies.is_empty() {
            return Ok(());
        }
        let checker = match self.dependency_checker() {
            Ok(checker) => checker,
            Err(message) => {
                return self
                    .warn(format!(
                        "the change's dependencies were not checked: {message}"
                    ))
                    .await;
            }
        };
        if checker.advisories.is_none() {
            let at = self.inner.config.advisories_dir.as_ref().map_or_else(
                || "none configured".to_owned(),
                |dir| dir.display().to_string(),
            );
            self.warn(format!(
                "{} new or changed dependencies were not checked for known vulnerabilities: no \
                 advisory snapshot ({at}; `cap advisories import` makes one)",
                dependencies.len()
            ))
            .await?;
        }
        let licences = self.workspace_licences(&dependencies, &checker).await;
        let findings = checker.check(&dependencies, &|dep| {
            workspace_manifest(dep).and_then(|path| licences.get(&path).cloned())
        });
        self.state.dependency_findings =
            findings.findings.iter().map(ToString::to_string).collect();
        self.gate_dependencies(&findings)
    }

    /// The snapshot and the repository's policy, read at each check so an operator's import
    /// counts from the next review on. `Err` says what could not be read.
    fn dependency_checker(&self) -> std::result::Result<Checker, String> {
        let config = &self.inner.config;
        let (advisories, licences) = match &config.advisories_dir {
            Some(dir) => (
                Snapshot::load(dir).map_err(|error| cap_errors::chain(&error))?,
                LicenceSnapshot::load(dir).map_err(|error| cap_errors::chain(&error))?,
            ),
            None => (None, LicenceSnapshot::default()),
        };
        let policy = match &config.licence_policy {
            Some(path) => PolicyFile::load(path)
                .map_err(|error| cap_errors::chain(&error))?
                .for_repository(&self.task.spec.repository_id)
                .clone(),
            None => cap_advisories::Policy::default(),
        };
        Ok(Checker {
            advisories,
            licences,
            policy,
        })
    }

    /// The licences that dependencies' own manifests in the workspace declare, by path, for
    /// those the licence snapshot does not know (only when a policy is set).
    async fn workspace_licences(
        &self,
        dependencies: &[Dependency],
        checker: &Checker,
    ) -> HashMap<String, String> {
        let mut licences = HashMap::new();
        if checker.policy.is_empty() {
            return licences;
        }
        for dep in dependencies {
            if checker.licences.get(dep.ecosystem, &dep.name).is_some() {
                continue;
            }
            let Some(path) = workspace_manifest(dep) else {
                continue;
            };
            let read = self
                .inner
                .clients
                .sandbox
                .read_file(ReadFileRequest {
                    session_id: self.state.session_id.clone(),
                    path: path.clone(),
                })
                .await;
            // Absent (not installed) is the common case: the licence stays unknown.
            if let Ok(file) = read
                && let Some(licence) =
                    licence_from_package_json(&String::from_utf8_lossy(&file.content))
            {
                licences.insert(path, licence);
            }
        }
        licences
    }

    /// Pauses for the violations a human has not approved yet (each is approved by its own
    /// line, so a later change to the same dependency asks again).
    fn gate_dependencies(&mut self, findings: &Findings) -> Result<()> {
        let asked: Vec<String> = findings
            .violations()
            .map(|finding| format!("{DEPENDENCY_APPROVAL}{finding}"))
            .filter(|key| !self.state.approved_files.contains(key))
            .collect();
        if asked.is_empty() {
            return Ok(());
        }
        let described = asked.join("; ");
        self.state.awaiting_approval = asked;
        self.state.next_node = Some(crate::Node::Review);
        Err(Error::NeedsHuman(format!(
            "the change adds dependencies with known vulnerabilities or licences the \
             repository's policy does not allow, and waits for a human: {described}; approve \
             to commit it, or reject to end the task"
        )))
    }

    async fn warn(&mut self, message: String) -> Result<()> {
        self.emit(
            "supervisor",
            Payload::Error(ErrorReport {
                severity: "warning".into(),
                message,
                recoverable: true,
            }),
        )
        .await
        .map(|_| ())
    }
}

/// The pull request's "## Dependencies" section: every finding of the last check.
pub(crate) fn body_section(state: &WorkflowState) -> String {
    if state.dependency_findings.is_empty() {
        return String::new();
    }
    let mut section = String::from("\n## Dependencies\n\n");
    for finding in &state.dependency_findings {
        section.push_str(&format!("- {finding}\n"));
    }
    section
}
