//! JUnit XML reports (pytest `--junitxml`, Maven surefire, Gradle).

use crate::{Error, Result, TestCase};

/// The most characters of a failure message (with its details) kept per case.
pub(crate) const MESSAGE_CAP: usize = 2000;

/// Parses one JUnit XML report (`<testsuites>` or a single `<testsuite>` root) into its
/// test cases, in document order.
///
/// Documents with a DTD are refused (no entity expansion from untrusted reports).
pub fn parse_junit_xml(xml: &str) -> Result<Vec<TestCase>> {
    let doc = roxmltree::Document::parse(xml).map_err(Error::MalformedJunit)?;
    let root = doc.root_element();
    let root_name = root.tag_name().name();
    if root_name != "testsuites" && root_name != "testsuite" {
        return Err(Error::NotJunit(root_name.to_owned()));
    }
    Ok(root
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(case)
        .collect())
}

fn case(node: roxmltree::Node<'_, '_>) -> TestCase {
    let attr = |name: &str| node.attribute(name).unwrap_or_default().trim();
    let name = match (attr("classname"), attr("name")) {
        ("", name) => name.to_owned(),
        (class, "") => class.to_owned(),
        (class, name) => format!("{class}.{name}"),
    };
    // The first verdict element decides; surefire's `flakyFailure`/`rerunFailure` describe
    // earlier attempts of a test that finally passed and are not verdicts.
    let verdict = node.children().filter(|c| c.is_element()).find_map(|c| {
        let outcome = match c.tag_name().name() {
            "failure" => "failed",
            "error" => "error",
            "skipped" => "skipped",
            _ => return None,
        };
        Some((outcome, message(c)))
    });
    let (outcome, message) = verdict.unwrap_or(("passed", String::new()));
    TestCase {
        name,
        file: attr("file").to_owned(),
        outcome: outcome.to_owned(),
        duration_ms: seconds_to_ms(attr("time")),
        message,
    }
}

/// The `message` attribute, then the element's text (the traceback), capped.
fn message(node: roxmltree::Node<'_, '_>) -> String {
    let attribute = node.attribute("message").unwrap_or_default().trim();
    let text = node.text().unwrap_or_default().trim();
    let full = match (attribute, text) {
        ("", text) => text.to_owned(),
        (attribute, "") => attribute.to_owned(),
        (attribute, text) if text.contains(attribute) => text.to_owned(),
        (attribute, text) => format!("{attribute}\n{text}"),
    };
    cap_chars(&full, MESSAGE_CAP)
}

/// `"0.123"` seconds (surefire may write `"1,234.5"`) to milliseconds; 0 when unreadable.
pub(crate) fn seconds_to_ms(text: &str) -> u64 {
    secs_f64_to_ms(text.replace(',', "").parse().unwrap_or(0.0))
}

/// Seconds to milliseconds; 0 for negative or non-finite values.
pub(crate) fn secs_f64_to_ms(seconds: f64) -> u64 {
    if seconds.is_finite() && seconds > 0.0 {
        // `as` saturates; a report claiming centuries is still only a number.
        (seconds * 1000.0).round() as u64
    } else {
        0
    }
}

/// At most `cap` characters of `text`, marking the cut.
pub(crate) fn cap_chars(text: &str, cap: usize) -> String {
    match text.char_indices().nth(cap) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
#[path = "junit_tests.rs"]
mod tests;
