//! Running a plan through the sandbox's `Exec` and turning what came back into a [`TestRun`].

use std::collections::HashMap;
use std::time::Duration;

use cap_proto::sandbox::v1::exec_output::Output;
use cap_proto::sandbox::v1::{ExecRequest, ExitStatus};
use cap_sandbox_client::SandboxApi;
use futures::StreamExt as _;

use crate::gotest::{parse_go_test_json, render_console, tail_chars};
use crate::jestjson::parse_jest_json;
use crate::junit::parse_junit_xml;
use crate::mochajson::parse_mocha_json;
use crate::plan::{Framework, Report, TestPlan};
use crate::{Error, Outcome, Problem, Result, RunReport, TestCase, TestRun};

/// How many characters of console output a [`TestRun`] keeps.
pub(crate) const OUTPUT_TAIL: usize = 4096;

/// The most bytes of each output stream held while a run goes on; the oldest are dropped.
/// The reports are printed last, so they stay.
const WINDOW: usize = 16 * 1024 * 1024;

/// The longest test pattern accepted.
const PATTERN_MAX: usize = 1024;

/// The packaged Maven repository Maven runs against, offline.
pub(crate) const MAVEN_REPO: &str = "/usr/share/maven-repo";

/// How long past the run's own timeout the client waits for the sandbox to report it.
const CLIENT_GRACE: Duration = Duration::from_secs(30);

/// Runs `plan` (limited to `pattern` when given) in the session's `/workspace` and reports
/// the results. The sandbox kills the run at `timeout` (rounded up to whole seconds).
///
/// Only sandbox failures are errors; failing tests, a missing runner or a timeout are
/// reported in the [`TestRun`]. Dropping the returned future drops the `Exec` stream.
/// [`run_detailed`] says also what went wrong, when something did.
pub async fn run(
    sandbox: &dyn SandboxApi,
    session_id: &str,
    plan: &TestPlan,
    pattern: Option<&str>,
    timeout: Duration,
) -> Result<TestRun> {
    Ok(run_detailed(sandbox, session_id, plan, pattern, timeout)
        .await?
        .run)
}

/// [`run`], with the category of what went wrong when the run did not simply pass or fail.
pub async fn run_detailed(
    sandbox: &dyn SandboxApi,
    session_id: &str,
    plan: &TestPlan,
    pattern: Option<&str>,
    timeout: Duration,
) -> Result<RunReport> {
    run_with_prelude(sandbox, session_id, plan, pattern, timeout, "").await
}

/// Where the base checkout is copied for the regression proof.
const REGRESSION_BASE: &str = "/tmp/cap-regression-base";

/// The UC-03 proof that a regression test fails before the fix and passes after it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegressionProof {
    /// The test files and pattern, run on the base checkout with the new test files added.
    pub before: RunReport,
    /// The same tests in the workspace, with the fix.
    pub after: RunReport,
    /// The tests failed before (as tests, not as a broken run) and passed after.
    pub proven: bool,
}

/// Proves a bug fix's regression test: runs the tests matching `pattern` on a copy of the
/// session's base checkout (`/repo`) into which the workspace's `test_files` (the new or
/// changed regression tests) are copied, then in the workspace itself. The proof holds when
/// they fail before and pass after.
pub async fn prove_regression(
    sandbox: &dyn SandboxApi,
    session_id: &str,
    plan: &TestPlan,
    test_files: &[String],
    pattern: Option<&str>,
    timeout: Duration,
) -> Result<RegressionProof> {
    let mut copies = String::new();
    for file in test_files {
        let bad = file.is_empty()
            || file.starts_with('/')
            || file.starts_with('-')
            || file.split('/').any(|part| part == "..")
            || file.contains(['\0', '\n', '\r']);
        if bad {
            return Err(Error::InvalidPath {
                path: tail_chars(file, 200),
            });
        }
        let quoted = crate::plan::shell_quote(file);
        copies.push_str(&format!(
            "mkdir -p \"$(dirname {REGRESSION_BASE}/{quoted})\" && \
             cp /workspace/{quoted} {REGRESSION_BASE}/{quoted} || exit 3\n"
        ));
    }
    let prelude = format!(
        "rm -rf {REGRESSION_BASE} && cp -a /repo {REGRESSION_BASE} && \
         chmod -R u+w {REGRESSION_BASE} || exit 3\n{copies}cd {REGRESSION_BASE} || exit 3\n\
         [ -e node_modules ] || [ ! -d /workspace/node_modules ] || \
         ln -s /workspace/node_modules node_modules\n"
    );
    let before = run_with_prelude(sandbox, session_id, plan, pattern, timeout, &prelude).await?;
    let after = run_detailed(sandbox, session_id, plan, pattern, timeout).await?;
    let proven = before.run.outcome == Outcome::Failed
        && before.run.failed + before.run.errors > 0
        && after.run.outcome == Outcome::Passed
        && after.run.passed > 0;
    Ok(RegressionProof {
        before,
        after,
        proven,
    })
}

/// [`run_detailed`] with `prelude` run first in the same shell (e.g. to change directory).
async fn run_with_prelude(
    sandbox: &dyn SandboxApi,
    session_id: &str,
    plan: &TestPlan,
    pattern: Option<&str>,
    timeout: Duration,
    prelude: &str,
) -> Result<RunReport> {
    if session_id.is_empty() {
        return Err(Error::EmptySessionId);
    }
    let pattern = pattern.filter(|p| !p.trim().is_empty());
    if let Some(pattern) = pattern {
        validate_pattern(pattern)?;
    }
    let command = plan.command_for(pattern);
    if command.trim().is_empty() {
        return Err(Error::EmptyCommand);
    }
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let invocation = plan.invocation(pattern, &nonce);
    let timeout_seconds = u32::try_from(timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0))
        .unwrap_or(u32::MAX)
        .max(1);
    let env = runner_env(plan.framework);
    let request = ExecRequest {
        session_id: session_id.to_owned(),
        command: format!("{prelude}{}", invocation.script),
        cwd: String::new(),
        timeout_seconds,
        env,
    };
    tracing::debug!(%command, framework = %plan.framework, "running tests");
    let started = std::time::Instant::now();
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(timeout_seconds.into()) + CLIENT_GRACE;
    let mut stream = sandbox
        .exec(request)
        .await
        .map_err(|source| Error::Sandbox {
            operation: "Exec",
            source,
        })?;
    let mut captured = Captured::default();
    let exit = loop {
        let message = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(message) => message.transpose().map_err(|source| Error::Sandbox {
                operation: "Exec",
                source,
            })?,
            Err(_elapsed) => {
                // The sandbox did not enforce the timeout; give up on the stream ourselves.
                tracing::warn!(%command, "sandbox missed the run's timeout; dropping the stream");
                let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                break ExitStatus {
                    exit_code: -1,
                    timed_out: true,
                    duration_ms,
                    output_truncated: false,
                };
            }
        };
        let Some(message) = message else {
            return Err(Error::MissingExitStatus);
        };
        match message.output {
            Some(Output::Stdout(bytes)) => captured.stdout(&bytes),
            Some(Output::Stderr(bytes)) => captured.stderr(&bytes),
            Some(Output::Exit(exit)) => break exit,
            None => {}
        }
    };
    Ok(assemble_detailed(
        plan.framework,
        &invocation.report,
        command,
        &exit,
        &captured.stdout,
        &captured.combined,
    ))
}

/// Refuses patterns no runner can take as one argument.
fn validate_pattern(pattern: &str) -> Result<()> {
    let reason = if pattern.contains('\0') {
        "it contains a NUL byte"
    } else if pattern.contains(['\n', '\r']) {
        "it contains a line break"
    } else if pattern.len() > PATTERN_MAX {
        "it is longer than 1024 bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidPattern {
        pattern: tail_chars(pattern, 200),
        reason,
    })
}

/// The output of one run: stdout alone (where reports are) and both streams interleaved (the
/// console), each the last [`WINDOW`] bytes.
#[derive(Debug, Default)]
struct Captured {
    stdout: Vec<u8>,
    combined: Vec<u8>,
}

impl Captured {
    fn stdout(&mut self, bytes: &[u8]) {
        push_window(&mut self.stdout, bytes);
        push_window(&mut self.combined, bytes);
    }

    fn stderr(&mut self, bytes: &[u8]) {
        push_window(&mut self.combined, bytes);
    }
}

fn push_window(buffer: &mut Vec<u8>, bytes: &[u8]) {
    buffer.extend_from_slice(bytes);
    if buffer.len() > WINDOW + WINDOW / 2 {
        let excess = buffer.len() - WINDOW;
        buffer.drain(..excess);
    }
}

/// Builds the [`TestRun`] from how the run exited and what it printed.
#[cfg(test)]
pub(crate) fn assemble(
    framework: Framework,
    report: &Report,
    command: String,
    exit: &ExitStatus,
    stdout: &[u8],
    combined: &[u8],
) -> TestRun {
    assemble_detailed(framework, report, command, exit, stdout, combined).run
}

/// Builds the [`RunReport`] from how the run exited and what it printed.
pub(crate) fn assemble_detailed(
    framework: Framework,
    report: &Report,
    command: String,
    exit: &ExitStatus,
    stdout: &[u8],
    combined: &[u8],
) -> RunReport {
    let stdout = String::from_utf8_lossy(stdout);
    let combined = String::from_utf8_lossy(combined);
    let mut notes: Vec<String> = Vec::new();
    let mut report_state = ReportState::NotExpected;
    let (cases, console): (Option<Vec<TestCase>>, String) = match report {
        Report::Junit { marker } | Report::JestJson { marker } | Report::MochaJson { marker } => {
            let parse: fn(&str) -> Result<Vec<TestCase>> = match report {
                Report::JestJson { .. } => parse_jest_json,
                Report::MochaJson { .. } => parse_mocha_json,
                _ => parse_junit_xml,
            };
            let end_line = format!("\n{marker}\n");
            let console = match combined.find(&end_line) {
                Some(at) => combined[..at].to_owned(),
                None => combined.clone().into_owned(),
            };
            let (cases, state) = match stdout.find(&end_line) {
                Some(at) => file_reports(
                    framework,
                    parse,
                    marker,
                    &stdout[at + end_line.len()..],
                    &mut notes,
                ),
                None => (None, ReportState::Missing),
            };
            report_state = state;
            (cases, console)
        }
        Report::GoJson => (Some(parse_go_test_json(&stdout)), render_console(&combined)),
        Report::ExitCode => (None, combined.into_owned()),
    };
    let cases_found = cases.is_some();
    let cases = cases.unwrap_or_default();
    let count = |outcome: &str| {
        u32::try_from(cases.iter().filter(|c| c.outcome == outcome).count()).unwrap_or(u32::MAX)
    };
    let (passed, failed, errors, skipped) = (
        count("passed"),
        count("failed"),
        count("error"),
        count("skipped"),
    );

    let code = exit.exit_code;
    let mut problem = None;
    let outcome = if exit.timed_out {
        notes.push(format!(
            "the run was killed at its timeout after {} ms",
            exit.duration_ms
        ));
        problem = Some(Problem::TimedOut);
        Outcome::TimedOut
    } else if let Some((category, text)) = (!cases_found)
        .then(|| runner_problem(framework, code, &console))
        .flatten()
    {
        notes.push(text);
        problem = Some(category);
        Outcome::Error
    } else if failed + errors > 0 {
        Outcome::Failed
    } else {
        match (framework, code) {
            (Framework::Pytest | Framework::Unittest, 5) => Outcome::NoTests,
            (Framework::Pytest, 3) => {
                notes.push("pytest stopped on an internal error (exit code 3)".to_owned());
                problem = Some(Problem::RunnerFailed);
                Outcome::Error
            }
            (Framework::Pytest, 4) => {
                notes.push("pytest refused its command line (exit code 4, usage error)".to_owned());
                problem = Some(Problem::RunnerFailed);
                Outcome::Error
            }
            (_, 0) if cases_found && cases.is_empty() => Outcome::NoTests,
            // The runner claims success but its report, the only trusted account of what
            // ran, is missing or unreadable: not a pass.
            (_, 0) if !cases_found && report_state != ReportState::NotExpected => {
                notes.push(
                    "the runner exited 0 but left no readable test report, so its results \
                     cannot be trusted"
                        .to_owned(),
                );
                Outcome::Error
            }
            (_, 0) => Outcome::Passed,
            _ => Outcome::Failed,
        }
    };
    if problem.is_none() && !cases_found {
        problem = match report_state {
            ReportState::Missing => {
                notes.push("the runner left no test report".to_owned());
                Some(Problem::ReportMissing)
            }
            ReportState::Malformed => Some(Problem::ReportMalformed),
            ReportState::NotExpected | ReportState::Parsed => None,
        };
    }
    if outcome == Outcome::NoTests {
        problem.get_or_insert(Problem::NoTests);
    }
    if exit.output_truncated {
        notes.push("the sandbox dropped output beyond its cap".to_owned());
    }
    let run = TestRun {
        command,
        outcome,
        exit_code: code,
        timed_out: exit.timed_out,
        duration_ms: exit.duration_ms,
        passed,
        failed,
        errors,
        skipped,
        cases,
        output_tail: output_tail(&console, &notes),
    };
    RunReport { run, problem }
}

/// What became of the report files a run was expected to leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReportState {
    /// The runner has no report files (exit code or `go test -json` on stdout).
    NotExpected,
    /// At least one report parsed.
    Parsed,
    /// No report file was there.
    Missing,
    /// Report files were there, none parsed.
    Malformed,
}

/// Parses the report files printed after the end marker. `None` when there is nothing to
/// trust: no report parsed (Maven and Gradle excepted, where no report file means no tests).
fn file_reports(
    framework: Framework,
    parse: fn(&str) -> Result<Vec<TestCase>>,
    marker: &str,
    reports: &str,
    notes: &mut Vec<String>,
) -> (Option<Vec<TestCase>>, ReportState) {
    let file_line = format!("{marker}:file ");
    let mut files: Vec<(&str, String)> = Vec::new();
    for line in reports.split_inclusive('\n') {
        if let Some(path) = line.strip_prefix(&file_line) {
            files.push((path.trim_end(), String::new()));
        } else if let Some((_, xml)) = files.last_mut() {
            xml.push_str(line);
        }
    }
    if files.is_empty() {
        return if matches!(framework, Framework::Maven | Framework::Gradle) {
            (Some(Vec::new()), ReportState::Parsed)
        } else {
            (None, ReportState::Missing)
        };
    }
    let mut cases = Vec::new();
    let mut parsed_any = false;
    for (path, xml) in files {
        match parse(&xml) {
            Ok(found) => {
                parsed_any = true;
                cases.extend(found);
            }
            Err(error) => {
                tracing::warn!(%path, error = %cap_errors::chain(&error), "unreadable test report");
                notes.push(format!(
                    "test report {path} is unreadable: {}",
                    cap_errors::chain(&error)
                ));
            }
        }
    }
    if parsed_any {
        (Some(cases), ReportState::Parsed)
    } else {
        (None, ReportState::Malformed)
    }
}

/// Why the runner could not run at all, when the exit says so.
fn runner_problem(framework: Framework, code: i32, console: &str) -> Option<(Problem, String)> {
    if framework == Framework::Pytest && code != 0 && console.contains("No module named pytest") {
        return Some((
            Problem::RunnerMissing,
            "pytest is not installed in the sandbox image (No module named pytest)".to_owned(),
        ));
    }
    match code {
        127 => Some((
            Problem::RunnerMissing,
            format!(
                "the test runner was not found in the sandbox (exit code 127, command not found) \
                 for {framework} tests"
            ),
        )),
        126 => Some((
            Problem::RunnerFailed,
            "the test runner could not be executed in the sandbox (exit code 126)".to_owned(),
        )),
        _ => None,
    }
}

/// The last [`OUTPUT_TAIL`] characters of the console, followed by the notes.
fn output_tail(console: &str, notes: &[String]) -> String {
    let notes: String = notes
        .iter()
        .map(|n| format!("\n[cap-testrun] {n}"))
        .collect();
    let room = OUTPUT_TAIL.saturating_sub(notes.chars().count());
    let mut tail = tail_chars(console.trim_end(), room);
    tail.push_str(&notes);
    tail
}

/// The environment tests (and their coverage) run with.
pub(crate) fn runner_env(framework: Framework) -> HashMap<String, String> {
    let mut env = HashMap::from([
        // Runners that watch or prompt when interactive (jest, react-scripts) run once.
        ("CI".to_owned(), "true".to_owned()),
        // No `__pycache__` left in the workspace's changes.
        ("PYTHONDONTWRITEBYTECODE".to_owned(), "1".to_owned()),
        ("NO_COLOR".to_owned(), "1".to_owned()),
        // The sandbox has no network: Go fails at once on a missing module instead of
        // waiting on the proxy, and never downloads a toolchain.
        ("GOPROXY".to_owned(), "off".to_owned()),
        ("GOTOOLCHAIN".to_owned(), "local".to_owned()),
    ]);
    if framework == Framework::Maven {
        // No Maven Central from the sandbox: plugins and libraries come from the system's
        // packaged Maven repository (Debian's `/usr/share/maven-repo`), read-only.
        env.insert(
            "MAVEN_OPTS".to_owned(),
            format!("-Dmaven.repo.local={MAVEN_REPO} -Dstyle.color=never"),
        );
    }
    env
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
