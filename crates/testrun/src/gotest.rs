//! `go test -json` event streams (the `test2json` format).

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use crate::TestCase;
use crate::junit::MESSAGE_CAP;

/// One `test2json` event; unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "Action")]
    action: String,
    #[serde(rename = "Package", default)]
    package: String,
    #[serde(rename = "ImportPath", default)]
    import_path: String,
    #[serde(rename = "Test", default)]
    test: Option<String>,
    #[serde(rename = "Elapsed", default)]
    elapsed: Option<f64>,
    #[serde(rename = "Output", default)]
    output: Option<String>,
}

/// Parses `go test -json` output into test cases, in the order they finished.
///
/// Lines that are not events are skipped. A package that failed without a failing test
/// (it did not build, or `TestMain` died) becomes one `error` case named after the package.
/// Each case's `file` is its package import path.
pub fn parse_go_test_json(stdout: &str) -> Vec<TestCase> {
    let mut cases = Vec::new();
    let mut outputs: HashMap<(String, String), String> = HashMap::new();
    let mut failed_packages: HashSet<String> = HashSet::new();
    for event in stdout.lines().filter_map(parse_line) {
        // Build events name `pkg [pkg.test]`; the package's own events name `pkg`.
        let package = if event.package.is_empty() {
            event
                .import_path
                .split(" [")
                .next()
                .unwrap_or_default()
                .to_owned()
        } else {
            event.package.clone()
        };
        let key = (package.clone(), event.test.clone().unwrap_or_default());
        if let Some(output) = &event.output {
            push_capped(outputs.entry(key.clone()).or_default(), output);
        }
        let outcome = match (event.action.as_str(), &event.test) {
            ("pass", Some(_)) => "passed",
            ("fail", Some(_)) => "failed",
            ("skip", Some(_)) => "skipped",
            // The package failed, or did not build: an error unless a test already failed.
            ("fail" | "build-fail", None) => {
                if !failed_packages.insert(package.clone()) {
                    continue;
                }
                "error"
            }
            _ => continue,
        };
        if outcome == "failed" {
            failed_packages.insert(package.clone());
        }
        let message = match outcome {
            "passed" => String::new(),
            _ => outputs
                .remove(&key)
                .map(|o| tail_chars(o.trim(), MESSAGE_CAP))
                .unwrap_or_default(),
        };
        outputs.remove(&key);
        let duration_ms = event.elapsed.map(crate::junit::secs_f64_to_ms).unwrap_or(0);
        cases.push(TestCase {
            name: event.test.unwrap_or_else(|| package.clone()),
            file: package,
            outcome: outcome.to_owned(),
            duration_ms,
            message,
        });
    }
    cases
}

/// The console text a `go test -json` stream stands for: each event's `Output`, other lines
/// as they are.
pub(crate) fn render_console(text: &str) -> String {
    let mut console = String::with_capacity(text.len() / 2);
    for line in text.split_inclusive('\n') {
        match parse_line(line) {
            Some(event) => console.push_str(event.output.as_deref().unwrap_or_default()),
            None => console.push_str(line),
        }
    }
    console
}

fn parse_line(line: &str) -> Option<Event> {
    let line = line.trim();
    if !line.starts_with('{') {
        return None;
    }
    serde_json::from_str(line).ok()
}

/// Appends, keeping roughly the last few `MESSAGE_CAP`s of text.
fn push_capped(buffer: &mut String, text: &str) {
    buffer.push_str(text);
    if buffer.len() > 8 * MESSAGE_CAP {
        let mut cut = buffer.len() - 4 * MESSAGE_CAP;
        while !buffer.is_char_boundary(cut) {
            cut += 1;
        }
        buffer.drain(..cut);
    }
}

/// The last `cap` characters of `text`, marking the cut.
pub(crate) fn tail_chars(text: &str, cap: usize) -> String {
    let count = text.chars().count();
    if count <= cap {
        return text.to_owned();
    }
    let skip = count - cap;
    let start = text
        .char_indices()
        .nth(skip)
        .map(|(i, _)| i)
        .unwrap_or(text.len());
    format!("...{}", &text[start..])
}

#[cfg(test)]
#[path = "gotest_tests.rs"]
mod tests;
