use std::path::Path;

use pretty_assertions::assert_eq;

use super::*;

/// The system Python, which has pytest (a pyenv shim earlier on PATH may not).
const PYTHON: &str = "/usr/bin/python3";

/// Runs real pytest on `files` in a fresh directory and returns its exit code and JUnit XML.
fn pytest_report(files: &[(&str, &str)], family: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let xml = dir.path().join("report.xml");
    let status = std::process::Command::new(PYTHON)
        .args(["-m", "pytest", "-p", "no:cacheprovider", "-q", "-o"])
        .arg(format!("junit_family={family}"))
        .arg(format!("--junitxml={}", xml.display()))
        .current_dir(dir.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap()
        .status;
    (status.code().unwrap(), read(&xml))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

const CALC_TESTS: &str = r#"
import pytest

def test_add():
    assert 1 + 1 == 2

def test_sub():
    assert 3 - 1 == 1, "subtraction is broken"

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass

@pytest.fixture
def broken():
    raise RuntimeError("fixture exploded")

def test_uses_broken(broken):
    pass

class TestMul:
    def test_mul(self):
        assert 2 * 3 == 6
"#;

#[test]
fn real_pytest_report_xunit1() {
    let (code, xml) = pytest_report(&[("tests/test_calc.py", CALC_TESTS)], "xunit1");
    assert_eq!(code, 1);
    let cases = parse_junit_xml(&xml).unwrap();
    let summary: Vec<(&str, &str, &str)> = cases
        .iter()
        .map(|c| (c.name.as_str(), c.file.as_str(), c.outcome.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("tests.test_calc.test_add", "tests/test_calc.py", "passed"),
            ("tests.test_calc.test_sub", "tests/test_calc.py", "failed"),
            (
                "tests.test_calc.test_skipped",
                "tests/test_calc.py",
                "skipped"
            ),
            (
                "tests.test_calc.test_uses_broken",
                "tests/test_calc.py",
                "error"
            ),
            (
                "tests.test_calc.TestMul.test_mul",
                "tests/test_calc.py",
                "passed"
            ),
        ]
    );
    let sub = &cases[1];
    assert!(
        sub.message.contains("subtraction is broken"),
        "{}",
        sub.message
    );
    assert!(
        sub.message.contains("tests/test_calc.py:8: AssertionError"),
        "traceback kept: {}",
        sub.message
    );
    assert!(
        cases[2].message.contains("not today"),
        "{}",
        cases[2].message
    );
    assert!(
        cases[3].message.contains("fixture exploded"),
        "{}",
        cases[3].message
    );
    assert_eq!(cases[0].message, "");
}

#[test]
fn real_pytest_report_default_family_has_no_file() {
    let (code, xml) = pytest_report(
        &[("test_one.py", "def test_ok():\n    assert True\n")],
        "xunit2",
    );
    assert_eq!(code, 0);
    let cases = parse_junit_xml(&xml).unwrap();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].name, "test_one.test_ok");
    assert_eq!(cases[0].file, "");
    assert_eq!(cases[0].outcome, "passed");
}

#[test]
fn real_pytest_collection_error_is_an_error_case() {
    let (code, xml) = pytest_report(
        &[
            ("test_ok.py", "def test_ok(): pass\n"),
            ("test_bad.py", "def test_bad(:\n"),
        ],
        "xunit1",
    );
    assert_eq!(code, 2, "collection errors interrupt pytest");
    let cases = parse_junit_xml(&xml).unwrap();
    let errors: Vec<&TestCase> = cases.iter().filter(|c| c.outcome == "error").collect();
    assert_eq!(errors.len(), 1, "{cases:?}");
    assert!(errors[0].name.contains("test_bad"), "{:?}", errors[0]);
    assert!(
        errors[0].message.contains("SyntaxError"),
        "{}",
        errors[0].message
    );
}

#[test]
fn real_pytest_with_no_tests_has_an_empty_report() {
    let (code, xml) = pytest_report(&[("helper.py", "X = 1\n")], "xunit1");
    assert_eq!(code, 5);
    assert_eq!(parse_junit_xml(&xml).unwrap(), vec![]);
}

/// The shape Maven surefire writes (TEST-*.xml), with a rerun-then-passed test.
const SUREFIRE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuite xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="3.0" name="com.acme.CalcTest" time="1,234.5" tests="3" errors="0" skipped="0" failures="1">
  <properties><property name="java.version" value="17"/></properties>
  <testcase name="add" classname="com.acme.CalcTest" time="0.012"/>
  <testcase name="sub" classname="com.acme.CalcTest" time="1,001.5">
    <failure message="expected: &lt;2&gt; but was: &lt;1&gt;" type="org.opentest4j.AssertionFailedError"><![CDATA[org.opentest4j.AssertionFailedError: expected: <2> but was: <1>
	at com.acme.CalcTest.sub(CalcTest.java:14)
]]></failure>
    <system-out><![CDATA[some output]]></system-out>
  </testcase>
  <testcase name="flaky" classname="com.acme.CalcTest" time="0.003">
    <flakyFailure message="first try failed" type="java.lang.AssertionError"/>
  </testcase>
</testsuite>
"#;

#[test]
fn surefire_report() {
    let cases = parse_junit_xml(SUREFIRE).unwrap();
    assert_eq!(
        cases,
        vec![
            TestCase {
                name: "com.acme.CalcTest.add".into(),
                file: String::new(),
                outcome: "passed".into(),
                duration_ms: 12,
                message: String::new(),
            },
            TestCase {
                name: "com.acme.CalcTest.sub".into(),
                file: String::new(),
                outcome: "failed".into(),
                duration_ms: 1_001_500,
                message: "org.opentest4j.AssertionFailedError: expected: <2> but was: <1>\n\
                          \tat com.acme.CalcTest.sub(CalcTest.java:14)"
                    .into(),
            },
            TestCase {
                name: "com.acme.CalcTest.flaky".into(),
                file: String::new(),
                outcome: "passed".into(),
                duration_ms: 3,
                message: String::new(),
            },
        ]
    );
}

#[test]
fn malformed_reports_are_errors_not_panics() {
    for xml in [
        "",
        "not xml",
        "<testsuites><testcase name='x'>",
        "<testsuite></testsuites>",
        "\u{0}",
    ] {
        let err = parse_junit_xml(xml).unwrap_err();
        assert!(matches!(err, Error::MalformedJunit(_)), "{xml:?}: {err:?}");
        assert_eq!(err.to_string(), "malformed JUnit XML report");
    }
    let err = parse_junit_xml("<html><testcase name='x'/></html>").unwrap_err();
    assert_eq!(
        err.to_string(),
        "not a JUnit XML report: the root element is <html>, not <testsuites> or <testsuite>"
    );
}

#[test]
fn reports_with_a_dtd_are_refused() {
    let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<testsuite><testcase name="&lol2;"/></testsuite>"#;
    assert!(matches!(
        parse_junit_xml(bomb),
        Err(Error::MalformedJunit(_))
    ));
}

#[test]
fn odd_but_wellformed_reports_parse() {
    let xml = r#"<testsuites>
      <testsuite><testsuite><testcase name="nested" time="abc"/></testsuite></testsuite>
      <testcase classname="OnlyClass" time="-1"/>
      <testcase name="skipped"><skipped/></testcase>
      <testcase name="err"><error message="boom"/></testcase>
    </testsuites>"#;
    let cases = parse_junit_xml(xml).unwrap();
    let got: Vec<(&str, &str, u64, &str)> = cases
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.outcome.as_str(),
                c.duration_ms,
                c.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("nested", "passed", 0, ""),
            ("OnlyClass", "passed", 0, ""),
            ("skipped", "skipped", 0, ""),
            ("err", "error", 0, "boom"),
        ]
    );
}

#[test]
fn long_messages_are_capped() {
    let long = "x".repeat(MESSAGE_CAP * 3);
    let xml = format!(
        "<testsuite><testcase name='t'><failure message='m'>{long}</failure></testcase></testsuite>"
    );
    let cases = parse_junit_xml(&xml).unwrap();
    assert_eq!(cases[0].message.chars().count(), MESSAGE_CAP + 3);
    assert!(cases[0].message.starts_with("m\nxxx"));
    assert_eq!(cap_chars("héllo", 2), "hé...");
    assert_eq!(cap_chars("hé", 2), "hé");
}

#[test]
fn seconds_parse_leniently() {
    assert_eq!(seconds_to_ms("0.0015"), 2);
    assert_eq!(seconds_to_ms("2"), 2000);
    assert_eq!(seconds_to_ms(""), 0);
    assert_eq!(seconds_to_ms("NaN"), 0);
    assert_eq!(seconds_to_ms("inf"), 0);
    assert_eq!(seconds_to_ms("1e300"), u64::MAX);
}
