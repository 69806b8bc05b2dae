//! The fixture repositories of `tests/fixtures/testing/` in all four languages (Python with
//! pytest, Go, Java with Maven and JUnit 5, TypeScript with Vitest), detected and run with
//! their real toolchains inside the real sandbox (bubblewrap) served over mutual TLS; and
//! the broken inputs (a suite that hangs, a runner that is not installed, a report that is
//! missing, a repository without tests) each ending in their category.
//!
//! The toolchains come from `scripts/deps.d/20-testing.sh`; Vitest from its npm cache,
//! committed into the fixture's repository here because the sandbox has no network.

// Setup helpers outside `#[test]` functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use cap_mtls::Pki;
use cap_proto::sandbox::v1::CreateSessionRequest;
use cap_sandbox_client::{GrpcSandbox, MAX_MESSAGE_BYTES, SandboxApi as _};
use cap_testkit::git::BareRepo;
use cap_testrun::coverage::{self, Coverage, FileCoverage, Tree};
use cap_testrun::lint::{self, LintTool};
use cap_testrun::{Framework, Outcome, Problem, RunReport, TestCase, TestPlan};
use pretty_assertions::assert_eq;

/// Where `scripts/deps.d/20-testing.sh` installs Vitest.
const NODE_CACHE: &str = "/var/cache/cap-testing/node/node_modules";
/// ... ESLint, Prettier and TypeScript.
const LINT_CACHE: &str = "/var/cache/cap-testing/node-lint/node_modules";
/// ... Jest and Mocha.
const JEST_CACHE: &str = "/var/cache/cap-testing/node-jest/node_modules";

const TIMEOUT: Duration = Duration::from_secs(300);

struct Harness {
    _dir: tempfile::TempDir,
    sandbox: GrpcSandbox,
    session_id: String,
}

impl Harness {
    /// A sandbox service and a session on a repository holding the fixture `name` plus
    /// `extra` files (and Vitest's `node_modules`, under the directory `node_modules` names).
    async fn start(name: &str, extra: &[(&str, &str)], node_modules: Option<&str>) -> Self {
        Self::start_with(name, extra, node_modules.map(|dest| (NODE_CACHE, dest))).await
    }

    /// Like [`Harness::start`], with the npm packages of `node`'s cache under its destination.
    async fn start_with(name: &str, extra: &[(&str, &str)], node: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        if !name.is_empty() {
            copy_dir(&fixture(name), &work);
        }
        for (path, content) in extra {
            let path = work.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
            if content.starts_with("#!") {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        if let Some((cache, node_modules)) = node {
            assert!(
                Path::new(cache).join(".bin").is_dir(),
                "{cache} is missing; run scripts/deps.d/20-testing.sh"
            );
            copy_dir(Path::new(cache), &work.join(node_modules));
        }
        let repo = BareRepo::of_tree(dir.path(), &work);
        let (repo_url, commit_sha) = (repo.url(), repo.commit);
        let pki = Pki::ensure_dev(dir.path().join("pki")).unwrap();
        let (sandbox_url, _sandbox_server) =
            cap_sandbox_server::spawn_local(dir.path().join("sessions"), &pki)
                .await
                .unwrap();
        let client_tls = pki.service("testing-agent").unwrap();
        let sandbox =
            GrpcSandbox::new(client_tls.channel(&sandbox_url).unwrap(), MAX_MESSAGE_BYTES);
        let session_id = sandbox
            .create_session(CreateSessionRequest {
                image: String::new(),
                repo_url,
                commit_sha,
            })
            .await
            .unwrap()
            .session_id;
        Self {
            _dir: dir,
            sandbox,
            session_id,
        }
    }

    async fn detect(&mut self) -> TestPlan {
        cap_testrun::detect(&self.sandbox, &self.session_id)
            .await
            .unwrap()
            .expect("a test runner is detected")
    }

    async fn run(&mut self, plan: &TestPlan, pattern: Option<&str>) -> RunReport {
        self.run_for(plan, pattern, TIMEOUT).await
    }

    async fn run_for(
        &mut self,
        plan: &TestPlan,
        pattern: Option<&str>,
        timeout: Duration,
    ) -> RunReport {
        cap_testrun::run_detailed(&self.sandbox, &self.session_id, plan, pattern, timeout)
            .await
            .unwrap()
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/testing")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), target).unwrap();
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The cases without durations and with messages cut to their first line, to compare whole.
fn comparable(cases: &[TestCase]) -> Vec<TestCase> {
    cases
        .iter()
        .map(|c| TestCase {
            duration_ms: 0,
            message: c.message.lines().next().unwrap_or_default().to_owned(),
            ..c.clone()
        })
        .collect()
}

fn case(name: &str, file: &str, outcome: &str, message: &str) -> TestCase {
    TestCase {
        name: name.into(),
        file: file.into(),
        outcome: outcome.into(),
        duration_ms: 0,
        message: message.into(),
    }
}

#[tokio::test]
async fn python_fixture_with_pytest() {
    let mut h = Harness::start("python-calculator", &[], None).await;
    let plan = h.detect().await;
    assert_eq!(plan, TestPlan::standard(Framework::Pytest));
    let report = h.run(&plan, None).await;
    let run = &report.run;
    assert_eq!(
        (run.outcome, report.problem, run.passed, run.failed),
        (Outcome::Failed, None, 2, 1),
        "{run:#?}"
    );
    let mut cases = comparable(&run.cases);
    cases[2].message = cases[2].message.split(" (").next().unwrap().to_owned();
    assert_eq!(
        cases,
        vec![
            case(
                "tests.test_calc.test_add",
                "tests/test_calc.py",
                "passed",
                ""
            ),
            case(
                "tests.test_calc.test_mul",
                "tests/test_calc.py",
                "passed",
                ""
            ),
            case(
                "tests.test_calc.test_sub",
                "tests/test_calc.py",
                "failed",
                "AssertionError: sub is wrong"
            ),
        ]
    );
    let report = h.run(&plan, Some("test_add or test_mul")).await;
    assert_eq!(
        (
            report.run.outcome,
            report.run.passed,
            report.run.cases.len()
        ),
        (Outcome::Passed, 2, 2),
        "{:#?}",
        report.run
    );
}

#[tokio::test]
async fn go_fixture_with_go_test_json() {
    let mut h = Harness::start("go-calculator", &[], None).await;
    let plan = h.detect().await;
    assert_eq!(plan, TestPlan::standard(Framework::GoTest));
    let report = h.run(&plan, None).await;
    let run = &report.run;
    assert_eq!(
        (run.outcome, report.problem, run.passed, run.failed),
        (Outcome::Failed, None, 1, 1),
        "{run:#?}"
    );
    let failing = run.cases.iter().find(|c| c.outcome == "failed").unwrap();
    assert_eq!(
        (failing.name.as_str(), failing.file.as_str()),
        ("TestSub", "example.com/calculator")
    );
    assert!(
        failing
            .message
            .contains("sub is wrong: Sub(3, 1) = 4, want 2"),
        "{failing:#?}"
    );
    let report = h.run(&plan, Some("TestAdd")).await;
    assert_eq!(
        (report.run.outcome, report.run.passed, report.run.failed),
        (Outcome::Passed, 1, 0),
        "{:#?}",
        report.run
    );
}

#[tokio::test]
async fn java_fixture_with_maven_offline() {
    let mut h = Harness::start("java-calculator", &[], None).await;
    let plan = h.detect().await;
    assert_eq!(plan, TestPlan::standard(Framework::Maven));
    let report = h.run(&plan, None).await;
    let run = &report.run;
    assert_eq!(
        (run.outcome, report.problem, run.passed, run.failed),
        (Outcome::Failed, None, 1, 1),
        "{run:#?}"
    );
    // JUnit 5 runs methods in an order of its own.
    let mut cases = comparable(&run.cases);
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        cases,
        vec![
            case("calc.CalculatorTest.addsNumbers", "", "passed", ""),
            case(
                "calc.CalculatorTest.subtractsNumbers",
                "",
                "failed",
                "org.opentest4j.AssertionFailedError: sub is wrong ==> expected: <2> but was: <4>"
            ),
        ]
    );
    let report = h.run(&plan, Some("CalculatorTest#addsNumbers")).await;
    assert_eq!(
        (report.run.outcome, report.run.passed, report.run.failed),
        (Outcome::Passed, 1, 0),
        "{:#?}",
        report.run
    );
}

#[tokio::test]
async fn typescript_fixture_with_vitest() {
    let mut h = Harness::start("ts-calculator", &[], Some("node_modules")).await;
    let plan = h.detect().await;
    assert_eq!(plan, TestPlan::standard(Framework::Vitest));
    let report = h.run(&plan, None).await;
    let run = &report.run;
    assert_eq!(
        (run.outcome, report.problem, run.passed, run.failed),
        (Outcome::Failed, None, 1, 1),
        "{run:#?}"
    );
    assert_eq!(
        comparable(&run.cases),
        vec![
            case("calc adds", "src/calc.test.ts", "passed", ""),
            case(
                "calc subtracts",
                "src/calc.test.ts",
                "failed",
                "sub is wrong: expected 4 to be 2 // Object.is equality"
            ),
        ]
    );
    let report = h.run(&plan, Some("adds")).await;
    assert_eq!(
        (
            report.run.outcome,
            report.run.passed,
            report.run.failed,
            report.run.skipped
        ),
        (Outcome::Passed, 1, 0, 1),
        "{:#?}",
        report.run
    );
}

const NODE_TESTS: &str = "const test = require('node:test');\n\
                          const assert = require('node:assert');\n\
                          test('adds', () => assert.strictEqual(1 + 1, 2));\n\
                          test('subtracts', () => assert.strictEqual(3 - 1, 3, 'sub is wrong'));\n";

#[tokio::test]
async fn javascript_with_nodes_own_runner() {
    let package = r#"{"name": "x", "scripts": {"test": "node --test"}}"#;
    let mut h = Harness::start(
        "",
        &[("package.json", package), ("test/calc.test.js", NODE_TESTS)],
        None,
    )
    .await;
    let plan = h.detect().await;
    assert_eq!(plan, TestPlan::standard(Framework::NodeRunner));
    let report = h.run(&plan, None).await;
    let mut cases = comparable(&report.run.cases);
    assert!(
        cases[1].message.starts_with("sub is wrong"),
        "{:#?}",
        report.run
    );
    cases[1].message.clear();
    assert_eq!(
        cases,
        vec![
            case("test.adds", "", "passed", ""),
            case("test.subtracts", "", "failed", ""),
        ]
    );
    assert_eq!(report.run.outcome, Outcome::Failed);
    let report = h.run(&plan, Some("adds")).await;
    assert_eq!(
        (report.run.outcome, report.run.passed, report.run.failed),
        (Outcome::Passed, 1, 0),
        "{:#?}",
        report.run
    );
}

#[tokio::test]
async fn broken_inputs_end_in_their_category() {
    // A suite that hangs: killed at the timeout.
    let hang = "package calculator\n\nimport (\n\t\"testing\"\n\t\"time\"\n)\n\n\
                func TestHangs(t *testing.T) {\n\ttime.Sleep(time.Hour)\n}\n";
    let mut h = Harness::start("go-calculator", &[("hang_test.go", hang)], None).await;
    let plan = h.detect().await;
    let report = h
        .run_for(&plan, Some("TestHangs"), Duration::from_secs(3))
        .await;
    assert_eq!(
        (report.run.outcome, report.problem, report.run.timed_out),
        (Outcome::TimedOut, Some(Problem::TimedOut), true),
        "{:#?}",
        report.run
    );

    // A runner that is not installed: Vitest without its node_modules.
    let mut h = Harness::start("ts-calculator", &[], None).await;
    let plan = h.detect().await;
    let report = h.run(&plan, None).await;
    assert_eq!(
        (report.run.outcome, report.problem),
        (Outcome::Error, Some(Problem::RunnerMissing)),
        "{:#?}",
        report.run
    );
    assert!(
        report
            .run
            .output_tail
            .contains("the test runner was not found in the sandbox"),
        "{}",
        report.run.output_tail
    );

    // A runner that exits 0 without leaving its report: not a pass.
    let fake = "#!/bin/sh\necho 'all tests passed (trust me)'\n";
    let mut h = Harness::start(
        "",
        &[
            ("package.json", r#"{"scripts": {"test": "jest"}}"#),
            ("node_modules/.bin/jest", fake),
        ],
        None,
    )
    .await;
    let plan = h.detect().await;
    assert_eq!(plan.framework, Framework::Jest);
    let report = h.run(&plan, None).await;
    assert_eq!(
        (report.run.outcome, report.problem),
        (Outcome::Error, Some(Problem::ReportMissing)),
        "{:#?}",
        report.run
    );

    // A runner whose report is malformed.
    let garbage = "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in --outputFile=*) \
                   printf '{\"testResults\": [' > \"${a#--outputFile=}\";; esac; done\n";
    let mut h = Harness::start(
        "",
        &[
            ("package.json", r#"{"scripts": {"test": "jest"}}"#),
            ("node_modules/.bin/jest", garbage),
        ],
        None,
    )
    .await;
    let plan = h.detect().await;
    let report = h.run(&plan, None).await;
    assert_eq!(
        (report.run.outcome, report.problem),
        (Outcome::Error, Some(Problem::ReportMalformed)),
        "{:#?}",
        report.run
    );
    assert!(
        report
            .run
            .output_tail
            .contains("malformed Jest/Vitest/Mocha JSON report"),
        "{}",
        report.run.output_tail
    );

    // A Go module without tests.
    let mut h = Harness::start(
        "",
        &[
            ("go.mod", "module example.com/empty\n\ngo 1.19\n"),
            ("lib.go", "package empty\n\n// One is 1.\nconst One = 1\n"),
        ],
        None,
    )
    .await;
    let plan = h.detect().await;
    let report = h.run(&plan, None).await;
    assert_eq!(
        (report.run.outcome, report.problem),
        (Outcome::NoTests, Some(Problem::NoTests)),
        "{:#?}",
        report.run
    );
}

impl Harness {
    async fn write(&mut self, path: &str, content: &str) {
        use cap_proto::common::v1::FileChange;
        use cap_proto::common::v1::file_change::Change;
        self.sandbox
            .write_files(cap_proto::sandbox::v1::WriteFilesRequest {
                session_id: self.session_id.clone(),
                changes: vec![FileChange {
                    path: path.to_owned(),
                    change: Some(Change::Content(content.as_bytes().to_vec())),
                }],
            })
            .await
            .unwrap();
    }

    async fn coverage(&mut self, plan: &TestPlan, tree: Tree) -> Coverage {
        coverage::measure(&self.sandbox, &self.session_id, plan, tree, TIMEOUT)
            .await
            .unwrap()
            .expect("coverage is measured for this runner")
    }
}

/// Python: coverage.py before (the base checkout) and after a change adding untested code,
/// against `fail_under = 80` from `pyproject.toml`.
#[tokio::test]
async fn python_coverage_drop_below_the_threshold_fails_with_the_numbers() {
    let mut h = Harness::start("python-calculator", &[], None).await;
    let plan = h.detect().await;
    let threshold = coverage::threshold(&h.sandbox, &h.session_id)
        .await
        .unwrap();
    assert_eq!(threshold, Some(80.0));
    let untested = format!(
        "{}\n\ndef div(a, b):\n    if b == 0:\n        raise ZeroDivisionError(\"b is 0\")\n    \
         q = a / b\n    r = a % b\n    return q, r\n",
        std::fs::read_to_string(fixture("python-calculator/calc.py")).unwrap()
    );
    h.write("calc.py", &untested).await;
    let before = h.coverage(&plan, Tree::Base).await;
    let after = h.coverage(&plan, Tree::Workspace).await;
    assert_eq!(
        before.files["calc.py"],
        FileCoverage {
            covered: 6,
            total: 6
        }
    );
    assert_eq!(
        after.files["calc.py"],
        FileCoverage {
            covered: 7,
            total: 12
        }
    );
    let delta = coverage::compare(&before, &after, threshold);
    assert_eq!(
        (
            delta.before,
            delta.after,
            delta.delta,
            delta.below_threshold
        ),
        (100.0, 58.33, -41.67, true),
        "{delta:#?}"
    );
    assert_eq!(delta.files.len(), 1);
    assert!(
        delta
            .summary()
            .contains("below the repository's threshold of 80.00%"),
        "{}",
        delta.summary()
    );
}

/// Go: `go test -coverprofile` before and after, the threshold from `.testcoverage.yml`.
#[tokio::test]
async fn go_coverage_before_and_after() {
    let mut h = Harness::start("go-calculator", &[], None).await;
    let plan = h.detect().await;
    let threshold = coverage::threshold(&h.sandbox, &h.session_id)
        .await
        .unwrap();
    assert_eq!(threshold, Some(75.0));
    h.write(
        "more.go",
        "package calculator\n\n// Mul returns a * b.\nfunc Mul(a, b int) int {\n\treturn a * b\n}\n",
    )
    .await;
    let before = h.coverage(&plan, Tree::Base).await;
    let after = h.coverage(&plan, Tree::Workspace).await;
    assert_eq!(before.percent(), 100.0, "{before:#?}");
    assert_eq!(after.percent(), 66.67, "{after:#?}");
    let delta = coverage::compare(&before, &after, threshold);
    assert!(delta.below_threshold, "{delta:#?}");
    assert_eq!(
        delta.files,
        vec![coverage::FileDelta {
            path: "example.com/calculator/more.go".into(),
            before: None,
            after: Some(0.0),
            delta: 0.0,
        }]
    );
}

/// A runner whose coverage cannot be measured is a categorised error, not a panic.
#[tokio::test]
async fn coverage_without_its_tool_is_a_clear_error() {
    let h = Harness::start("python-calculator", &[], None).await;
    let plan = TestPlan::standard(Framework::GoTest);
    let error = coverage::measure(&h.sandbox, &h.session_id, &plan, Tree::Workspace, TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(error, cap_testrun::Error::CoverageUnavailable { .. }),
        "{error:?}"
    );
    let custom = TestPlan::custom("make check");
    let none = coverage::measure(&h.sandbox, &h.session_id, &custom, Tree::Workspace, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(none, None);
}

/// Python: the linters the fixture configures (ruff, black, pylint, mypy) run on the changed
/// file; violations come back parsed; black then formats the file and its check is clean.
#[tokio::test]
async fn python_linters_and_formatter_on_the_changed_files() {
    let mut h = Harness::start("python-calculator", &[], None).await;
    let tools = lint::detect_linters_in(&h.sandbox, &h.session_id)
        .await
        .unwrap();
    assert_eq!(
        tools,
        [
            LintTool::Ruff,
            LintTool::Black,
            LintTool::Pylint,
            LintTool::Mypy
        ]
    );
    h.write(
        "calc.py",
        "\"\"\"A calculator.\"\"\"\nimport os\n\n\ndef add(a,b):\n    return a+b\n\n\n\
         def half(n: int) -> str:\n    return n // 2\n",
    )
    .await;
    let files = vec!["calc.py".to_owned(), "README.md".to_owned()];
    let runs = lint::run_linters(&h.sandbox, &h.session_id, &tools, &files, TIMEOUT)
        .await
        .unwrap();
    type Found<'a> = Vec<(&'a str, u32, &'a str)>;
    let by_tool: Vec<(LintTool, Option<&str>, Found<'_>)> = runs
        .iter()
        .map(|r| {
            (
                r.tool,
                r.problem.as_deref(),
                r.violations
                    .iter()
                    .map(|v| (v.file.as_str(), v.line, v.code.as_str()))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        by_tool,
        [
            (LintTool::Ruff, None, vec![("calc.py", 2, "F401")]),
            (LintTool::Black, None, vec![("calc.py", 0, "format")]),
            (
                LintTool::Pylint,
                None,
                vec![("calc.py", 2, "unused-import")]
            ),
            (LintTool::Mypy, None, vec![("calc.py", 10, "return-value")]),
        ],
        "{runs:#?}"
    );
    assert_eq!(
        runs[3].violations[0].message,
        "Incompatible return value type (got \"int\", expected \"str\")"
    );
    // mypy leaves no cache in the workspace.
    let listing = h
        .run(&TestPlan::custom("test ! -e .mypy_cache"), None)
        .await;
    assert_eq!(listing.run.outcome, Outcome::Passed, "{:#?}", listing.run);
    let formatted = lint::format_files(&h.sandbox, &h.session_id, &tools, &files, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        formatted
            .iter()
            .map(|r| (r.tool, r.clean()))
            .collect::<Vec<_>>(),
        [(LintTool::Ruff, true), (LintTool::Black, true)],
        "{formatted:#?}"
    );
    let again = lint::run_linters(
        &h.sandbox,
        &h.session_id,
        &[LintTool::Black],
        &files,
        TIMEOUT,
    )
    .await
    .unwrap();
    assert!(again[0].clean(), "{again:#?}");
    // A path that leaves the workspace is refused before anything runs.
    let error = lint::run_linters(
        &h.sandbox,
        &h.session_id,
        &tools,
        &["../outside.py".to_owned()],
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, cap_testrun::Error::InvalidPath { .. }),
        "{error:?}"
    );
}

/// Go: gofmt and go vet on a changed file with a formatting slip and a vet finding.
#[tokio::test]
async fn go_linters_on_the_changed_files() {
    let mut h = Harness::start("go-calculator", &[], None).await;
    let tools = lint::detect_linters_in(&h.sandbox, &h.session_id)
        .await
        .unwrap();
    assert_eq!(tools, [LintTool::Gofmt, LintTool::GoVet]);
    h.write(
        "show.go",
        "package calculator\n\nimport \"fmt\"\n\n// Show prints n.\nfunc Show(n int) string {\n\
         return fmt.Sprintf(\"%s\", n)\n}\n",
    )
    .await;
    let runs = lint::run_linters(
        &h.sandbox,
        &h.session_id,
        &tools,
        &["show.go".to_owned()],
        TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(
        runs[0]
            .violations
            .iter()
            .map(|v| (v.file.as_str(), v.code.as_str()))
            .collect::<Vec<_>>(),
        [("show.go", "format")],
        "{runs:#?}"
    );
    let vet = &runs[1].violations;
    assert!(
        vet.len() == 1 && vet[0].file == "show.go" && vet[0].line == 7,
        "{runs:#?}"
    );
    assert!(
        vet[0]
            .message
            .contains("Sprintf format %s has arg n of wrong type int"),
        "{vet:#?}"
    );
}

/// UC-03: a bug fix's regression test fails on the base checkout and passes with the fix.
#[tokio::test]
async fn regression_tests_are_proven_to_fail_before_and_pass_after_the_fix() {
    let mut h = Harness::start("python-calculator", &[], None).await;
    let plan = h.detect().await;
    let regression = "from calc import add, sub\n\n\ndef test_sub_regression():\n    \
                      assert sub(5, 2) == 3\n\n\ndef test_add_still_works():\n    \
                      assert add(1, 1) == 2\n";
    h.write("tests/test_regression.py", regression).await;
    let fixed = std::fs::read_to_string(fixture("python-calculator/calc.py"))
        .unwrap()
        .replace(
            "def sub(a, b):\n    return a + b",
            "def sub(a, b):\n    return a - b",
        );
    h.write("calc.py", &fixed).await;
    let files = ["tests/test_regression.py".to_owned()];
    let proof = cap_testrun::prove_regression(
        &h.sandbox,
        &h.session_id,
        &plan,
        &files,
        Some("tests/test_regression.py"),
        TIMEOUT,
    )
    .await
    .unwrap();
    assert!(proof.proven, "{proof:#?}");
    assert_eq!(
        (proof.before.run.failed, proof.before.run.passed),
        (1, 1),
        "{proof:#?}"
    );
    assert_eq!((proof.after.run.failed, proof.after.run.passed), (0, 2));

    // A test that passes without the fix proves nothing.
    let proof = cap_testrun::prove_regression(
        &h.sandbox,
        &h.session_id,
        &plan,
        &files,
        Some("test_add_still_works"),
        TIMEOUT,
    )
    .await
    .unwrap();
    assert!(!proof.proven, "{proof:#?}");
    assert_eq!(proof.before.run.outcome, Outcome::Passed);

    // Paths outside the workspace are refused.
    let error = cap_testrun::prove_regression(
        &h.sandbox,
        &h.session_id,
        &plan,
        &["../../etc/passwd".to_owned()],
        None,
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, cap_testrun::Error::InvalidPath { .. }),
        "{error:?}"
    );
}

/// The same proof for Go, with `go test -run`.
#[tokio::test]
async fn go_regression_proof() {
    let mut h = Harness::start("go-calculator", &[], None).await;
    let plan = h.detect().await;
    h.write(
        "regression_test.go",
        "package calculator\n\nimport \"testing\"\n\nfunc TestSubRegression(t *testing.T) {\n\
         \tif Sub(5, 2) != 3 {\n\t\tt.Fatal(\"Sub(5, 2) != 3\")\n\t}\n}\n",
    )
    .await;
    let fixed = std::fs::read_to_string(fixture("go-calculator/calc.go"))
        .unwrap()
        .replace(
            "func Sub(a, b int) int {\n\treturn a + b",
            "func Sub(a, b int) int {\n\treturn a - b",
        );
    h.write("calc.go", &fixed).await;
    let proof = cap_testrun::prove_regression(
        &h.sandbox,
        &h.session_id,
        &plan,
        &["regression_test.go".to_owned()],
        Some("TestSubRegression"),
        TIMEOUT,
    )
    .await
    .unwrap();
    assert!(proof.proven, "{proof:#?}");
}

/// TypeScript: Vitest's V8 coverage as lcov before and after, the threshold from `.c8rc.json`.
#[tokio::test]
async fn typescript_coverage_before_and_after() {
    // The dependencies are installed in the workspace only, as in a real task: the base
    // checkout has none and borrows the workspace's.
    // (Committed under `dist/`, which Vitest does not search for tests.)
    let mut h = Harness::start("ts-calculator", &[], Some("dist/node_modules")).await;
    let moved = h
        .run(&TestPlan::custom("mv dist/node_modules node_modules"), None)
        .await;
    assert_eq!(moved.run.outcome, Outcome::Passed, "{:#?}", moved.run);
    let plan = h.detect().await;
    let threshold = coverage::threshold(&h.sandbox, &h.session_id)
        .await
        .unwrap();
    assert_eq!(threshold, Some(80.0));
    let untested = format!(
        "{}\nexport function div(a: number, b: number): number {{\n  if (b === 0) {{\n    \
         throw new Error(\"b is 0\");\n  }}\n  const q = a / b;\n  return q;\n}}\n",
        std::fs::read_to_string(fixture("ts-calculator/src/calc.ts")).unwrap()
    );
    h.write("src/calc.ts", &untested).await;
    let before = h.coverage(&plan, Tree::Base).await;
    let after = h.coverage(&plan, Tree::Workspace).await;
    assert_eq!(before.percent(), 100.0, "{before:#?}");
    let delta = coverage::compare(&before, &after, threshold);
    assert!(delta.after < 80.0 && delta.below_threshold, "{delta:#?}");
    assert_eq!(delta.files.len(), 1, "{delta:#?}");
    assert_eq!(delta.files[0].path, "src/calc.ts");
}

/// Java: Checkstyle, configured by the fixture's `checkstyle.xml`, on a changed file.
#[tokio::test]
async fn java_checkstyle_on_the_changed_files() {
    let mut h = Harness::start("java-calculator", &[], None).await;
    let tools = lint::detect_linters_in(&h.sandbox, &h.session_id)
        .await
        .unwrap();
    assert_eq!(tools, [LintTool::Checkstyle]);
    let path = "src/main/java/calc/Extra.java";
    h.write(
        path,
        "package calc;\n\nimport java.util.List;\n\n/** Extra. */\npublic final class Extra {\n    \
         private Extra() {}\n\n    public static int twice(int a) {\n        return 2 * a;\n    }\n}\n",
    )
    .await;
    let runs = lint::run_linters(
        &h.sandbox,
        &h.session_id,
        &tools,
        &[path.to_owned()],
        TIMEOUT,
    )
    .await
    .unwrap();
    let found: Vec<(&str, u32, &str)> = runs[0]
        .violations
        .iter()
        .map(|v| (v.file.as_str(), v.line, v.code.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("src/main/java/calc/Extra.java", 3, "UnusedImports"),
            ("src/main/java/calc/Extra.java", 9, "MissingJavadocMethod"),
        ],
        "{runs:#?}"
    );
}

/// Java: the JaCoCo agent in the Maven run before and after a change adding untested code,
/// against the `LINE` `COVEREDRATIO` minimum of the pom's jacoco-maven-plugin rule.
#[tokio::test]
async fn java_coverage_with_jacoco_before_and_after() {
    let mut h = Harness::start("java-calculator", &[], None).await;
    let plan = h.detect().await;
    let threshold = coverage::threshold(&h.sandbox, &h.session_id)
        .await
        .unwrap();
    assert_eq!(threshold, Some(80.0));
    let path = "src/main/java/calc/Calculator.java";
    let source = std::fs::read_to_string(fixture("java-calculator").join(path)).unwrap();
    let untested = source.trim_end().strip_suffix('}').unwrap().to_owned()
        + "\n    /** The quotient of a and b. */\n    \
           public static int div(int a, int b) {\n        \
           if (b == 0) {\n            \
           throw new ArithmeticException(\"b is 0\");\n        \
           }\n        return a / b;\n    }\n}\n";
    h.write(path, &untested).await;
    let before = h.coverage(&plan, Tree::Base).await;
    let after = h.coverage(&plan, Tree::Workspace).await;
    assert_eq!(
        before.files,
        [(
            path.to_owned(),
            FileCoverage {
                covered: 2,
                total: 2
            }
        )]
        .into(),
        "{before:#?}"
    );
    assert_eq!(
        after.files[path],
        FileCoverage {
            covered: 2,
            total: 5
        },
        "{after:#?}"
    );
    let delta = coverage::compare(&before, &after, threshold);
    assert_eq!(
        (
            delta.before,
            delta.after,
            delta.delta,
            delta.below_threshold
        ),
        (100.0, 40.0, -60.0, true),
        "{delta:#?}"
    );
    assert_eq!(
        delta.files,
        vec![coverage::FileDelta {
            path: path.to_owned(),
            before: Some(100.0),
            after: Some(40.0),
            delta: -60.0,
        }]
    );

    // Code that does not compile leaves nothing to measure: a categorised error.
    h.write(path, "package calc;\n\npublic final class Calculator {\n")
        .await;
    let error = coverage::measure(&h.sandbox, &h.session_id, &plan, Tree::Workspace, TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(error, cap_testrun::Error::CoverageUnavailable { .. }),
        "{error:?}"
    );
}

/// TypeScript: ESLint, Prettier and tsc, as the fixture configures them, on a changed file
/// with two rule violations, a formatting slip and a type error; Prettier then formats it.
#[tokio::test]
async fn typescript_linters_on_the_changed_files() {
    let mut h = Harness::start_with("ts-calculator", &[], Some((LINT_CACHE, "node_modules"))).await;
    let tools = lint::detect_linters_in(&h.sandbox, &h.session_id)
        .await
        .unwrap();
    assert_eq!(tools, [LintTool::Eslint, LintTool::Prettier, LintTool::Tsc]);
    let source = std::fs::read_to_string(fixture("ts-calculator/src/calc.ts")).unwrap();
    h.write(
        "src/calc.ts",
        &format!(
            "{source}\nexport function isZero(n: number): string {{\n  let zero = n == 0;\n    \
             return zero;\n}}\n"
        ),
    )
    .await;
    let files = ["src/calc.ts".to_owned(), "README.md".to_owned()];
    let runs = lint::run_linters(&h.sandbox, &h.session_id, &tools, &files, TIMEOUT)
        .await
        .unwrap();
    type Found<'a> = Vec<(&'a str, u32, u32, &'a str)>;
    let found: Vec<(LintTool, Option<&str>, Found<'_>)> = runs
        .iter()
        .map(|r| {
            (
                r.tool,
                r.problem.as_deref(),
                r.violations
                    .iter()
                    .map(|v| (v.file.as_str(), v.line, v.column, v.code.as_str()))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                LintTool::Eslint,
                None,
                vec![
                    ("src/calc.ts", 10, 7, "prefer-const"),
                    ("src/calc.ts", 10, 16, "eqeqeq")
                ]
            ),
            (
                LintTool::Prettier,
                None,
                vec![("src/calc.ts", 0, 0, "format")]
            ),
            (LintTool::Tsc, None, vec![("src/calc.ts", 11, 5, "TS2322")]),
        ],
        "{runs:#?}"
    );
    assert_eq!(
        runs[2].violations[0].message,
        "Type 'boolean' is not assignable to type 'string'."
    );
    let formatted = lint::format_files(&h.sandbox, &h.session_id, &tools, &files, TIMEOUT)
        .await
        .unwrap();
    assert!(
        formatted.len() == 1 && formatted[0].clean(),
        "{formatted:#?}"
    );
    let again = lint::run_linters(
        &h.sandbox,
        &h.session_id,
        &[LintTool::Prettier],
        &files,
        TIMEOUT,
    )
    .await
    .unwrap();
    assert!(again[0].clean(), "{again:#?}");
}

/// JavaScript with Jest: the fixture's suite, results from Jest's JSON report, a name
/// pattern, and coverage as lcov against the `coverageThreshold` of `package.json`.
#[tokio::test]
async fn javascript_fixture_with_jest() {
    let mut h = Harness::start_with("js-calculator", &[], Some((JEST_CACHE, "node_modules"))).await;
    let plan = h.detect().await;
    assert_eq!(plan, TestPlan::standard(Framework::Jest));
    let report = h.run(&plan, None).await;
    let run = &report.run;
    assert_eq!(
        (
            run.outcome,
            report.problem,
            run.passed,
            run.failed,
            run.skipped
        ),
        (Outcome::Failed, None, 1, 1, 1),
        "{run:#?}"
    );
    // Jest renders node's assertion errors in its own words, the message last.
    let message = &run.cases[1].message;
    assert!(
        message.starts_with("assert.strictEqual(received, expected)")
            && message.contains("Message:\n  sub is wrong"),
        "{message}"
    );
    let mut cases = comparable(&run.cases);
    cases[1].message.clear();
    assert_eq!(
        cases,
        vec![
            case("calc adds", "test/calc.test.js", "passed", ""),
            case("calc subtracts", "test/calc.test.js", "failed", ""),
            case("calc divides", "test/calc.test.js", "skipped", ""),
        ]
    );
    let report = h.run(&plan, Some("adds")).await;
    assert_eq!(
        (report.run.outcome, report.run.passed, report.run.failed),
        (Outcome::Passed, 1, 0),
        "{:#?}",
        report.run
    );

    let threshold = coverage::threshold(&h.sandbox, &h.session_id)
        .await
        .unwrap();
    assert_eq!(threshold, Some(80.0));
    let source = std::fs::read_to_string(fixture("js-calculator/calc.js")).unwrap();
    let untested = source.replace(
        "module.exports = { add, sub };",
        "function div(a, b) {\n  if (b === 0) {\n    throw new Error(\"b is 0\");\n  }\n  \
         return a / b;\n}\n\nmodule.exports = { add, sub, div };",
    );
    h.write("calc.js", &untested).await;
    let before = h.coverage(&plan, Tree::Base).await;
    let after = h.coverage(&plan, Tree::Workspace).await;
    assert_eq!(
        (before.files["calc.js"], after.files["calc.js"]),
        (
            FileCoverage {
                covered: 3,
                total: 3
            },
            FileCoverage {
                covered: 3,
                total: 6
            }
        ),
        "{before:#?} {after:#?}"
    );
    let delta = coverage::compare(&before, &after, threshold);
    assert_eq!(
        (delta.after, delta.delta, delta.below_threshold),
        (50.0, -50.0, true),
        "{delta:#?}"
    );
}

/// JavaScript with Mocha: the same suite, results from Mocha's `json` reporter, a name
/// pattern, and a failing hook reported as an error.
#[tokio::test]
async fn javascript_with_mocha() {
    let package =
        r#"{"name": "x", "scripts": {"test": "mocha"}, "devDependencies": {"mocha": "10.7.3"}}"#;
    let mut h = Harness::start_with(
        "js-calculator",
        &[("package.json", package)],
        Some((JEST_CACHE, "node_modules")),
    )
    .await;
    let plan = h.detect().await;
    assert_eq!(plan, TestPlan::standard(Framework::Mocha));
    let report = h.run(&plan, None).await;
    let run = &report.run;
    assert_eq!(
        (
            run.outcome,
            report.problem,
            run.passed,
            run.failed,
            run.skipped
        ),
        (Outcome::Failed, None, 1, 1, 1),
        "{run:#?}"
    );
    assert_eq!(
        comparable(&run.cases),
        vec![
            case("calc adds", "test/calc.test.js", "passed", ""),
            case(
                "calc subtracts",
                "test/calc.test.js",
                "failed",
                "AssertionError: sub is wrong"
            ),
            case("calc divides", "test/calc.test.js", "skipped", ""),
        ]
    );
    let report = h.run(&plan, Some("calc adds")).await;
    assert_eq!(
        (
            report.run.outcome,
            report.run.passed,
            report.run.cases.len()
        ),
        (Outcome::Passed, 1, 1),
        "{:#?}",
        report.run
    );
    h.write(
        "test/db.test.js",
        "describe(\"db\", () => {\n  before(() => {\n    \
         throw new Error(\"connection refused\");\n  });\n  \
         it(\"reads\", () => {});\n});\n",
    )
    .await;
    let report = h.run(&plan, Some("test/db.test.js")).await;
    assert_eq!(
        (report.run.outcome, report.problem),
        (Outcome::Failed, None),
        "{:#?}",
        report.run
    );
    assert_eq!(
        comparable(&report.run.cases),
        vec![case(
            "db \"before all\" hook for \"reads\"",
            "test/db.test.js",
            "error",
            "connection refused"
        )],
        "{:#?}",
        report.run
    );
}

/// Java with Gradle (the system's Gradle 4.4, offline, JUnit 4 from the packaged Maven
/// repository): results from its JUnit XML reports, and a `--tests` filter.
#[tokio::test]
async fn java_fixture_with_gradle_offline() {
    let mut h = Harness::start("gradle-calculator", &[], None).await;
    let plan = h.detect().await;
    assert_eq!(plan, TestPlan::standard(Framework::Gradle));
    let report = h.run(&plan, None).await;
    let run = &report.run;
    assert_eq!(
        (run.outcome, report.problem, run.passed, run.failed),
        (Outcome::Failed, None, 1, 1),
        "{run:#?}"
    );
    let mut cases = comparable(&run.cases);
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        cases,
        vec![
            case("calc.CalculatorTest.addsNumbers", "", "passed", ""),
            case(
                "calc.CalculatorTest.subtractsNumbers",
                "",
                "failed",
                "java.lang.AssertionError: sub is wrong expected:<2> but was:<4>"
            ),
        ]
    );
    let report = h.run(&plan, Some("calc.CalculatorTest.addsNumbers")).await;
    assert_eq!(
        (report.run.outcome, report.run.passed, report.run.failed),
        (Outcome::Passed, 1, 0),
        "{:#?}",
        report.run
    );
}

/// The sandbox shows Debian Maven's launcher configuration and logging (without them `mvn`
/// cannot start) but not its `settings.xml` or `toolchains.xml`, which may hold a host's
/// repository credentials.
#[tokio::test]
async fn the_sandbox_shows_mavens_launcher_configuration_only() {
    let mut h = Harness::start("java-calculator", &[], None).await;
    let shown = TestPlan::custom(
        "test -r /etc/maven/m2.conf && test -r /etc/maven/logging/simplelogger.properties \
         && test -r /usr/share/maven/bin/m2.conf && ls /etc/maven",
    );
    let report = h.run(&shown, None).await;
    assert_eq!(report.run.outcome, Outcome::Passed, "{:#?}", report.run);
    assert_eq!(
        report
            .run
            .output_tail
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["logging", "m2.conf"]
    );
}
