//! Suspicious-code checks (`cap-codecheck`) on the coding agent's own changes, after the
//! tests pass and before the commit: each finding is reported once as a `warning` error
//! event, kept in the workflow state (so a resumed run neither loses nor repeats it) and
//! listed in the pull request's body. Findings never stop the task: a reviewer decides.
//!
//! The sandbox gives each changed file's new content and one unified diff of the workspace;
//! a file's content before the change is the diff's hunks for it applied in reverse to the
//! new content.

use std::collections::HashMap;

use cap_codecheck::{ChangedFile, Finding};
use cap_proto::agent::v1::ErrorReport;
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::common::v1::FileChange;
use cap_proto::common::v1::file_change::Change;
use diffy::patch_set::{FileOperation, ParseOptions, PatchKind, PatchSet};

use crate::Result;
use crate::engine::Run;
use crate::nodes::WorkflowState;

/// What the diff says each file held before the change: `Some(None)` for a file it creates,
/// `Some(Some(text))` for one it modifies; a file missing from the map could not be read
/// back (a binary file, a hunk that does not apply).
pub(crate) fn before_versions(
    diff: &str,
    changes: &[FileChange],
) -> HashMap<String, Option<String>> {
    let options = if diff.contains("diff --git ") {
        ParseOptions::gitdiff()
    } else {
        ParseOptions::unidiff()
    };
    let after: HashMap<&str, &[u8]> = changes
        .iter()
        .filter_map(|change| match &change.change {
            Some(Change::Content(content)) => Some((change.path.as_str(), content.as_slice())),
            _ => None,
        })
        .collect();
    let mut before = HashMap::new();
    // A malformed part ends the parse: the files before it are kept, the rest are unknown.
    for patch in PatchSet::parse(diff, options).map_while(std::result::Result::ok) {
        let PatchKind::Text(text_patch) = patch.patch() else {
            continue;
        };
        let path = match patch.operation() {
            FileOperation::Create(path) => {
                before.insert(strip(path, "b/"), None);
                continue;
            }
            FileOperation::Modify { modified, .. } => strip(modified, "b/"),
            FileOperation::Delete(_)
            | FileOperation::Rename { .. }
            | FileOperation::Copy { .. } => continue,
        };
        let Some(now) = after
            .get(path.as_str())
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
        else {
            continue;
        };
        if let Ok(old) = diffy::apply(now, &text_patch.reverse()) {
            before.insert(path, Some(old));
        }
    }
    before
}

fn strip(path: &str, prefix: &str) -> String {
    path.strip_prefix(prefix).unwrap_or(path).to_owned()
}

/// Runs the checks on `changes` (the agent's own files) against their versions before the
/// change, read back from `diff`.
pub(crate) fn check_changes(changes: &[FileChange], diff: &str) -> cap_codecheck::Report {
    let before = before_versions(diff, changes);
    let mut unknown = Vec::new();
    let mut files = Vec::new();
    for change in changes {
        let Some(Change::Content(content)) = &change.change else {
            continue;
        };
        if cap_codecheck::Lang::from_path(&change.path).is_none() {
            continue;
        }
        let Ok(after) = std::str::from_utf8(content) else {
            unknown.push(cap_codecheck::Skipped {
                path: change.path.clone(),
                reason: "its new content is not UTF-8 text".into(),
            });
            continue;
        };
        match before.get(&change.path) {
            Some(old) => files.push(ChangedFile {
                path: &change.path,
                before: old.as_deref(),
                after: Some(after),
            }),
            None => unknown.push(cap_codecheck::Skipped {
                path: change.path.clone(),
                reason: "its version before the change could not be read back from the diff".into(),
            }),
        }
    }
    let mut report = cap_codecheck::check(&files);
    report.skipped.extend(unknown);
    report
}

impl Run {
    /// Checks the agent's own changes for suspicious code and reports what is new: one
    /// `warning` error event per finding, one for the files that could not be checked.
    pub(crate) async fn check_suspicious_code(
        &mut self,
        changes: &[FileChange],
        diff: &str,
    ) -> Result<()> {
        // Parsing a large change takes a while: off the runtime's worker threads.
        let (owned, whole_diff) = (changes.to_vec(), diff.to_owned());
        let report = tokio::task::spawn_blocking(move || check_changes(&owned, &whole_diff))
            .await
            .unwrap_or_else(|error| cap_codecheck::Report {
                findings: Vec::new(),
                skipped: vec![cap_codecheck::Skipped {
                    path: "the whole change".into(),
                    reason: format!("the checks stopped: {error}"),
                }],
            });
        for finding in &report.findings {
            if self.state.suspicious_code.contains(finding) {
                continue;
            }
            // Kept in the state with its event, in one checkpoint, so a resumed run reports
            // exactly the findings it had not.
            self.state.suspicious_code.push(finding.clone());
            self.emit(
                "supervisor",
                Payload::Error(ErrorReport {
                    severity: "warning".into(),
                    message: format!("suspicious code, for the reviewer to decide: {finding}"),
                    recoverable: true,
                }),
            )
            .await?;
        }
        // The change is what it is now: findings of code since changed are dropped.
        self.state.suspicious_code = report.findings;
        let skipped: Vec<String> = report
            .skipped
            .iter()
            .map(|skipped| format!("{} ({})", skipped.path, skipped.reason))
            .collect();
        if !skipped.is_empty() && skipped != self.state.suspicious_code_skipped {
            self.state.suspicious_code_skipped = skipped;
            self.emit(
                "supervisor",
                Payload::Error(ErrorReport {
                    severity: "warning".into(),
                    message: format!(
                        "not checked for suspicious code: {}",
                        self.state.suspicious_code_skipped.join(", ")
                    ),
                    recoverable: true,
                }),
            )
            .await?;
        }
        Ok(())
    }
}

/// The pull request's "Suspicious code" section (empty when nothing was found or skipped).
pub(crate) fn body_section(state: &WorkflowState) -> String {
    if state.suspicious_code.is_empty() && state.suspicious_code_skipped.is_empty() {
        return String::new();
    }
    let mut section = String::from(
        "\n## Suspicious code\n\nFound by the suspicious-code checks in the lines this change \
         adds; none stopped it, a reviewer decides:\n\n",
    );
    for finding in &state.suspicious_code {
        section.push_str(&pr_line(finding));
    }
    if !state.suspicious_code_skipped.is_empty() {
        section.push_str(&format!(
            "\nNot checked: {}\n",
            state.suspicious_code_skipped.join(", ")
        ));
    }
    section
}

fn pr_line(finding: &Finding) -> String {
    // The line's text is shown as code; a backtick in it would end the span early.
    let text = finding.text.replace('`', "'");
    format!(
        "- `{}:{}` **{}** ({}): {}: `{text}`\n",
        finding.path, finding.line, finding.rule, finding.severity, finding.message
    )
}

#[cfg(test)]
#[path = "codecheck_tests.rs"]
mod tests;
