//! Jest's `--json` report, which Vitest's `json` reporter also writes.

use serde::Deserialize;

use crate::junit::{MESSAGE_CAP, cap_chars, secs_f64_to_ms};
use crate::{Error, Result, TestCase};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    test_results: Vec<FileResult>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileResult {
    /// The test file's path (absolute, inside the sandbox).
    #[serde(default)]
    name: String,
    /// `passed` or `failed` for the file as a whole.
    #[serde(default)]
    status: String,
    /// Why the file failed when none of its tests could run (a syntax error, a bad import).
    #[serde(default)]
    message: String,
    #[serde(default)]
    assertion_results: Vec<Assertion>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Assertion {
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    ancestor_titles: Vec<String>,
    #[serde(default)]
    status: String,
    /// Milliseconds; `null` for tests that did not run.
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    failure_messages: Vec<String>,
}

/// Parses a Jest (`--json`) or Vitest (`--reporter=json`) report into its test cases, in
/// report order. A test file that failed without running any test (it does not compile, an
/// import fails) becomes one `error` case named after the file.
///
/// Paths under `/workspace/` are made relative to it.
pub fn parse_jest_json(json: &str) -> Result<Vec<TestCase>> {
    let report: Report = serde_json::from_str(json).map_err(Error::MalformedJson)?;
    let mut cases = Vec::new();
    for file in report.test_results {
        let path = relative(&file.name);
        if file.assertion_results.is_empty() {
            if file.status == "failed" {
                cases.push(TestCase {
                    name: path.clone(),
                    file: path,
                    outcome: "error".to_owned(),
                    duration_ms: 0,
                    message: cap_chars(strip_ansi(&file.message).trim(), MESSAGE_CAP),
                });
            }
            continue;
        }
        for assertion in file.assertion_results {
            let name = if assertion.full_name.trim().is_empty() {
                let mut parts = assertion.ancestor_titles.clone();
                parts.push(assertion.title.clone());
                parts.join(" ")
            } else {
                assertion.full_name.trim().to_owned()
            };
            let outcome = match assertion.status.as_str() {
                "passed" => "passed",
                "failed" => "failed",
                // pending, skipped, todo, disabled, focused-away.
                _ => "skipped",
            };
            let message = assertion
                .failure_messages
                .iter()
                .map(|m| strip_ansi(m))
                .collect::<Vec<_>>()
                .join("\n");
            cases.push(TestCase {
                name,
                file: path.clone(),
                outcome: outcome.to_owned(),
                duration_ms: secs_f64_to_ms(assertion.duration.unwrap_or(0.0) / 1000.0),
                message: cap_chars(message.trim(), MESSAGE_CAP),
            });
        }
    }
    Ok(cases)
}

pub(crate) fn relative(path: &str) -> String {
    path.strip_prefix("/workspace/").unwrap_or(path).to_owned()
}

/// Drops ANSI colour sequences (`ESC [ ... letter`): the runners colour failure messages even
/// in their JSON.
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for next in chars.by_ref() {
                    if next.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[path = "jestjson_tests.rs"]
mod tests;
