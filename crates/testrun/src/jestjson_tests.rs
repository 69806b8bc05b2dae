use pretty_assertions::assert_eq;

use super::*;

const REPORT: &str = r#"{
  "numTotalTests": 4,
  "testResults": [
    {
      "name": "/workspace/src/calc.test.ts",
      "status": "failed",
      "message": "",
      "assertionResults": [
        {"ancestorTitles": ["calc"], "fullName": "calc adds", "title": "adds",
         "status": "passed", "duration": 1.5, "failureMessages": []},
        {"ancestorTitles": ["calc"], "fullName": "calc subtracts", "title": "subtracts",
         "status": "failed", "duration": 2,
         "failureMessages": ["\u001b[31mAssertionError: expected 4 to be 2\u001b[39m"]},
        {"ancestorTitles": [], "fullName": "", "title": "later",
         "status": "todo", "duration": null, "failureMessages": []}
      ]
    },
    {
      "name": "/workspace/src/broken.test.ts",
      "status": "failed",
      "message": "Transform failed: Unexpected \"}\"",
      "assertionResults": []
    },
    {"name": "/elsewhere/empty.test.ts", "status": "passed", "assertionResults": []}
  ]
}"#;

#[test]
fn cases_files_outcomes_and_messages() {
    let cases = parse_jest_json(REPORT).unwrap();
    let expected = vec![
        TestCase {
            name: "calc adds".into(),
            file: "src/calc.test.ts".into(),
            outcome: "passed".into(),
            duration_ms: 2,
            message: String::new(),
        },
        TestCase {
            name: "calc subtracts".into(),
            file: "src/calc.test.ts".into(),
            outcome: "failed".into(),
            duration_ms: 2,
            message: "AssertionError: expected 4 to be 2".into(),
        },
        TestCase {
            name: "later".into(),
            file: "src/calc.test.ts".into(),
            outcome: "skipped".into(),
            duration_ms: 0,
            message: String::new(),
        },
        TestCase {
            name: "src/broken.test.ts".into(),
            file: "src/broken.test.ts".into(),
            outcome: "error".into(),
            duration_ms: 0,
            message: "Transform failed: Unexpected \"}\"".into(),
        },
    ];
    assert_eq!(cases, expected);
}

#[test]
fn malformed_reports_are_errors() {
    for bad in ["", "{", "[]", "{\"testResults\": 3}", "<xml/>"] {
        let error = parse_jest_json(bad).unwrap_err();
        assert!(
            matches!(error, Error::MalformedJson(_)),
            "{bad:?}: {error:?}"
        );
    }
}

#[test]
fn an_empty_report_has_no_cases() {
    assert_eq!(parse_jest_json("{\"testResults\": []}").unwrap(), vec![]);
}

#[test]
fn ansi_sequences_are_stripped() {
    assert_eq!(
        strip_ansi("\u{1b}[1m\u{1b}[31mred\u{1b}[0m plain \u{1b}x"),
        "red plain x"
    );
}
