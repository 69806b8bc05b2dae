//! Timeouts (PRD 14, error category "timeout"): a run that runs out of its time budget
//! (`EngineConfig::task_time_budget`) degrades to a partial pull request marked draft, with
//! hand-off notes for the human who takes over: what was done, what was not (the plan's steps
//! not reached, the last failing tests) and why.
//!
//! The budget is watched where the time goes: the running agent is stopped as by an interrupt
//! when it runs out (its stream read to its end, so nothing it did is lost), and the run checks
//! it before each node and while a node waits to retry. The task then ends `failed`, its error
//! message naming the timeout and the draft pull request (or that there was no change to
//! open one for).
//!
//! A draft passes the same gates as any pull request: a change holding a secret fails the
//! task quarantined as ever, and a change touching protected files, or breaking the task's
//! file constraints, is not opened at all (nobody is left to approve it). The suspicious-code
//! and dependency checks, which run only once the tests pass, are named as not done.

use std::time::Duration;

use crate::engine::Run;
use crate::nodes::Node;
use crate::{Error, Result};

/// Waits until `deadline`; forever without one.
pub(crate) async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The longest test report quoted in the hand-off notes, in characters.
const QUOTED_REPORT_CHARS: usize = 4000;

/// `300 ms`, `90 s`, `2 min`, `1 h 30 min`: a budget as people say it.
pub(crate) fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs == 0 {
        return format!("{} ms", duration.as_millis());
    }
    if secs < 120 {
        return format!("{secs} s");
    }
    let (hours, minutes) = (secs / 3600, (secs % 3600) / 60);
    match (hours, minutes) {
        (0, minutes) => format!("{minutes} min"),
        (hours, 0) => format!("{hours} h"),
        (hours, minutes) => format!("{hours} h {minutes} min"),
    }
}

/// The numbered steps of `plan` (`1. Read ...`) from the one `node` had not finished on.
fn remaining_steps(plan: &str, node: Node) -> Vec<String> {
    // The plan's steps (see `render_plan`): 1 read, 2 change, 3 test and fix, 4 pull request.
    let first = match node {
        Node::Plan => 1,
        Node::Execute => 2,
        Node::Review => 3,
    };
    plan.lines()
        .filter_map(|line| {
            let (number, step) = line.split_once(". ")?;
            let number: u32 = number.trim().parse().ok()?;
            (number >= first).then(|| format!("{number}. {}", step.trim()))
        })
        .collect()
}

impl Run {
    /// Whether this run's time budget has run out.
    pub(crate) fn past_deadline(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| tokio::time::Instant::now() >= deadline)
    }

    /// Ends the task that ran out of time during `node`: its partial change, if any passes
    /// the gates, goes to a draft pull request with hand-off notes; the task fails naming the
    /// timeout and the draft.
    pub(crate) async fn time_out(&mut self, node: Node) -> Result<()> {
        let budget = self
            .inner
            .config
            .task_time_budget
            .map_or_else(|| "its".to_owned(), human_duration);
        let why = format!(
            "timed out: the task ran out of its time budget ({budget}) during {}",
            node.name()
        );
        tracing::warn!(task_id = %self.task.task_id, node = node.name(), "task ran out of time");
        let outcome = match self.draft_pull_request(node, &why).await {
            Ok(outcome) => outcome,
            // The gate's own failure (quarantine) says what it found, after the timeout.
            Err(Error::SecretsFound(found)) => {
                return self
                    .fail(&Error::SecretsFound(format!("{why}; {found}")))
                    .await;
            }
            Err(error @ (Error::TaskFailed(_) | Error::Upstream { .. })) => format!(
                "no pull request was opened for its partial change: {}",
                cap_errors::chain(&error)
            ),
            Err(error) => return Err(error),
        };
        self.fail(&Error::TaskFailed(format!("{why}; {outcome}")))
            .await
    }

    /// Opens the draft for what the coding agent changed by now; what the task's error
    /// message says of it.
    async fn draft_pull_request(&mut self, node: Node, why: &str) -> Result<String> {
        if !self.state.pull_request_id.is_empty() {
            return Ok(format!(
                "its pull request {} was opened already",
                self.state.pull_request_id
            ));
        }
        if self.state.session_id.is_empty() {
            return Ok("it had made no change, so no pull request was opened".to_owned());
        }
        if node == Node::Execute {
            // The coding agent was stopped mid-run: what it wrote before is its own.
            self.adopt_unrecorded_edits().await?;
        }
        let workspace = self.workspace_changes().await?;
        let changes = self.own_changes(workspace.changes).await?;
        if changes.is_empty() {
            return Ok("it had made no change, so no pull request was opened".to_owned());
        }
        self.state.changed_files = changes.iter().map(|change| change.path.clone()).collect();
        crate::nodes::check_constraints(&self.task.spec, &self.state.changed_files)?;
        let protected: Vec<String> = crate::gates::protected_changes(&changes, &workspace.diff)
            .into_iter()
            .filter(|(path, _)| !self.state.approved_files.contains(path))
            .map(|(path, reason)| format!("{path} ({reason})"))
            .collect();
        if !protected.is_empty() {
            return Err(Error::TaskFailed(format!(
                "it touches protected files that no human approved: {}",
                protected.join(", ")
            )));
        }
        let body = self.handoff_body(node, why);
        self.open_pull_request(body, /*draft*/ true, changes)
            .await?;
        Ok(format!(
            "its partial change is in draft pull request {} on {}, with hand-off notes",
            self.state.pull_request_id, self.state.branch
        ))
    }

    /// The draft's body: the request, then what was done, what was not and why.
    fn handoff_body(&self, node: Node, why: &str) -> String {
        let mut body = format!("{}\n\n", self.task.spec.prompt.trim());
        body.push_str(
            "> **Draft: a partial change.** The coding assistant stopped before it was done; \
             a human takes it from here.\n\n## Hand-off notes\n\n",
        );
        body.push_str(&format!("### Why\n\n{}.\n\n", capitalised(why)));
        body.push_str("### Done\n\n");
        if !self.state.agent_summary.is_empty() {
            body.push_str(&format!("{}\n\n", self.state.agent_summary));
        }
        body.push_str(&format!(
            "The coding agent changed these files ({} attempt{}):\n\n",
            self.state.execute_attempts,
            if self.state.execute_attempts == 1 {
                ""
            } else {
                "s"
            }
        ));
        for file in &self.state.changed_files {
            body.push_str(&format!("- `{file}`\n"));
        }
        body.push_str("\n### Not done\n\n");
        let steps = remaining_steps(&self.state.plan, node);
        if !steps.is_empty() {
            body.push_str("The plan's steps not finished:\n\n");
            for step in steps {
                body.push_str(&format!("- {step}\n"));
            }
            body.push('\n');
        }
        let report = self.state.last_test_report.trim();
        if report.is_empty() {
            body.push_str("The repository's tests did not run on this change.\n");
        } else if self.state.tests_passed && node == Node::Review {
            body.push_str("The tests passed on an earlier version of the change:\n\n");
            body.push_str(&quoted(report));
        } else if self.state.tests_passed {
            body.push_str("The tests passed on an earlier version; this one was not tested.\n");
        } else {
            body.push_str("The last test run failed:\n\n");
            body.push_str(&quoted(report));
        }
        body.push_str(
            "\nNot checked, since they run once the tests pass: suspicious code and new \
             dependencies. The secret scan and the protected-file check did run.\n",
        );
        if !self.state.side_effects.is_empty() {
            body.push_str(
                "\n## Left out\n\nChanged by commands run in the sandbox, not by the coding \
                 agent's edits, so not part of this change:\n\n",
            );
            for file in &self.state.side_effects {
                body.push_str(&format!("- `{file}`\n"));
            }
        }
        body.push_str(&format!(
            "\nOpened as a draft by the coding assistant for task `{}`.\n",
            self.task.task_id
        ));
        body
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `report` as a fenced block, cut to [`QUOTED_REPORT_CHARS`].
fn quoted(report: &str) -> String {
    let mut text: String = report.chars().take(QUOTED_REPORT_CHARS).collect();
    if report.chars().count() > QUOTED_REPORT_CHARS {
        text.push_str("\n…");
    }
    format!("```\n{}\n```\n", text.replace("```", "'''"))
}

#[cfg(test)]
#[path = "handoff_tests.rs"]
mod tests;
