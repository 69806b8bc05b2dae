#![allow(clippy::unwrap_used, clippy::expect_used)]

use pretty_assertions::assert_eq;

use super::*;

fn content(path: &str, text: &str) -> FileChange {
    FileChange {
        path: path.into(),
        change: Some(Change::Content(text.as_bytes().to_vec())),
    }
}

/// The sandbox's diff (git headers) of a modified and a created file.
const SANDBOX_DIFF: &str = "diff --git a/app/run.py b/app/run.py\n--- a/app/run.py\n+++ b/app/run.py\n@@ -1,2 +1,3 @@\n import os\n-x = 1\n+x = eval(input())\n+y = 2\ndiff --git a/app/new.py b/app/new.py\nnew file mode 100644\n--- /dev/null\n+++ b/app/new.py\n@@ -0,0 +1 @@\n+import subprocess\n";

#[test]
fn versions_before_the_change_are_read_back_from_the_diff() {
    let changes = [
        content("app/run.py", "import os\nx = eval(input())\ny = 2\n"),
        content("app/new.py", "import subprocess\n"),
    ];
    let before = before_versions(SANDBOX_DIFF, &changes);
    assert_eq!(
        before.get("app/run.py"),
        Some(&Some("import os\nx = 1\n".to_owned()))
    );
    assert_eq!(before.get("app/new.py"), Some(&None));
}

#[test]
fn findings_are_on_added_lines_and_unreadable_files_are_named() {
    let changes = [
        content("app/run.py", "import os\nx = eval(input())\ny = 2\n"),
        content("app/new.py", "import subprocess\n"),
        // Not in the diff: its version before cannot be known.
        content("app/other.py", "exec(code)\n"),
        content("README.md", "eval(x)\n"),
    ];
    let report = check_changes(&changes, SANDBOX_DIFF);
    let found: Vec<(&str, usize, &str)> = report
        .findings
        .iter()
        .map(|f| (f.path.as_str(), f.line, f.rule.as_str()))
        .collect();
    assert_eq!(found, [("app/run.py", 2, "python.eval")]);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].path, "app/other.py");
}

#[test]
fn the_pull_request_section_lists_file_line_rule_and_message() {
    let mut state = WorkflowState::new();
    assert_eq!(body_section(&state), "");
    state.suspicious_code = check_changes(
        &[content("a.py", "subprocess.call(cmd, shell=True)\n")],
        "--- a/a.py\n+++ b/a.py\n@@ -0,0 +1 @@\n+subprocess.call(cmd, shell=True)\n",
    )
    .findings;
    let section = body_section(&state);
    assert!(section.starts_with("\n## Suspicious code\n"), "{section}");
    assert!(
        section
            .contains("- `a.py:1` **python.shell** (high): runs a shell command built at run time"),
        "{section}"
    );
    assert!(
        section.contains("`subprocess.call(cmd, shell=True)`"),
        "{section}"
    );
}
