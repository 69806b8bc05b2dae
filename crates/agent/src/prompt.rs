//! What the model is told.

use cap_proto::agent::v1::{TaskContext, TaskRequest};

/// The system prompt of the coding agent.
pub const SYSTEM_PROMPT: &str = "\
You are the coding agent of an autonomous software-engineering platform. You change a \
repository to reach the objective you are given, working only through the tools.

How to work:
- Explore before you edit: list_directory, search_files and read_file show you the code. Read a \
file before you change it.
- Make focused changes with edit_file (old_string must match exactly once, whitespace \
included), create_file for new files, delete_file, or apply_diff for a unified diff. Paths are \
relative to the repository root; the .git directory is off limits.
- Edits are collected and written to the repository together before run_tests or run_command \
runs and when you finish.
- Check your work with run_tests (optionally a test_pattern) and run_command. Commands run in \
a sandbox without network access.
- Follow the repository's existing style and conventions. Do not add secrets, credentials or \
unrelated changes.
- When a tool answers with an error, read it and correct the call.
- When the objective is reached, answer without calling a tool: a short summary of what you \
changed and how you verified it. That answer ends the task.";

/// The first user message: the objective, where it applies and the context from earlier
/// steps (sorted by key).
pub fn task_prompt(request: &TaskRequest) -> String {
    let mut text = format!("# Objective\n{}\n", request.objective.trim());
    if let Some(repo) = &request.repo {
        let mut facts = Vec::new();
        if !repo.repository_id.is_empty() {
            facts.push(format!("repository {}", repo.repository_id));
        }
        if !repo.commit_sha.is_empty() {
            facts.push(format!("at commit {}", repo.commit_sha));
        }
        if !repo.default_branch.is_empty() {
            facts.push(format!("default branch {}", repo.default_branch));
        }
        if !repo.test_command.is_empty() {
            facts.push(format!("tests run with `{}`", repo.test_command));
        }
        if !facts.is_empty() {
            text.push_str(&format!("\n# Repository\n{}\n", facts.join(", ")));
        }
    }
    let entries = context_entries(&request.context.clone().unwrap_or_default());
    if !entries.is_empty() {
        text.push_str("\n# Context\n");
        for (key, value) in entries {
            text.push_str(&format!("## {key}\n{}\n", value.trim()));
        }
    }
    text
}

/// The coding agent's part of the context, by field name in alphabetical order, the fields
/// not given left out.
fn context_entries(context: &TaskContext) -> Vec<(&'static str, String)> {
    let entries = [
        ("attempt", non_zero(context.attempt)),
        ("avoid_files", context.avoid_files.join(", ")),
        (
            "human_constraints",
            context
                .human_constraints
                .iter()
                .map(|constraint| format!("- {}", constraint.trim()))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        ("max_files_changed", non_zero(context.max_files_changed)),
        ("plan", context.plan.clone()),
        (
            "previous_test_failure",
            context.previous_test_failure.clone(),
        ),
    ];
    entries
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .collect()
}

fn non_zero(value: u32) -> String {
    if value == 0 {
        String::new()
    } else {
        value.to_string()
    }
}
