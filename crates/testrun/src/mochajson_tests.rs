use pretty_assertions::assert_eq;

use super::*;

/// Mocha 10's `json` reporter on a suite with a pass, a failure, a skipped test and a failing
/// `before all` hook in a second file.
const REPORT: &str = r#"{
  "stats": {"suites": 2, "tests": 3, "passes": 1, "pending": 1, "failures": 2},
  "tests": [
    {"title": "adds", "fullTitle": "calc adds", "file": "/workspace/test/calc.test.js",
     "duration": 1, "currentRetry": 0, "speed": "fast", "err": {}},
    {"title": "subtracts", "fullTitle": "calc subtracts", "file": "/workspace/test/calc.test.js",
     "duration": 3, "currentRetry": 0,
     "err": {"stack": "AssertionError [ERR_ASSERTION]: sub is wrong\n    at Context", 
             "message": "sub is wrong\n\n4 !== 2\n", "name": "AssertionError",
             "code": "ERR_ASSERTION", "actual": "4", "expected": "2"}},
    {"title": "divides", "fullTitle": "calc divides", "file": "/workspace/test/calc.test.js",
     "currentRetry": 0, "err": {}}
  ],
  "pending": [
    {"title": "divides", "fullTitle": "calc divides", "file": "/workspace/test/calc.test.js",
     "currentRetry": 0, "err": {}}
  ],
  "failures": [
    {"title": "subtracts", "fullTitle": "calc subtracts", "file": "/workspace/test/calc.test.js",
     "err": {"message": "sub is wrong\n\n4 !== 2\n", "name": "AssertionError"}},
    {"title": "\"before all\" hook", "fullTitle": "db \"before all\" hook",
     "file": "/workspace/test/db.test.js",
     "err": {"message": "\u001b[31mconnection refused\u001b[0m", "name": "Error"}}
  ],
  "passes": []
}"#;

fn case(name: &str, file: &str, outcome: &str, duration_ms: u64, message: &str) -> TestCase {
    TestCase {
        name: name.into(),
        file: file.into(),
        outcome: outcome.into(),
        duration_ms,
        message: message.into(),
    }
}

#[test]
fn tests_pending_failures_and_hooks() {
    let cases = parse_mocha_json(REPORT).unwrap();
    assert_eq!(
        cases,
        vec![
            case("calc adds", "test/calc.test.js", "passed", 1, ""),
            case(
                "calc subtracts",
                "test/calc.test.js",
                "failed",
                3,
                "AssertionError: sub is wrong\n\n4 !== 2"
            ),
            case("calc divides", "test/calc.test.js", "skipped", 0, ""),
            case(
                "db \"before all\" hook",
                "test/db.test.js",
                "error",
                0,
                "Error: connection refused"
            ),
        ]
    );
}

#[test]
fn an_empty_suite_has_no_cases() {
    let json =
        r#"{"stats": {"tests": 0}, "tests": [], "pending": [], "failures": [], "passes": []}"#;
    assert_eq!(parse_mocha_json(json).unwrap(), vec![]);
}

#[test]
fn malformed_reports_are_errors() {
    for bad in [
        "",
        "{\"tests\": [",
        "{\"stats\": {}}",
        "[]",
        "{\"tests\": {}}",
    ] {
        let error = parse_mocha_json(bad).unwrap_err();
        assert!(
            matches!(error, Error::MalformedJson(_)),
            "{bad:?}: {error:?}"
        );
    }
}
