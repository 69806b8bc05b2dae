use std::path::Path;

use pretty_assertions::assert_eq;

use super::*;

fn exit(code: i32) -> ExitStatus {
    ExitStatus {
        exit_code: code,
        timed_out: false,
        duration_ms: 42,
        output_truncated: false,
    }
}

/// Runs the plan's real script with `/bin/sh` in `dir` (what the sandbox does in
/// `/workspace`), with the system Python first on PATH, and assembles the result.
fn run_locally(plan: &TestPlan, pattern: Option<&str>, dir: &Path) -> TestRun {
    let invocation = plan.invocation(pattern, &uuid::Uuid::new_v4().simple().to_string());
    let output = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&invocation.script)
        .current_dir(dir)
        .env("PATH", "/usr/bin:/bin")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let mut combined = output.stderr.clone();
    combined.extend_from_slice(&output.stdout);
    assemble(
        plan.framework,
        &invocation.report,
        plan.command_for(pattern),
        &exit(output.status.code().unwrap()),
        &output.stdout,
        &combined,
    )
}

fn fixture(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    dir
}

const CALC: &str = "def test_add():\n    assert 1 + 1 == 2\n\n\
                    def test_sub():\n    assert 3 - 1 == 1\n";

#[test]
fn real_pytest_run_is_parsed_from_its_report() {
    let dir = fixture(&[("tests/test_calc.py", CALC)]);
    let run = run_locally(&TestPlan::standard(Framework::Pytest), None, dir.path());
    assert_eq!(run.outcome, Outcome::Failed);
    assert_eq!(run.exit_code, 1);
    assert_eq!(
        (run.passed, run.failed, run.errors, run.skipped),
        (1, 1, 0, 0)
    );
    assert_eq!(run.command, "python3 -m pytest");
    let names: Vec<&str> = run.cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["tests.test_calc.test_add", "tests.test_calc.test_sub"]
    );
    assert_eq!(run.cases[1].file, "tests/test_calc.py");
    // The console is pytest's, without the marker or the XML.
    assert!(
        run.output_tail.contains("1 failed, 1 passed"),
        "{}",
        run.output_tail
    );
    assert!(
        !run.output_tail.contains("=====cap-testrun"),
        "{}",
        run.output_tail
    );
    assert!(
        !run.output_tail.contains("<testsuite"),
        "{}",
        run.output_tail
    );
    // Nothing left behind in the workspace.
    assert!(!dir.path().join(".pytest_cache").exists());
}

#[test]
fn real_pytest_run_limited_by_pattern() {
    let dir = fixture(&[("tests/test_calc.py", CALC)]);
    let plan = TestPlan::standard(Framework::Pytest);
    let run = run_locally(&plan, Some("add"), dir.path());
    assert_eq!(run.outcome, Outcome::Passed);
    assert_eq!((run.passed, run.failed), (1, 0));
    let run = run_locally(&plan, Some("tests/test_calc.py::test_sub"), dir.path());
    assert_eq!(run.outcome, Outcome::Failed);
    assert_eq!(run.cases.len(), 1);
    let run = run_locally(&plan, Some("nothing_matches"), dir.path());
    assert_eq!(run.outcome, Outcome::NoTests, "pytest exit 5 is no tests");
    assert_eq!(run.exit_code, 5);
}

#[test]
fn real_pytest_usage_error_is_an_error() {
    let dir = fixture(&[("test_a.py", "def test_a(): pass\n")]);
    let plan = TestPlan::standard(Framework::Pytest);
    let run = run_locally(&plan, Some("and and"), dir.path());
    assert_eq!(run.outcome, Outcome::Error, "{run:?}");
    assert_eq!(run.exit_code, 4);
    assert!(
        run.output_tail.contains("usage error"),
        "{}",
        run.output_tail
    );
}

#[test]
fn missing_runner_is_an_error_with_a_clear_message() {
    let dir = fixture(&[]);
    let plan = TestPlan::custom("definitely-not-a-test-runner --all");
    let run = run_locally(&plan, None, dir.path());
    assert_eq!(run.outcome, Outcome::Error);
    assert_eq!(run.exit_code, 127);
    assert!(
        run.output_tail.contains("not found in the sandbox"),
        "{}",
        run.output_tail
    );

    // What `python3 -m pytest` says where pytest is not installed.
    let marker = "=====cap-testrun-x=====".to_owned();
    let console = b"/usr/bin/python3: No module named pytest\n\n=====cap-testrun-x=====\n";
    let run = assemble(
        Framework::Pytest,
        &Report::Junit { marker },
        "python3 -m pytest".into(),
        &exit(1),
        b"\n=====cap-testrun-x=====\n",
        console,
    );
    assert_eq!(run.outcome, Outcome::Error);
    assert_eq!(
        run.output_tail,
        "/usr/bin/python3: No module named pytest\n[cap-testrun] pytest is not installed in the \
         sandbox image (No module named pytest)"
    );
}

#[test]
fn malformed_or_missing_reports_fall_back_to_the_exit_code() {
    let marker = "=====cap-testrun-m=====";
    let report = Report::Junit {
        marker: marker.to_owned(),
    };
    let stdout = format!("ok\n\n{marker}\n{marker}:file /tmp/r.xml\n<testsuite><testcase\n");
    // A runner claiming success without a readable report is not trusted.
    for (code, outcome) in [(0, Outcome::Error), (1, Outcome::Failed)] {
        let detailed = assemble_detailed(
            Framework::Pytest,
            &report,
            "pytest".into(),
            &exit(code),
            stdout.as_bytes(),
            stdout.as_bytes(),
        );
        assert_eq!(detailed.problem, Some(Problem::ReportMalformed));
        let run = detailed.run;
        assert_eq!(run.outcome, outcome);
        assert_eq!(run.cases, vec![]);
        assert!(
            run.output_tail.contains(
                "[cap-testrun] test report /tmp/r.xml is unreadable: malformed JUnit XML report: "
            ),
            "{}",
            run.output_tail
        );
        assert!(run.output_tail.starts_with("ok"), "{}", run.output_tail);
    }
    // Killed before the marker: nothing parsed, no panic.
    let run = assemble(
        Framework::Pytest,
        &report,
        "pytest".into(),
        &exit(2),
        b"partial",
        b"partial",
    );
    assert_eq!(
        (run.outcome, run.output_tail.as_str()),
        (
            Outcome::Failed,
            "partial\n[cap-testrun] the runner left no test report"
        )
    );
    // The marker printed but no report file: missing, and exit 0 is not a pass.
    let stdout = format!("all good\n\n{marker}\n");
    for framework in [Framework::Pytest, Framework::Vitest, Framework::NodeRunner] {
        let report = if framework == Framework::Vitest {
            Report::JestJson {
                marker: marker.to_owned(),
            }
        } else {
            report.clone()
        };
        let detailed = assemble_detailed(
            framework,
            &report,
            "runner".into(),
            &exit(0),
            stdout.as_bytes(),
            stdout.as_bytes(),
        );
        assert_eq!(
            (detailed.run.outcome, detailed.problem),
            (Outcome::Error, Some(Problem::ReportMissing)),
            "{framework}"
        );
        assert_eq!(
            detailed.run.output_tail,
            "all good\n[cap-testrun] the runner exited 0 but left no readable test report, so \
             its results cannot be trusted\n[cap-testrun] the runner left no test report"
        );
    }
    // A malformed Jest/Vitest/Mocha JSON report.
    let stdout = format!("\n{marker}\n{marker}:file /tmp/r.json\n{{\"testResults\": [\n");
    let detailed = assemble_detailed(
        Framework::Jest,
        &Report::JestJson {
            marker: marker.to_owned(),
        },
        "jest".into(),
        &exit(1),
        stdout.as_bytes(),
        stdout.as_bytes(),
    );
    assert_eq!(
        (detailed.run.outcome, detailed.problem),
        (Outcome::Failed, Some(Problem::ReportMalformed))
    );
    assert!(
        detailed.run.output_tail.contains(
            "test report /tmp/r.json is unreadable: malformed Jest/Vitest/Mocha JSON report: "
        ),
        "{}",
        detailed.run.output_tail
    );
    // Non-UTF-8 output is fine.
    let run = assemble(
        Framework::NodeTest,
        &Report::ExitCode,
        "npm test".into(),
        &exit(0),
        b"\xff\xfe",
        b"\xff\xfe",
    );
    assert_eq!(run.outcome, Outcome::Passed);
    assert_eq!(run.output_tail, "\u{fffd}\u{fffd}");
}

#[test]
fn maven_and_gradle_without_reports() {
    let marker = "=====cap-testrun-g=====";
    let report = Report::Junit {
        marker: marker.to_owned(),
    };
    let stdout = format!("BUILD SUCCESSFUL\n\n{marker}\n");
    let run = assemble(
        Framework::Gradle,
        &report,
        "gradle test".into(),
        &exit(0),
        stdout.as_bytes(),
        stdout.as_bytes(),
    );
    assert_eq!(run.outcome, Outcome::NoTests);
    assert_eq!(run.output_tail, "BUILD SUCCESSFUL");
    let run = assemble(
        Framework::Maven,
        &report,
        "mvn".into(),
        &exit(1),
        stdout.as_bytes(),
        stdout.as_bytes(),
    );
    assert_eq!(
        run.outcome,
        Outcome::Failed,
        "compilation failures leave no report"
    );
}

#[test]
fn real_script_with_several_reports() {
    // A stand-in build tool writing two surefire reports, through the real Maven script.
    let dir = fixture(&[(
        "fake-mvn.sh",
        "mkdir -p a/target/surefire-reports b/target/surefire-reports\n\
         echo '<testsuite><testcase classname=\"A\" name=\"ok\"/></testsuite>' > a/target/surefire-reports/TEST-A.xml\n\
         echo '<testsuite><testcase classname=\"B\" name=\"bad\"><failure message=\"no\"/></testcase></testsuite>' > b/target/surefire-reports/TEST-B.xml\n\
         echo 'Tests run: 2, Failures: 1'\nexit 1\n",
    )]);
    let plan = TestPlan {
        framework: Framework::Maven,
        command: "sh fake-mvn.sh".into(),
    };
    let run = run_locally(&plan, None, dir.path());
    assert_eq!(run.outcome, Outcome::Failed);
    let mut names: Vec<(&str, &str)> = run
        .cases
        .iter()
        .map(|c| (c.name.as_str(), c.outcome.as_str()))
        .collect();
    names.sort_unstable();
    assert_eq!(names, [("A.ok", "passed"), ("B.bad", "failed")]);
    assert_eq!(run.output_tail, "Tests run: 2, Failures: 1");
}

#[test]
fn go_outcomes() {
    let pass = "{\"Action\":\"pass\",\"Package\":\"p\",\"Test\":\"TestA\",\"Elapsed\":0.1}\n\
                {\"Action\":\"output\",\"Package\":\"p\",\"Output\":\"ok  \\tp\\t0.1s\\n\"}\n";
    let run = assemble(
        Framework::GoTest,
        &Report::GoJson,
        "go test ./...".into(),
        &exit(0),
        pass.as_bytes(),
        pass.as_bytes(),
    );
    assert_eq!((run.outcome, run.passed), (Outcome::Passed, 1));
    assert_eq!(run.output_tail, "ok  \tp\t0.1s");
    let none = "{\"Action\":\"skip\",\"Package\":\"p\",\"Elapsed\":0}\n";
    let run = assemble(
        Framework::GoTest,
        &Report::GoJson,
        "go test ./...".into(),
        &exit(0),
        none.as_bytes(),
        none.as_bytes(),
    );
    assert_eq!(run.outcome, Outcome::NoTests);
    let run = assemble(
        Framework::GoTest,
        &Report::GoJson,
        "go test ./...".into(),
        &exit(1),
        b"",
        b"go: cannot find main module\n",
    );
    assert_eq!(run.outcome, Outcome::Failed);
    assert_eq!(run.output_tail, "go: cannot find main module");
}

#[test]
fn timeouts_win_over_everything() {
    let timed_out = ExitStatus {
        exit_code: -1,
        timed_out: true,
        duration_ms: 5000,
        output_truncated: true,
    };
    let run = assemble(
        Framework::NodeTest,
        &Report::ExitCode,
        "npm test".into(),
        &timed_out,
        b"",
        b"running...",
    );
    assert_eq!(run.outcome, Outcome::TimedOut);
    assert!(run.timed_out);
    assert_eq!(run.duration_ms, 5000);
    assert_eq!(
        run.output_tail,
        "running...\n[cap-testrun] the run was killed at its timeout after 5000 ms\n\
         [cap-testrun] the sandbox dropped output beyond its cap"
    );
}

#[test]
fn the_output_tail_is_about_4_kib() {
    let console = format!("{}END", "é".repeat(10_000));
    let run = assemble(
        Framework::Custom,
        &Report::ExitCode,
        "x".into(),
        &exit(0),
        b"",
        console.as_bytes(),
    );
    assert_eq!(run.output_tail.chars().count(), OUTPUT_TAIL + 3);
    assert!(run.output_tail.ends_with("ééEND"));
    let run = assemble(
        Framework::Custom,
        &Report::ExitCode,
        "x".into(),
        &exit(127),
        b"",
        console.as_bytes(),
    );
    assert!(run.output_tail.chars().count() <= OUTPUT_TAIL + 3);
    assert!(
        run.output_tail.ends_with("for custom tests"),
        "{}",
        run.output_tail
    );
}

#[test]
fn bad_patterns_are_refused_with_the_reason() {
    let err = validate_pattern("a\0b").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid test pattern \"a\\0b\": it contains a NUL byte"
    );
    assert!(
        validate_pattern("a\nb")
            .unwrap_err()
            .to_string()
            .ends_with("it contains a line break")
    );
    assert!(
        validate_pattern(&"x".repeat(2000))
            .unwrap_err()
            .to_string()
            .ends_with("longer than 1024 bytes")
    );
    validate_pattern("test_add or test_sub").unwrap();
}

#[test]
fn windows_keep_the_newest_bytes() {
    let mut buffer = Vec::new();
    push_window(&mut buffer, &vec![b'a'; WINDOW]);
    push_window(&mut buffer, &vec![b'b'; WINDOW]);
    assert_eq!(buffer.len(), WINDOW);
    assert!(buffer.iter().all(|b| *b == b'b'));
}

#[test]
fn runs_serialize_with_snake_case_outcomes() {
    let run = assemble(
        Framework::Custom,
        &Report::ExitCode,
        "x".into(),
        &exit(5),
        b"",
        b"",
    );
    let json = serde_json::to_value(&run).unwrap();
    assert_eq!(json["outcome"], "failed");
    let back: TestRun = serde_json::from_value(json).unwrap();
    assert_eq!(back, run);
    assert_eq!(
        serde_json::to_string(&Outcome::NoTests).unwrap(),
        "\"no_tests\""
    );
    assert_eq!(
        serde_json::to_string(&Outcome::TimedOut).unwrap(),
        "\"timed_out\""
    );
}

#[test]
fn maven_gets_the_packaged_repository_others_do_not() {
    let maven = runner_env(Framework::Maven);
    assert_eq!(
        maven["MAVEN_OPTS"],
        "-Dmaven.repo.local=/usr/share/maven-repo -Dstyle.color=never"
    );
    for framework in [Framework::Gradle, Framework::Pytest, Framework::GoTest] {
        let env = runner_env(framework);
        assert_eq!(env["GOPROXY"], "off");
        assert!(!env.contains_key("MAVEN_OPTS"), "{framework}");
    }
}
