//! Mocha's `json` reporter.

use serde::Deserialize;

use crate::jestjson::{relative, strip_ansi};
use crate::junit::{MESSAGE_CAP, cap_chars};
use crate::{Error, Result, TestCase};

#[derive(Debug, Deserialize)]
struct Report {
    tests: Vec<Test>,
    #[serde(default)]
    pending: Vec<Test>,
    #[serde(default)]
    failures: Vec<Test>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Test {
    #[serde(default)]
    full_title: String,
    #[serde(default)]
    file: String,
    /// Milliseconds; absent for tests that did not run.
    #[serde(default)]
    duration: Option<f64>,
    /// `{}` unless the test (or its hook) failed.
    #[serde(default)]
    err: Option<TestError>,
}

#[derive(Debug, Default, Deserialize)]
struct TestError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl Test {
    fn failure(&self) -> Option<String> {
        let err = self.err.as_ref()?;
        let message = err.message.as_deref()?;
        let text = match err.name.as_deref() {
            Some(name) if !name.is_empty() && !message.starts_with(name) => {
                format!("{name}: {message}")
            }
            _ => message.to_owned(),
        };
        Some(cap_chars(strip_ansi(&text).trim(), MESSAGE_CAP))
    }

    fn key(&self) -> (&str, &str) {
        (&self.full_title, &self.file)
    }
}

/// Parses a Mocha `json` reporter report into its test cases, in report order: a test with
/// an error failed, one listed as pending was skipped, the others passed. A failure that is
/// not one of the tests (a `before all` hook) becomes an `error` case.
///
/// Paths under `/workspace/` are made relative to it.
pub fn parse_mocha_json(json: &str) -> Result<Vec<TestCase>> {
    let report: Report = serde_json::from_str(json).map_err(Error::MalformedJson)?;
    let mut cases: Vec<TestCase> = report
        .tests
        .iter()
        .map(|test| {
            let failure = test.failure();
            let pending = report.pending.iter().any(|p| p.key() == test.key());
            let outcome = match (&failure, pending) {
                (Some(_), _) => "failed",
                (None, true) => "skipped",
                (None, false) => "passed",
            };
            TestCase {
                name: test.full_title.clone(),
                file: relative(&test.file),
                outcome: outcome.to_owned(),
                duration_ms: crate::junit::secs_f64_to_ms(test.duration.unwrap_or(0.0) / 1000.0),
                message: failure.unwrap_or_default(),
            }
        })
        .collect();
    for failure in &report.failures {
        if report.tests.iter().any(|t| t.key() == failure.key()) {
            continue;
        }
        cases.push(TestCase {
            name: failure.full_title.clone(),
            file: relative(&failure.file),
            outcome: "error".to_owned(),
            duration_ms: 0,
            message: failure.failure().unwrap_or_default(),
        });
    }
    Ok(cases)
}

#[cfg(test)]
#[path = "mochajson_tests.rs"]
mod tests;
