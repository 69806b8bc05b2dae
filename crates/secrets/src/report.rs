//! A scan's report and its SARIF 2.1.0, JSON and text forms.

use serde::Serialize;
use serde_json::{Value, json};

use crate::finding::Finding;
use crate::rules::rules;

/// The SARIF version written.
const SARIF_VERSION: &str = "2.1.0";
/// The SARIF 2.1.0 schema (OASIS errata 01).
const SARIF_SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";
/// The tool's name in SARIF.
const TOOL_NAME: &str = "cap-secrets";

/// A file the scan did not read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedFile {
    /// Relative path.
    pub path: String,
    /// Why: `binary`, `larger than N bytes`.
    pub reason: String,
}

/// What a scan found and what it covered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The findings, by file, line and column.
    pub findings: Vec<Finding>,
    /// Text files (or diff files) scanned.
    pub files_scanned: usize,
    /// Bytes scanned (for a diff: of the added lines).
    pub bytes_scanned: u64,
    /// Files left out.
    pub skipped: Vec<SkippedFile>,
}

impl Report {
    /// Whether the scan found nothing.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// The report as JSON: `{"tool", "version", "findings": [...], "files_scanned",
    /// "bytes_scanned", "skipped"}`; findings hold only redacted secrets.
    pub fn to_json(&self) -> Value {
        json!({
            "tool": TOOL_NAME,
            "version": env!("CARGO_PKG_VERSION"),
            "findings": self.findings,
            "files_scanned": self.files_scanned,
            "bytes_scanned": self.bytes_scanned,
            "skipped": self.skipped,
        })
    }

    /// The report as a SARIF 2.1.0 log with one run: every built-in rule in
    /// `tool.driver.rules`, one `error` result per finding with its location (columns in
    /// Unicode code points) and the secret's fingerprint in `partialFingerprints`.
    pub fn to_sarif(&self) -> Value {
        let driver_rules: Vec<Value> = rules()
            .iter()
            .map(|rule| {
                json!({
                    "id": rule.id,
                    "name": sarif_rule_name(rule.id),
                    "shortDescription": {"text": rule.description},
                    "fullDescription": {"text": format!("{}: a credential committed to the repository.", rule.description)},
                    "defaultConfiguration": {"level": "error"},
                    "properties": {"tags": ["security", "secret"]},
                })
            })
            .collect();
        let results: Vec<Value> = self
            .findings
            .iter()
            .map(|finding| {
                let rule_index = rules().iter().position(|rule| rule.id == finding.rule_id);
                let mut result = json!({
                    "ruleId": finding.rule_id,
                    "level": "error",
                    "message": {"text": format!("{} found: {}", finding.description, finding.redacted)},
                    "locations": [{
                        "physicalLocation": {
                            "artifactLocation": {"uri": uri_reference(&finding.file)},
                            "region": {"startLine": finding.line, "startColumn": finding.column},
                        }
                    }],
                    "partialFingerprints": {"secretFingerprint/v1": finding.fingerprint},
                });
                if let (Some(index), Some(object)) = (rule_index, result.as_object_mut()) {
                    object.insert("ruleIndex".to_owned(), json!(index));
                }
                result
            })
            .collect();
        json!({
            "version": SARIF_VERSION,
            "$schema": SARIF_SCHEMA,
            "runs": [{
                "tool": {"driver": {
                    "name": TOOL_NAME,
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": driver_rules,
                }},
                "columnKind": "unicodeCodePoints",
                "results": results,
            }],
        })
    }

    /// One line a finding (`file:line:column: description (rule): redacted`) and a summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for finding in &self.findings {
            out.push_str(&finding.to_string());
            out.push('\n');
        }
        out.push_str(&format!(
            "{} finding(s) in {} file(s), {} bytes scanned, {} file(s) skipped\n",
            self.findings.len(),
            self.files_scanned,
            self.bytes_scanned,
            self.skipped.len()
        ));
        out
    }
}

/// `github-pat` -> `GithubPat` (SARIF's `name` is an identifier-like PascalCase name).
fn sarif_rule_name(id: &str) -> String {
    id.split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// A relative path as a URI reference: characters outside RFC 3986's unreserved set and `/`
/// are percent-encoded.
fn uri_reference(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
